import Foundation
import ImageSetStore
import StoreTestSupport
import XCTest

/// Subscriptions and their delivery state in the index (SQLite, and PostgreSQL with
/// TESSERA_TEST_INDEX=postgresql): the lease keeps one deliverer per subscription, and only the
/// lease holder moves a cursor or counts a failure.
final class SubscriptionIndexTests: XCTestCase {
    var folder = ""
    var store: Datastore!

    override func setUp() async throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-subs-\(UUID().uuidString)").path
        store = try await TestBackends.datastore(folder: folder)
    }

    override func tearDown() {
        store = nil
        try? FileManager.default.removeItem(atPath: folder)
    }

    func make(_ url: String = "https://example.org/hook", cursor: Int64 = 0) -> Subscription {
        Subscription(id: Subscription.newID(), url: url, eventTypes: ["instance.stored"], studyInstanceUID: "1.2.3", patientID: nil,
                     secret: Subscription.generateSecret(), created: Date(), cursor: cursor)
    }

    func testStoredAsGivenListedDeletedAndReEnabled() async throws {
        let index = store.subscriptions
        let a = make(cursor: 7), b = make("http://example.org/b")
        try await index.createSubscription(a)
        try await index.createSubscription(b)
        let read = try await XCTUnwrapAsync(try await index.subscription(id: a.id))
        XCTAssertEqual(read.url, a.url)
        XCTAssertEqual(read.secret, a.secret)
        XCTAssertEqual(read.eventTypes, ["instance.stored"])
        XCTAssertEqual(read.studyInstanceUID, "1.2.3")
        XCTAssertNil(read.patientID)
        XCTAssertEqual(read.cursor, 7)
        XCTAssertEqual(read.state, .active)
        await XCTAssertEqualAsync(try await index.subscriptions().map(\.id), [a.id, b.id])
        // Failures count up to the limit, then the subscription is failing; enabling clears them.
        await XCTAssertTrueAsync(try await index.acquireSubscriptionLease(id: a.id, owner: "r1", duration: 30))
        for n in 1...3 {
            let s = try await XCTUnwrapAsync(try await index.recordSubscriptionFailure(id: a.id, owner: "r1", error: "HTTP 500", at: Date(), failureLimit: 3))
            XCTAssertEqual(s.consecutiveFailures, n)
            XCTAssertEqual(s.state, n < 3 ? .active : .failing)
            XCTAssertEqual(s.lastError, "HTTP 500")
        }
        await XCTAssertTrueAsync(try await index.setSubscriptionState(id: a.id, .active))
        let enabled = try await XCTUnwrapAsync(try await index.subscription(id: a.id))
        XCTAssertEqual(enabled.state, .active)
        XCTAssertEqual(enabled.consecutiveFailures, 0)
        XCTAssertNil(enabled.lastError)
        XCTAssertEqual(enabled.cursor, 7, "re-enabling keeps the cursor")
        await XCTAssertTrueAsync(try await index.deleteSubscription(id: a.id))
        await XCTAssertFalseAsync(try await index.deleteSubscription(id: a.id))
        await XCTAssertFalseAsync(try await index.setSubscriptionState(id: a.id, .active))
        await XCTAssertEqualAsync(try await index.subscriptions().map(\.id), [b.id])
    }

    func testOnlyTheLeaseHolderDeliversAndMovesTheCursor() async throws {
        let index = store.subscriptions
        let s = make()
        try await index.createSubscription(s)
        await XCTAssertTrueAsync(try await index.acquireSubscriptionLease(id: s.id, owner: "replica-1", duration: 0.5))
        await XCTAssertFalseAsync(try await index.acquireSubscriptionLease(id: s.id, owner: "replica-2", duration: 0.5))
        await XCTAssertTrueAsync(try await index.acquireSubscriptionLease(id: s.id, owner: "replica-1", duration: 0.5), "renewal")
        await XCTAssertTrueAsync(try await index.recordSubscriptionProgress(id: s.id, owner: "replica-1", cursor: 5, delivered: Date()))
        await XCTAssertFalseAsync(try await index.recordSubscriptionProgress(id: s.id, owner: "replica-2", cursor: 9, delivered: Date()))
        await XCTAssertNilAsync(try await index.recordSubscriptionFailure(id: s.id, owner: "replica-2", error: "x", at: Date(), failureLimit: 1))
        // The cursor never goes back.
        await XCTAssertTrueAsync(try await index.recordSubscriptionProgress(id: s.id, owner: "replica-1", cursor: 3, delivered: nil))
        await XCTAssertEqualAsync(try await index.subscription(id: s.id)?.cursor, 5)
        // Expired (replica-1 died): replica-2 takes over, and replica-1's late writes are refused.
        try await Task.sleep(nanoseconds: 700_000_000)
        await XCTAssertTrueAsync(try await index.acquireSubscriptionLease(id: s.id, owner: "replica-2", duration: 30))
        await XCTAssertFalseAsync(try await index.recordSubscriptionProgress(id: s.id, owner: "replica-1", cursor: 6, delivered: Date()))
        await XCTAssertTrueAsync(try await index.recordSubscriptionProgress(id: s.id, owner: "replica-2", cursor: 6, delivered: Date()))
        // Released on shutdown: another takes it at once.
        try await index.releaseSubscriptionLease(id: s.id, owner: "replica-2")
        await XCTAssertTrueAsync(try await index.acquireSubscriptionLease(id: s.id, owner: "replica-3", duration: 30))
        let last = try await XCTUnwrapAsync(try await index.subscription(id: s.id))
        XCTAssertEqual(last.cursor, 6)
        XCTAssertNotNil(last.lastDelivery)
    }
}
