import Foundation
import Synchronization

extension Datastore {
    /// Where the store reports what only it sees (group-commit batch sizes); set by the server.
    public var metrics: (any StoreMetrics)? {
        get { metricsHook.withLock { $0 } }
    }

    public func report(to metrics: (any StoreMetrics)?) { metricsHook.withLock { $0 = metrics } }

    /// Stores candidates together with those of concurrent callers: the group shares one `sync()` of
    /// the blob store and one index transaction (group commit), so many clients storing one instance
    /// per request pay for one flush between them instead of one each. The caller suspends, holding
    /// no thread, until its group has committed; its outcomes are its own, in order.
    /// With `audit`, the request's audit record commits in the group's transaction; `alsoFailed`
    /// counts the request's parts refused before they got here.
    public func storeGrouped(_ candidates: [Candidate], reason: String, audit: AuditContext? = nil, alsoFailed: Int = 0) async -> [IngestOutcome] {
        if candidates.isEmpty {
            if let audit { await recordFailedChange(Self.storeEvents([AuditClaim(context: audit, range: 0..<0, alsoFailed: alsoFailed)], outcomes: [], patients: [:])) }
            return []
        }
        return await withCheckedContinuation { continuation in
            groupCommit.submit(GroupCommit.Request(candidates: candidates, reason: reason, audit: audit, alsoFailed: alsoFailed,
                                                   continuation: continuation), store: self)
        }
    }
}

/// The queue behind `storeGrouped`: whoever finds it idle starts a drain, a task on the store's
/// blocking executor (blocking I/O stays off Swift's cooperative pool); requests arriving meanwhile
/// form the next group.
final class GroupCommit: @unchecked Sendable {
    struct Request {
        let candidates: [Datastore.Candidate]
        let reason: String
        let audit: AuditContext?
        let alsoFailed: Int
        let continuation: CheckedContinuation<[IngestOutcome], Never>
    }

    private let lock = NSLock()
    private var waiting: [Request] = []
    private var draining = false

    func submit(_ request: Request, store: Datastore) {
        let start = lock.withLock { () -> Bool in
            waiting.append(request)
            defer { draining = true }
            return !draining
        }
        if start { Task(executorPreference: store.executor) { await self.drain(store) } }
    }

    private func drain(_ store: Datastore) async {
        while true {
            let group = lock.withLock { () -> [Request] in
                let taken = waiting
                waiting = []
                if taken.isEmpty { draining = false }
                return taken
            }
            if group.isEmpty { return }
            let reasons = Set(group.map(\.reason))
            var claims: [Datastore.AuditClaim] = []
            var start = 0
            for request in group {
                if let audit = request.audit {
                    claims.append(.init(context: audit, range: start..<(start + request.candidates.count), alsoFailed: request.alsoFailed))
                }
                start += request.candidates.count
            }
            let started = ContinuousClock.now
            let outcomes = await store.store(group.flatMap(\.candidates), reason: reasons.count == 1 ? group[0].reason : reasons.sorted().joined(separator: ", "),
                                       audit: claims)
            store.metrics?.groupCommitted(batch: group.reduce(0) { $0 + $1.candidates.count }, duration: ContinuousClock.now - started)
            var next = 0
            for request in group {
                request.continuation.resume(returning: Array(outcomes[next..<(next + request.candidates.count)]))
                next += request.candidates.count
            }
        }
    }
}
