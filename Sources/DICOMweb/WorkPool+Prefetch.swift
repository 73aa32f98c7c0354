import NIOConcurrencyHelpers

/// Results made ahead of the one asked for, at most `window` at a time, and handed over in
/// order: a streamed series decodes its next instances on all of the pool's threads while the
/// current one is written, and a multi-frame instance its frames. Asking for `i` starts every
/// index below `i + window` not yet started; a result waits, made or in the making, until it is
/// asked for, so at most `window` results are held besides the one being written (the bound on
/// memory). A failure surfaces when its index is asked for, after every earlier result, as in a
/// serial loop; what was started beyond it is cancelled when the prefetch is dropped.
final class OrderedPrefetch<T: Sendable>: Sendable {
    let count: Int
    let window: Int
    private let make: @Sendable (Int) async throws -> T
    private let state = NIOLockedValueBox(State())

    private struct State {
        var tasks: [Int: Task<T, any Error>] = [:]
        var next = 0
    }

    /// The most results any prefetch has had started and not yet taken (tests assert it stays
    /// within the window).
    static var peakInFlight: Int { prefetchPeak.withLockedValue { $0 } }
    static func resetPeak() { prefetchPeak.withLockedValue { $0 = 0 } }

    init(count: Int, window: Int, _ make: @escaping @Sendable (Int) async throws -> T) {
        self.count = count
        self.window = max(window, 1)
        self.make = make
    }

    /// Result `i`; indices are asked for in increasing order (a body writing parts).
    func value(_ i: Int) async throws -> T {
        let make = self.make
        let task: Task<T, any Error> = state.withLockedValue { s in
            while s.next < min(i + window, count) {
                let n = s.next
                s.tasks[n] = Task { try await make(n) }
                s.next += 1
            }
            let inFlight = s.tasks.count
            prefetchPeak.withLockedValue { $0 = max($0, inFlight) }
            return s.tasks.removeValue(forKey: i) ?? Task { try await make(i) }
        }
        return try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
    }

    deinit {
        for task in state.withLockedValue({ $0.tasks.values }) { task.cancel() }
    }
}

private let prefetchPeak = NIOLockedValueBox(0)

extension WorkPool {
    /// Results in flight for one response: twice the threads, so each thread has the next piece
    /// of work queued when it finishes one.
    var prefetchWindow: Int { 2 * concurrency }
}
