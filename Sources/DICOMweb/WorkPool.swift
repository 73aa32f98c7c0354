import Dispatch
import HTTPTypes
import NIOConcurrencyHelpers

/// Decoding, transcoding and rendering: CPU-bound work that one client could otherwise pile on
/// until nothing else runs. Requests that need it are admitted up to `concurrency + queue` at a
/// time, each holding a `Ticket` until its response body ends; beyond that they get 503 with
/// `Retry-After` before any work starts. Each piece of work (one frame, one image) runs on a
/// Dispatch thread, `concurrency` at a time, never on Swift's cooperative threads: those stay free
/// for /health, QIDO and stored-frame reads, which never enter the pool (Docs/security.md, "Limits").
public final class WorkPool: Sendable {
    public let concurrency: Int
    public let queue: Int
    /// Seconds a refused client is told to wait.
    public let retryAfter: Int
    private let admitted = NIOLockedValueBox(0)
    private let slots: Slots

    public init(concurrency: Int, queue: Int, retryAfter: Int = 1) {
        self.concurrency = max(concurrency, 1)
        self.queue = max(queue, 0)
        self.retryAfter = max(retryAfter, 1)
        slots = Slots(self.concurrency)
    }

    /// Held by one admitted request; released when dropped (the response body ended or was never sent).
    public final class Ticket: Sendable {
        let pool: WorkPool
        init(_ pool: WorkPool) { self.pool = pool }
        deinit { pool.admitted.withLockedValue { $0 -= 1 } }
    }

    /// A ticket, or 503 with `Retry-After` when `concurrency + queue` requests already hold one.
    func admit() throws -> Ticket {
        let capacity = concurrency + queue
        let ok = admitted.withLockedValue { n -> Bool in
            guard n < capacity else { return false }
            n += 1
            return true
        }
        guard ok else {
            throw DICOMwebError(.serviceUnavailable, "the server is busy decoding and rendering for \(capacity) requests; retry in \(retryAfter) s",
                                headers: [.retryAfter: String(retryAfter)])
        }
        return Ticket(self)
    }

    /// Requests holding a ticket now.
    public var inUse: Int { admitted.withLockedValue { $0 } }

    /// `work` on a Dispatch thread once one of the `concurrency` slots is free.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        await slots.acquire()
        do {
            let result = try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
            }
            await slots.release()
            return result
        } catch {
            await slots.release()
            throw error
        }
    }

    /// A counting semaphore that suspends waiters instead of blocking threads.
    actor Slots {
        private var free: Int
        private var waiters: [CheckedContinuation<Void, Never>] = []
        init(_ n: Int) { free = n }

        func acquire() async {
            if free > 0 {
                free -= 1
                return
            }
            await withCheckedContinuation { waiters.append($0) }
        }

        func release() {
            if waiters.isEmpty {
                free += 1
            } else {
                waiters.removeFirst().resume()
            }
        }
    }
}
