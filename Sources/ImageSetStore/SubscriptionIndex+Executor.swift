import Foundation

/// A synchronous SubscriptionIndex (SQLiteIndex: each write waits for SQLite's one writer) run on
/// the store's blocking executor, like the group commit and the audit writer: webhook delivery
/// writes its cursor every quarter second per subscription, and those waits must not take Swift's
/// cooperative threads from the requests.
struct SubscriptionIndexOnExecutor: SubscriptionIndex {
    let base: any SubscriptionIndex
    let executor: BlockingExecutor

    private func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        try await withTaskExecutorPreference(executor) { try await body() }
    }

    func createSubscription(_ subscription: Subscription) async throws { try await run { try await base.createSubscription(subscription) } }
    func subscriptions() async throws -> [Subscription] { try await run { try await base.subscriptions() } }
    func subscription(id: String) async throws -> Subscription? { try await run { try await base.subscription(id: id) } }
    func deleteSubscription(id: String) async throws -> Bool { try await run { try await base.deleteSubscription(id: id) } }
    func setSubscriptionState(id: String, _ state: Subscription.State) async throws -> Bool {
        try await run { try await base.setSubscriptionState(id: id, state) }
    }
    func acquireSubscriptionLease(id: String, owner: String, duration: TimeInterval) async throws -> Bool {
        try await run { try await base.acquireSubscriptionLease(id: id, owner: owner, duration: duration) }
    }
    func releaseSubscriptionLease(id: String, owner: String) async throws { try await run { try await base.releaseSubscriptionLease(id: id, owner: owner) } }
    func recordSubscriptionProgress(id: String, owner: String, cursor: Int64, delivered: Date?) async throws -> Bool {
        try await run { try await base.recordSubscriptionProgress(id: id, owner: owner, cursor: cursor, delivered: delivered) }
    }
    func recordSubscriptionFailure(id: String, owner: String, error: String, at: Date, failureLimit: Int) async throws -> Subscription? {
        try await run { try await base.recordSubscriptionFailure(id: id, owner: owner, error: error, at: at, failureLimit: failureLimit) }
    }
}
