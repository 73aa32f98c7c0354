@testable import DICOMweb
import DICOMParser
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import Logging
import NIOCore
import TestSupport
import Webhooks
import XCTest

/// Webhook delivery (issue 14 §2; Docs/events.md, "Webhooks"): the in-process store and routes, the
/// real dispatcher, and receivers on real loopback ports.
final class WebhookTests: DICOMwebTestCase, @unchecked Sendable {
    /// Backoff in milliseconds, so that a test sees many failures in well under a second.
    static func options(failureLimit: Int = 1000) -> WebhookOptions {
        var o = WebhookOptions()
        o.failureLimit = failureLimit
        o.backoff = WebhookBackoff(base: 0.005, maximum: 0.05)
        o.connectTimeout = 1
        o.requestTimeout = 2
        o.pollInterval = 0.05
        o.leaseDuration = 3
        return o
    }

    func dispatcher(_ options: WebhookOptions = options()) -> WebhookDispatcher {
        var logger = Logger(label: "test.webhooks")
        logger.logLevel = .critical
        return WebhookDispatcher(index: store.subscriptions, source: FeedEventSource(store: store), options: options, logger: logger)
    }

    /// POST /subscriptions; returns its id and the generated secret.
    func subscribe(_ client: any TestClientProtocol, _ fields: [String: Any]) async throws -> (id: String, secret: String) {
        try await client.execute(uri: "/subscriptions", method: .post, headers: [.contentType: "application/json"],
                                 body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: fields))) { r in
            XCTAssertEqual(r.status, .created, String(buffer: r.body))
            let o = try XCTUnwrap(try Self.json(r.body) as? [String: Any])
            return (try XCTUnwrap(o["id"] as? String), try XCTUnwrap(o["secret"] as? String))
        }
    }

    func show(_ client: any TestClientProtocol, _ id: String) async throws -> [String: Any] {
        try await client.execute(uri: "/subscriptions/\(id)", method: .get) { r in
            XCTAssertEqual(r.status, .ok)
            return try XCTUnwrap(try Self.json(r.body) as? [String: Any])
        }
    }

    func stowOne(_ client: any TestClientProtocol, _ n: Int, study: String = study, patient: String? = nil) async throws {
        var extra: [DataElement] = []
        if let patient { extra.append(Self.text(0x0010_0020, .LO, patient)) }
        let sop = "\(study).9.\(n)"
        let (status, _) = try await stow(client, [try Self.instance(sop: sop, study: study, series: study + ".1", extra: extra)])
        XCTAssertEqual(status, .ok)
    }

    /// The feed's events, all of them, as the receiver must have seen them.
    func feed() async throws -> [ChangeEvent] { try await store.index.changes(after: 0, limit: 10_000) }

    /// The test: a receiver that is down (port closed), then answers 500, then 200, gets
    /// every event, in order, with valid signatures; meanwhile GET /subscriptions/{id} shows the
    /// failures and the last error.
    func testReceiverDownThenFailingThenUpGetsEveryEventInOrderSigned() async throws {
        let receiver = WebhookReceiver()
        let webhooks = dispatcher()
        webhooks.start()
        try await withApp { client in
            let (id, secret) = try await self.subscribe(client, ["url": receiver.url, "after": 0])
            receiver.secrets.withLock { $0["/hook"] = secret }
            for n in 1...3 { try await self.stowOne(client, n) }
            // Down: connections refused, counted, shown.
            try await eventually("failures while the port is closed") {
                let s = try await self.show(client, id)
                return (s["consecutiveFailures"] as? Int ?? 0) >= 3 && (s["lastError"] as? String) == "connection refused"
            }
            let down = try await self.show(client, id)
            XCTAssertEqual(down["state"] as? String, "active")
            XCTAssertEqual(down["cursor"] as? Int, 0)
            XCTAssertGreaterThan(down["lag"] as? Int ?? 0, 0)
            // Up, answering 500.
            receiver.status.withLock { $0 = 500 }
            try await receiver.start()
            try await eventually("500s") { receiver.all.count >= 3 }
            try await eventually("the 500 shown") { (try await self.show(client, id)["lastError"] as? String) == "HTTP 500" }
            try await self.stowOne(client, 4)
            // Up and accepting.
            receiver.status.withLock { $0 = 200 }
            let latest = try await self.store.index.latestChangeSequence()
            try await eventually("the cursor at the feed's head") { (try await self.show(client, id)["cursor"] as? Int) == Int(latest) }
            let s = try await self.show(client, id)
            XCTAssertEqual(s["lag"] as? Int, 0)
            XCTAssertEqual(s["consecutiveFailures"] as? Int, 0)
            XCTAssertTrue(s["lastError"] is NSNull)
            XCTAssertNotNil(s["lastDelivery"] as? String)
            XCTAssertNil(s["secret"])
        }
        await webhooks.stop()
        await receiver.stop()
        let feed = try await feed()
        let accepted = receiver.accepted()
        // Every event exactly once among the 2xx, in sequence order, each body the feed's own JSON.
        XCTAssertEqual(accepted.compactMap(\.sequence), feed.map(\.sequence))
        XCTAssertEqual(accepted.map(\.body), feed.map { Array($0.json) })
        XCTAssertEqual(accepted.compactMap { $0.headers["tessera-event-type"] }, feed.map(\.type.rawValue))
        XCTAssertTrue(receiver.all.allSatisfy(\.signatureValid))
        XCTAssertGreaterThan(receiver.all.count, accepted.count)  // the 500s were retried
        // The receiver's check as Docs/events.md writes it, in Python.
        let secret = try XCTUnwrap(receiver.secrets.withLock { $0["/hook"] })
        let python = try receiver.verifyWithDocsSnippet(secret: secret)
        XCTAssertEqual(python.valid, python.total)
        XCTAssertEqual(python.total, receiver.all.count)
    }

    /// After the failure limit the subscription is failing and nothing more is sent; re-enabled,
    /// it resumes from its cursor (the first undelivered event), and misses nothing.
    func testFailingAfterTheLimitResumesFromItsCursorWhenEnabled() async throws {
        let receiver = WebhookReceiver()
        receiver.status.withLock { $0 = 503 }
        try await receiver.start()
        let webhooks = dispatcher(Self.options(failureLimit: 3))
        webhooks.start()
        try await withApp { client in
            let (id, secret) = try await self.subscribe(client, ["url": receiver.url, "eventTypes": ["instance.stored"]])
            receiver.secrets.withLock { $0["/hook"] = secret }
            try await self.stowOne(client, 1)
            try await eventually("failing") { (try await self.show(client, id)["state"] as? String) == "failing" }
            let failing = try await self.show(client, id)
            XCTAssertEqual(failing["consecutiveFailures"] as? Int, 3)
            XCTAssertEqual(failing["lastError"] as? String, "HTTP 503")
            try await self.stowOne(client, 2)
            try await Task.sleep(nanoseconds: 300_000_000)
            XCTAssertEqual(receiver.all.count, 3, "a failing subscription is not delivered to")
            receiver.status.withLock { $0 = 200 }
            try await client.execute(uri: "/subscriptions/\(id)/enable", method: .post) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual((try Self.json(r.body) as? [String: Any])?["state"] as? String, "active")
            }
            try await eventually("both instances delivered") { receiver.accepted().count == 2 }
        }
        await webhooks.stop()
        await receiver.stop()
        let stored = try await feed().filter { $0.type == .instanceStored }
        XCTAssertEqual(receiver.accepted().compactMap(\.sequence), stored.map(\.sequence))
        XCTAssertTrue(receiver.all.allSatisfy(\.signatureValid))
    }

    /// Event-type, study and patient filters; events passed over still move the cursor.
    func testFiltersDeliverOnlyWhatWasAskedFor() async throws {
        let receiver = WebhookReceiver()
        try await receiver.start()
        let webhooks = dispatcher()
        let other = "1.2.826.0.1.3680043.9.7433.3"
        try await withApp { client in
            let deleted = try await self.subscribe(client, ["url": receiver.url + "/deleted", "eventTypes": ["instance.deleted"]])
            let study = try await self.subscribe(client, ["url": receiver.url + "/study", "studyInstanceUID": other])
            let patient = try await self.subscribe(client, ["url": receiver.url + "/patient", "patientID": "PAT-7", "eventTypes": ["instance.stored"]])
            receiver.secrets.withLock { $0 = ["/hook/deleted": deleted.secret, "/hook/study": study.secret, "/hook/patient": patient.secret] }
            webhooks.start()
            try await self.stowOne(client, 1)
            try await self.stowOne(client, 2, study: other, patient: "PAT-7")
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)", method: .delete) { XCTAssertEqual($0.status, .ok) }
            let latest = try await self.store.index.latestChangeSequence()
            for id in [deleted.id, study.id, patient.id] {
                try await eventually("cursor of \(id) at the head") { (try await self.show(client, id)["cursor"] as? Int) == Int(latest) }
            }
        }
        await webhooks.stop()
        await receiver.stop()
        let feed = try await feed()
        XCTAssertEqual(receiver.accepted("/hook/deleted").compactMap(\.sequence), feed.filter { $0.type == .instanceDeleted }.map(\.sequence))
        XCTAssertEqual(receiver.accepted("/hook/study").compactMap(\.sequence), feed.filter { $0.studyInstanceUID == other }.map(\.sequence))
        XCTAssertEqual(receiver.accepted("/hook/patient").compactMap(\.sequence),
                       feed.filter { $0.type == .instanceStored && $0.patientID == "PAT-7" }.map(\.sequence))
        XCTAssertFalse(receiver.accepted("/hook/deleted").isEmpty)
        XCTAssertFalse(receiver.accepted("/hook/patient").isEmpty)
        XCTAssertTrue(receiver.all.allSatisfy(\.signatureValid))
    }

    /// Two dispatchers on one index (as two replicas would be): the lease lets one deliver at a
    /// time, so no event arrives twice and the order holds.
    func testTwoDispatchersDeliverEachEventOnce() async throws {
        let receiver = WebhookReceiver()
        try await receiver.start()
        let (a, b) = (dispatcher(), dispatcher())
        a.start()
        b.start()
        try await withApp { client in
            let (id, secret) = try await self.subscribe(client, ["url": receiver.url])
            receiver.secrets.withLock { $0["/hook"] = secret }
            for n in 1...4 { try await self.stowOne(client, n) }
            let latest = try await self.store.index.latestChangeSequence()
            try await eventually("the cursor at the head") { (try await self.show(client, id)["cursor"] as? Int) == Int(latest) }
        }
        await a.stop()
        await b.stop()
        await receiver.stop()
        let all = try await feed()
        XCTAssertEqual(receiver.all.compactMap(\.sequence), all.map(\.sequence))
    }
}
