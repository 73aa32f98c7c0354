import NIOCore
import Synchronization

/// A task executor on one NIO event loop (BlockingExecutor's counterpart for work that talks to a
/// channel). A PostgreSQL transaction of several statements that runs on its connection's event loop
/// (`PostgresIndex.write(onConnectionsLoop:)`) sends each statement from the loop and is resumed there
/// when the answer arrives: no thread wakes for either, where otherwise every statement is a hop to
/// the loop and a hop back to the task's thread (a futex wake and a context switch each way). The
/// loop runs the task's code between its I/O, so only short stretches that never block belong here.
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    public let eventLoop: any EventLoop

    private init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// One executor per loop, kept for the process's life (it holds its loop, so an id is never reused).
    private static let executors = Mutex<[ObjectIdentifier: EventLoopTaskExecutor]>([:])

    public static func of(_ eventLoop: any EventLoop) -> EventLoopTaskExecutor {
        executors.withLock { all in
            if let known = all[ObjectIdentifier(eventLoop)] { return known }
            let made = EventLoopTaskExecutor(eventLoop)
            all[ObjectIdentifier(eventLoop)] = made
            return made
        }
    }
}
