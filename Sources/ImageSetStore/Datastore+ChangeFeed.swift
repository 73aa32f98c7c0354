import Foundation
import Synchronization

/// The change feed (Docs/events.md): reading it, waiting for it to grow, and its retention.
extension Datastore {
    /// Events after `after`, oldest first, at most `limit` (`ChangeFeedPrunedError` when retention
    /// removed some of them).
    public func changes(after: Int64, limit: Int) async throws -> [ChangeEvent] {
        try await index.changes(after: after, limit: limit)
    }

    public func latestChangeSequence() async throws -> Int64 { try await index.latestChangeSequence() }

    /// The oldest sequence the feed holds or will hold (retention removed those before it).
    public func oldestChangeSequence() async throws -> Int64 { try await index.changeFeedPrunedThrough() + 1 }

    /// How often a waiter re-reads the head when other processes may write the same index (any
    /// index but the embedded SQLite one, which only the folder lock's holder writes): their commits
    /// wake no one here, so they are seen within this interval.
    public static let sharedChangePollInterval: Duration = .milliseconds(500)

    /// Returns the newest sequence once it is above `after`, or when `timeout` has passed (then it
    /// may equal `after`), when the task is cancelled, or when `wakeChangeWaiters` is called. This process's commits wake waiters at
    /// once; on PostgreSQL the head is also re-read every `sharedChangePollInterval`, for the
    /// commits of other replicas (a bounded poll, rather than LISTEN/NOTIFY, which would need a
    /// connection held per replica outside the pool).
    public func waitForChanges(after: Int64, timeout: Duration) async throws -> Int64 {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        let othersWrite = !(index is SQLiteIndex)
        while true {
            // The generation is taken before the read: a commit between the two wakes the wait below.
            let generation = changeSignal.generation
            let latest = try await index.latestChangeSequence()
            let left = deadline - clock.now
            if latest > after || left <= .zero { return latest }
            await changeSignal.wait(since: generation, timeout: othersWrite ? min(left, Self.sharedChangePollInterval) : left)
            // Cancelled: no further read (PostgreSQL's client refuses a cancelled task's query).
            if Task.isCancelled { return latest }
            // Woken by a commit here, or by `wakeChangeWaiters` (a shutdown): the caller decides; a
            // poll's timeout reads again.
            if changeSignal.generation != generation { return try await index.latestChangeSequence() }
        }
    }

    /// Wakes every `waitForChanges` now (they re-read the head): a server shutting down ends its streams.
    public func wakeChangeWaiters() { changeSignal.signal() }

    /// Days of events the feed keeps (nil: all).
    public var changeFeedRetentionDays: Int? {
        guard let value = setting("changeFeedRetentionDays"), let n = Int(value), n >= 1 else { return nil }
        return n
    }

    public func setChangeFeedRetention(days: Int?) async throws {
        if let days, days < 1 { throw BlobStoreError(kind: .io, description: "the change feed keeps at least one day (or, unset, everything)") }
        try await setSetting("changeFeedRetentionDays", days.map(String.init) ?? "")
    }

    /// Removes the events older than the retention setting allows; returns how many went.
    @discardableResult
    public func pruneChangeFeed(now: Date = Date()) async throws -> Int {
        await refreshSettingsIfStale()
        guard let days = changeFeedRetentionDays else { return 0 }
        let index = self.index, before = now.addingTimeInterval(-Double(days) * 86_400)
        // SQLite's deletes wait for its one writer: on the store's executor, off the cooperative threads.
        return try await withTaskExecutorPreference(executor) { try await index.pruneChanges(before: before) }
    }
}

/// Wakes waiters for the change feed when this process commits (`Datastore.store`, `remove`,
/// `prune` call `signal`). A generation counter closes the race between reading the head and
/// starting to wait.
final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var nextID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waits whose timer fired or whose task was cancelled before they registered.
        var expired: Set<UInt64> = []
    }
    private let state = Mutex(State())

    var generation: UInt64 { state.withLock { $0.generation } }

    func signal() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.generation &+= 1
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    /// Returns after a `signal` that came after `generation` was read, after `timeout`, or when the
    /// task is cancelled (a stream whose client went away).
    func wait(since generation: UInt64, timeout: Duration) async {
        let id = state.withLock { s -> UInt64 in
            s.nextID &+= 1
            return s.nextID
        }
        // The timer is cancelled as soon as the wait ends: under a stream of commits each wait ends
        // early, and a sleeper left behind per wait would pile up for a whole heartbeat.
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { resume(id) }
        }
        defer {
            timer.cancel()
            _ = state.withLock { $0.expired.remove(id) }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.generation != generation || Task.isCancelled || s.expired.contains(id) { return true }
                    s.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            resume(id)
        }
    }

    /// Ends wait `id`; one that has not started waiting yet finds it expired when it does.
    private func resume(_ id: UInt64) {
        state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let c = s.waiters.removeValue(forKey: id) else {
                s.expired.insert(id)
                return nil
            }
            return c
        }?.resume()
    }
}
