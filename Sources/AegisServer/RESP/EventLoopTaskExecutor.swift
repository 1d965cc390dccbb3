import NIOCore

/// Runs a task's jobs on a NIO event loop (a task executor preference, SE-0417).
///
/// Why: each client connection is served by a Swift task. On the global concurrent
/// executor, every reply cost two thread hand-offs: the node loop resumed the waiting
/// task on a pool thread, which then handed the encoded reply to the connection's event
/// loop. With the connection's own event loop as the task's preferred executor the node
/// loop resumes the task right where its socket is, and the reply is written there.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
