import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// GET /changefeed/stream against a real `tessera serve`, read as it arrives (Server-Sent Events,
/// WHATWG HTML §9.2): replay, then live under concurrent writes, with no gap and no duplicate at
/// the hand-over; heartbeats while idle; Last-Event-ID resume.
final class ChangeFeedStreamTests: XCTestCase {
    /// One event of the stream, or a comment.
    struct Message {
        var id: Int?
        var event: String?
        var data: String?
        var comment: String?
    }

    /// Opens the stream and hands each message to `body` until it returns false.
    static func read(_ url: String, headers: [(String, String)] = [], _ body: (Message) async throws -> Bool) async throws {
        var request = HTTPClientRequest(url: url)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(response.headers.first(name: "content-type"), "text/event-stream")
        var pending = ""
        for try await chunk in response.body {
            pending += String(buffer: chunk)
            while let end = pending.range(of: "\n\n") {
                let block = pending[..<end.lowerBound]
                pending = String(pending[end.upperBound...])
                var m = Message()
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") { m.comment = line.dropFirst().trimmingCharacters(in: .whitespaces) }
                    else if line.hasPrefix("id: ") { m.id = Int(line.dropFirst(4)) }
                    else if line.hasPrefix("event: ") { m.event = String(line.dropFirst(7)) }
                    else if line.hasPrefix("data: ") { m.data = String(line.dropFirst(6)) }
                }
                if try await !body(m) { return }
            }
        }
        XCTFail("the stream ended")
    }

    func testReplayThenLiveUnderConcurrentWritesMissesNothingAndResumes() async throws {
        let server = try ServedTessera(["--no-demo", "--changefeed-heartbeat", "0.2"])
        defer { server.kill() }
        let base = "http://127.0.0.1:\(server.port)"
        let study = "1.2.826.0.1.3680043.9.7433.15"
        func stow(_ sop: String) async throws {
            let answer = try await HTTP.stow(base, [try DICOMwebTestCase.instance(sop: sop, study: study, series: "\(study).1")])
            XCTAssertEqual(answer.status, 200, answer.text)
        }
        // History to replay.
        for i in 0..<3 { try await stow("\(study).1.\(i)") }
        // Writers start with the stream: some commits land during the replay, some after it.
        let finished = NIOLockedValueBox(false)
        let writers = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<2 {
                    group.addTask { for i in 0..<10 { try await stow("\(study).2.\(w).\(i)") } }
                }
                try await group.waitForAll()
            }
            finished.withLockedValue { $0 = true }
        }
        var ids: [Int] = [], types: [String] = [], heartbeats = 0
        var writersDone = false
        var head = Int.max
        try await Self.read(base + "/changefeed/stream?after=0") { m in
            if let id = m.id {
                ids.append(id)
                types.append(m.event ?? "")
                let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((m.data ?? "").utf8)) as? [String: Any])
                XCTAssertEqual(object["sequence"] as? Int, id)
                XCTAssertEqual(object["type"] as? String, m.event)
            } else if m.comment == "heartbeat" {
                heartbeats += 1
            }
            if !writersDone, finished.withLockedValue({ $0 }) {
                writersDone = true
                try await writers.value
                let latest = try await HTTP.get(base + "/changefeed/latest", accept: "application/json")
                head = (latest.json as? [String: Any])?["sequence"] as? Int ?? 0
            }
            // Done once everything committed was received and the stream has idled once.
            return !(ids.last ?? 0 >= head && heartbeats > 0)
        }
        XCTAssertEqual(ids, Array(1...head), "every event once, in order, across the hand-over")
        XCTAssertEqual(types.filter { $0 == "instance.stored" }.count, 23)

        // Last-Event-ID (an EventSource reconnecting) wins over `after`.
        var resumed: [Int] = []
        try await Self.read(base + "/changefeed/stream?after=0", headers: [("Last-Event-ID", "7")]) { m in
            if let id = m.id { resumed.append(id) }
            return resumed.count < 3
        }
        XCTAssertEqual(resumed, [8, 9, 10])
    }
}

extension ChangeFeedStreamTests {
    /// A stream never ends by itself, and `tessera serve` finishes its requests on SIGTERM: the
    /// streams end at a graceful shutdown, or the server would never exit.
    func testSIGTERMEndsOpenStreamsAndTheServer() async throws {
        let server = try ServedTessera(["--no-demo"])
        defer { server.kill() }
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/changefeed/stream"),
                                                            timeout: .seconds(30))
        var body = response.body.makeAsyncIterator()
        _ = try await body.next()  // the opening comment: the stream is open
        let clock = ContinuousClock(), signalled = clock.now
        kill(server.pid, SIGTERM)
        while try await body.next() != nil {}
        // At once, not when the next heartbeat (15 s) finds the connection closing.
        XCTAssertLessThan(clock.now - signalled, .seconds(8), "the stream ends at the shutdown")
        for _ in 0..<100 where server.process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        XCTAssertFalse(server.process.isRunning, "SIGTERM ends a server with an open stream")
    }
}
