import Foundation
import ImageSetStore
import TestSupport
import XCTest

/// Delivery across a restart of the real `tessera serve` (issue 14 §2, "delivery state survives a
/// restart"): the cursor is in the index, so the second process resumes after the last event the
/// receiver acknowledged, and sends none of those again.
final class WebhookServeTests: XCTestCase {
    static let options = ["--no-demo", "--webhook-backoff", "0.01", "--webhook-backoff-max", "0.05", "--webhook-poll-interval", "0.1",
                          "--webhook-timeout", "2", "--webhook-lease", "4", "--webhook-failure-limit", "1000"]

    func json(_ served: ServedTessera, _ method: String, _ path: String, _ body: String? = nil) throws -> [String: Any] {
        var args = ["-s", "-X", method, "http://127.0.0.1:\(served.port)\(path)"]
        if let body { args += ["-H", "Content-Type: application/json", "--data-binary", body] }
        let r = try curl(args)
        return (try? JSONSerialization.jsonObject(with: Data(r.out.utf8))) as? [String: Any] ?? [:]
    }

    func stow(_ served: ServedTessera, _ n: Int) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("hook-\(UUID().uuidString).dcm")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(try DICOMwebTestCase.instance(sop: "\(DICOMwebTestCase.study).8.\(n)")).write(to: file)
        let r = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/dicom",
                          "--data-binary", "@\(file.path)", "http://127.0.0.1:\(served.port)/dicomweb/studies"])
        XCTAssertEqual(r.out, "200")
    }

    func testDeliveryResumesAfterARestartFromTheStoredCursor() async throws {
        let receiver = WebhookReceiver()
        try await receiver.start()
        let first = try ServedTessera(Self.options)
        defer { first.kill() }
        var served = first
        let created = try json(served, "POST", "/subscriptions", #"{"url": "\#(receiver.url)", "after": 0}"#)
        let id = try XCTUnwrap(created["id"] as? String)
        receiver.secrets.withLock { $0["/hook"] = created["secret"] as? String }
        try stow(served, 1)
        try await eventually("the first instance's events delivered") {
            let s = try self.json(served, "GET", "/subscriptions/\(id)")
            return (s["lag"] as? Int) == 0 && (s["cursor"] as? Int ?? 0) > 0
        }
        let acknowledged = try XCTUnwrap(try json(served, "GET", "/subscriptions/\(id)")["cursor"] as? Int)
        receiver.status.withLock { $0 = 500 }
        try stow(served, 2)
        try await eventually("a failure recorded") { (try self.json(served, "GET", "/subscriptions/\(id)")["lastError"] as? String) == "HTTP 500" }
        XCTAssertEqual(try json(served, "GET", "/subscriptions/\(id)")["cursor"] as? Int, acknowledged)
        first.stop(keepingData: true)
        receiver.status.withLock { $0 = 200 }
        let before = receiver.accepted().count
        let second = try ServedTessera(Self.options, data: first.data)
        defer { second.kill() }
        served = second
        try await eventually("delivery resumed after the restart") {
            let s = try self.json(served, "GET", "/subscriptions/\(id)")
            return (s["lag"] as? Int) == 0 && (s["cursor"] as? Int ?? 0) > acknowledged
        }
        let head = try XCTUnwrap(try json(served, "GET", "/subscriptions/\(id)")["latestSequence"] as? Int)
        await receiver.stop()
        let accepted = receiver.accepted()
        // Every event once, in order: those before the restart were not sent again.
        XCTAssertEqual(accepted.compactMap(\.sequence), (1...Int64(head)).map { $0 })
        XCTAssertEqual(accepted.prefix(before).last?.sequence, Int64(acknowledged))
        XCTAssertEqual(accepted.dropFirst(before).first?.sequence, Int64(acknowledged + 1))
        XCTAssertTrue(receiver.all.allSatisfy(\.signatureValid))
        XCTAssertFalse(served.stderr.contains(receiver.secrets.withLock { $0["/hook"] } ?? "whsec_"), "the secret is never logged")
    }
}
