import Foundation

/// When a burst of requests for the same work is due: once no request has come for `quiet`, or
/// `longest` after the burst's first request, whichever is earlier. Kept apart from the timer so
/// the rule can be tested without sleeping.
///
/// Why not "`quiet` after the first request" (what `DebouncedWork` did before): the work it runs,
/// rebuilding the series metadata documents, costs in proportion to the series' size, so running
/// it twice a second while a series is still receiving made one upload of n instances cost O(n²)
/// in rebuilds (5 % of the server's CPU under STOW load, Docs/performance.md). Waiting for the
/// series to go quiet rebuilds it about once; `longest` still bounds how long a document stays
/// pending under a load that never pauses. A pending document is never stale: readers build it
/// from the instance rows meanwhile.
struct Burst {
    let quiet: Duration
    let longest: Duration
    private(set) var first: ContinuousClock.Instant?
    private(set) var last: ContinuousClock.Instant?

    init(quiet: Duration, longest: Duration) {
        self.quiet = quiet
        self.longest = longest
    }

    mutating func request(at now: ContinuousClock.Instant) {
        if first == nil { first = now }
        last = now
    }

    /// nil when nothing was requested since the last `reset()`.
    var due: ContinuousClock.Instant? {
        guard let first, let last else { return nil }
        return min(last + quiet, first + longest)
    }

    mutating func reset() {
        first = nil
        last = nil
    }
}

/// Runs work once per burst of requests (`Burst`), on the store's blocking executor: the requests
/// made while it waits coalesce; those made while it runs make the next burst, which starts when
/// the run ends, never beside it (two runs would rebuild the same series twice).
final class DebouncedWork: @unchecked Sendable {
    private let lock = NSLock()
    private var burst: Burst
    /// A task is waiting for the burst to be due, or running the work.
    private var active = false
    private var work: (@Sendable () async -> Void)?
    private let executor: BlockingExecutor

    init(quiet: Double, longest: Double, executor: BlockingExecutor) {
        self.executor = executor
        burst = Burst(quiet: .milliseconds(Int64(quiet * 1000)), longest: .milliseconds(Int64(longest * 1000)))
    }

    func schedule(_ work: @escaping @Sendable () async -> Void) {
        let start = lock.withLock { () -> Bool in
            burst.request(at: .now)
            self.work = work
            defer { active = true }
            return !active
        }
        guard start else { return }
        Task(executorPreference: executor) { [self] in
            while true {
                // Later requests move the deadline: sleep until it, then look again.
                let (due, ready) = lock.withLock { () -> (ContinuousClock.Instant?, (@Sendable () async -> Void)?) in
                    guard let due = burst.due else {
                        active = false  // nothing was requested during the last run
                        return (nil, nil)
                    }
                    guard due > .now else {
                        burst.reset()
                        defer { self.work = nil }
                        return (nil, self.work)
                    }
                    return (due, nil)
                }
                if let ready {
                    await ready()
                    continue  // requests made during the run are the next burst
                }
                guard let due else { return }
                try? await Task.sleep(until: due, clock: .continuous)
            }
        }
    }
}
