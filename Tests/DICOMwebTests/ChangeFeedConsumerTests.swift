import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Issue 14's consumer test against a real `tessera serve`: 4 gateways STOW at once and an admin
/// deletes a series while a consumer (Tools/changefeed_consumer.py, standard-library Python) reads
/// the feed, saving its cursor; it is SIGKILLed and restarted from that cursor. In the end it has
/// processed every change exactly once by sequence number, and replaying what it saw gives the
/// instances the index holds.
final class ChangeFeedConsumerTests: XCTestCase {
    static let study = "1.2.826.0.1.3680043.9.7433.14"

    func startConsumer(_ base: String, state: String, until: Int64? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Corpus.python)
        p.arguments = [Corpus.packageRoot.appendingPathComponent("Tools/changefeed_consumer.py").path, "--url", base, "--state", state]
            + (until.map { ["--until", String($0)] } ?? [])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    func testAConsumerKilledAndRestartedSeesEveryChangeOnce() async throws {
        let server = try ServedTessera(["--no-demo"])
        defer { server.kill() }
        let base = "http://127.0.0.1:\(server.port)"
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-consumer-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let consumers = NIOLockedValueBox([try startConsumer(base, state: state)])
        defer { for p in consumers.withLockedValue({ $0 }) where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }

        let study = Self.study, first = consumers.withLockedValue { $0[0] }
        let writes = Task { try await withThrowingTaskGroup(of: Void.self) { group in
            for gateway in 0..<4 {
                group.addTask {
                    for i in 0..<8 {
                        // Series 0 of each gateway is the one the admin deletes part-way.
                        let series = "\(study).\(gateway).\(i % 2)"
                        let sop = "\(series).\(i)"
                        let answer = try await HTTP.stow(base, [try DICOMwebTestCase.instance(sop: sop, study: study, series: series)])
                        XCTAssertEqual(answer.status, 200, answer.text)
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(300))
                let deleted = try await HTTP.send(.DELETE, base + "/dicomweb/studies/\(study)/series/\(study).1.0")
                XCTAssertTrue([200, 404].contains(deleted.status), deleted.text)
            }
            try await group.waitForAll()
        } }
        // SIGKILL the consumer mid-run and start it again from its saved cursor.
        try await Task.sleep(for: .milliseconds(500))
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let second = try startConsumer(base, state: state)
        consumers.withLockedValue { $0.append(second) }
        try await writes.value
        // The series delete again after every STOW: the instances that arrived after the first one go too.
        _ = try await HTTP.send(.DELETE, base + "/dicomweb/studies/\(study)/series/\(study).1.0")
        let head = try await HTTP.get(base + "/changefeed/latest", accept: "application/json")
        let latest = try XCTUnwrap((head.json as? [String: Any])?["sequence"] as? Int)
        // The second one is killed too, wherever it is; a third runs to the head.
        for p in consumers.withLockedValue({ $0 }) where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        let consumer = try startConsumer(base, state: state, until: Int64(latest))
        consumers.withLockedValue { $0.append(consumer) }
        for _ in 0..<600 where consumer.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        XCTAssertFalse(consumer.isRunning, "the consumer reaches the head")
        XCTAssertEqual(consumer.terminationStatus, 0)

        let lines = try String(contentsOfFile: state + "/events.jsonl", encoding: .utf8).split(separator: "\n")
        let events = try lines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(events.compactMap { $0["sequence"] as? Int }, Array(1...latest), "every change once, in order")
        // Replaying the feed gives the current instances.
        var current = Set<String>()
        for e in events {
            guard let sop = e["sopInstanceUID"] as? String else { continue }
            switch e["type"] as? String {
            case "instance.stored", "instance.replaced": current.insert(sop)
            case "instance.deleted": current.remove(sop)
            default: break
            }
        }
        XCTAssertEqual(events.filter { $0["type"] as? String == "instance.stored" }.count, 32)
        XCTAssertGreaterThan(events.filter { $0["type"] as? String == "instance.deleted" }.count, 0)
        let indexed = try await HTTP.get(base + "/dicomweb/studies/\(study)/instances?limit=1000").sopInstanceUIDs
        XCTAssertEqual(current, Set(indexed))
        XCTAssertEqual(current.count, 28, "gateway 1's series 0 (4 instances) deleted")
    }
}
