import Dispatch

/// A task executor on one serial Dispatch queue. Tasks that prefer it (`Task(executorPreference:)`)
/// run their synchronous stretches there: the embedded index's commits and fsyncs block this
/// queue's thread, never one of Swift's cooperative threads (which serve every request), while a
/// network backend's awaits leave the queue free for the next job.
public final class BlockingExecutor: TaskExecutor, @unchecked Sendable {
    private let queue: DispatchQueue

    public init(label: String) { queue = DispatchQueue(label: label) }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
