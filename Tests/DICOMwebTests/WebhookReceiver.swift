import Foundation
import HTTPTypes
import Hummingbird
import ImageSetStore
import Logging
import NIOCore
import Synchronization
import TestSupport
import Webhooks
import XCTest

/// A webhook receiver for the tests: real HTTP (a Hummingbird server on a loopback port), not a
/// mock of the client. It records every POST and answers with the status it is set to; it can be
/// started, stopped (the port then refuses connections) and started again on the same port.
/// Each request's signature is checked here (Swift) as it arrives; the tests also check them with
/// the Python snippet of Docs/events.md (`verifyWithDocsSnippet`).
final class WebhookReceiver: @unchecked Sendable {
    struct Delivery: Sendable {
        var path: String
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var signatureValid: Bool
        var sequence: Int64? { headers["tessera-event-sequence"].flatMap { Int64($0) } }
    }

    let port: Int
    /// Secrets by path (`/hook/a`…), to check signatures with.
    let secrets = Mutex<[String: String]>([:])
    /// The status answered; 0: never answer (the request waits until the server stops).
    let status = Mutex(200)
    let deliveries = Mutex<[Delivery]>([])
    private let task = Mutex<Task<Void, any Error>?>(nil)

    init(port: Int = Corpus.freeLoopbackPort()) { self.port = port }

    var url: String { "http://127.0.0.1:\(port)/hook" }

    func start() async throws {
        let router = Router()
        router.post("/hook/**") { request, _ -> Response in try await self.handle(request) }
        router.post("/hook") { request, _ -> Response in try await self.handle(request) }
        let running = AsyncStream<Void>.makeStream()
        var logger = Logger(label: "test.webhook-receiver")
        logger.logLevel = .warning
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
                              onServerRunning: { _ in running.continuation.finish() }, logger: logger)
        task.withLock { $0 = Task { try await app.runService(gracefulShutdownSignals: []) } }
        for await _ in running.stream {}
    }

    func stop() async {
        let t = task.withLock { t in defer { t = nil }; return t }
        t?.cancel()
        _ = await t?.result
    }

    func handle(_ request: Request) async throws -> Response {
        let body = Array(try await request.body.collect(upTo: 1 << 20).readableBytesView)
        var headers: [String: String] = [:]
        for f in request.headers { headers[f.name.canonicalName] = f.value }
        let path = request.uri.path
        let secret = secrets.withLock { $0[path] ?? $0["/hook"] }
        let valid = secret.map { WebhookSignature.verify(header: headers["tessera-signature"] ?? "", secret: $0, body: body) } ?? false
        let answer = status.withLock { $0 }
        deliveries.withLock { $0.append(Delivery(path: path, status: answer, headers: headers, body: body, signatureValid: valid)) }
        if answer == 0 { try await Task.sleep(nanoseconds: 3_600_000_000_000) }
        return Response(status: HTTPResponse.Status(code: answer))
    }

    var all: [Delivery] { deliveries.withLock { $0 } }
    /// The deliveries answered 2xx at `path`, in arrival order.
    func accepted(_ path: String = "/hook") -> [Delivery] { all.filter { $0.path == path && (200..<300).contains($0.status) } }

    /// Runs the signature check of Docs/events.md ("Verifying a delivery"), the Python code as the
    /// document shows it, over every delivery received; returns how many it found valid.
    func verifyWithDocsSnippet(secret: String) throws -> (valid: Int, total: Int) {
        let doc = try String(contentsOf: Corpus.packageRoot.appendingPathComponent("Docs/events.md"), encoding: .utf8)
        guard let start = doc.range(of: "```python\n# verify.py"), let end = doc.range(of: "```", range: start.upperBound..<doc.endIndex) else {
            throw ServeTestError(description: "Docs/events.md has no ```python # verify.py block")
        }
        let snippet = "# verify.py" + doc[start.upperBound..<end.lowerBound]
        let harness = snippet + """

            import base64, json, sys
            items = json.load(sys.stdin)
            secret = items["secret"].encode()
            ok = sum(1 for d in items["deliveries"] if verify(secret, d["signature"], base64.b64decode(d["body"])))
            print(ok, len(items["deliveries"]))
            """
        let input: [String: Any] = ["secret": secret, "deliveries": all.map {
            ["signature": $0.headers["tessera-signature"] ?? "", "body": Data($0.body).base64EncodedString()]
        }]
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("verify-\(UUID().uuidString).py")
        try harness.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let out = try Corpus.run(Corpus.python, [script.path], stdin: try JSONSerialization.data(withJSONObject: input))
        let numbers = String(decoding: out, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
        guard numbers.count == 2 else { throw ServeTestError(description: "the snippet printed \(String(decoding: out, as: UTF8.self))") }
        return (numbers[0], numbers[1])
    }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass; fails the test naming `what` then.
func eventually(_ what: String, within seconds: Double = 30, file: StaticString = #filePath, line: UInt = #line,
                _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(nanoseconds: 20_000_000)
    }
    XCTFail("timed out after \(seconds) s waiting for \(what)", file: file, line: line)
    throw CancellationError()
}
