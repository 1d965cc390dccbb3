import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One long-lived thread that runs the closures given to it, in order, at a lower CPU
/// priority than the rest of the process (Linux: the thread's nice value raised by
/// `niceIncrement`; lowering a thread's priority needs no privilege, raising it back
/// would, which is why this is a thread of its own rather than a pool thread).
///
/// Used for snapshots: serializing and writing a large state takes seconds of CPU that
/// must not be taken from the node loops, whose heartbeats keep the leader in place.
final class BackgroundWorker: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var started = false
    private let name: String
    private let niceIncrement: Int32

    init(name: String, niceIncrement: Int32) {
        self.name = name
        self.niceIncrement = niceIncrement
    }

    /// Queues `job`; the thread starts with the first job.
    func run(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        if !started {
            started = true
            let thread = Thread { [self] in loop() }
            thread.name = name
            thread.start()
        }
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        #if os(Linux)
        // `who` 0 with PRIO_PROCESS is the calling thread on Linux. A failure leaves the
        // thread at the process's priority, which is only slower to yield.
        errno = 0
        let current = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        if errno == 0 { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, min(19, current + niceIncrement)) }
        #endif
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let next = jobs.removeFirst()
            condition.unlock()
            next()
        }
    }
}
