import Dispatch

/// A thread blocked in `GroupCommitEngine.wait(for:)` until the batch holding its
/// write is durable (or the storage failed).
///
/// Each waiter parks on a semaphore of its own, so the writer wakes exactly the
/// threads its `fdatasync` covered: no broadcast, no herd of threads waking only to
/// find their batch still in flight, and no woken thread needing the engine's lock.
/// The writer itself wakes only the first waiter of a batch; every woken waiter then
/// wakes two more (`wakeTree`), so the 64 wake-ups of a 64-appender batch are spread
/// over the woken threads instead of delaying the writer's next `fdatasync`.
///
/// `@unchecked Sendable`: `outcome` and `children` are written by the releasing thread
/// before it signals the root of the tree and read only after `semaphore.wait()`
/// returns; every signal happens after those writes (directly or along the tree), so
/// the semaphore orders them.
final class Parker: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private var outcome: StorageError?
    private var children: [Parker] = []

    /// Blocks until released; returns the error the write failed with, if any.
    func park() -> StorageError? {
        semaphore.wait()
        for child in children { child.semaphore.signal() }
        return outcome
    }

    /// Releases `parkers` with `outcome` (`nil`: durable): sets every result, arranges
    /// them as a binary tree and wakes its root, which wakes the rest.
    static func wakeTree(_ parkers: [Parker], outcome: StorageError?) {
        guard let root = parkers.first else { return }
        for (k, parker) in parkers.enumerated() {
            parker.outcome = outcome
            let left = 2 * k + 1
            parker.children = left + 1 < parkers.count ? [parkers[left], parkers[left + 1]]
                : left < parkers.count ? [parkers[left]] : []
        }
        root.semaphore.signal()
    }
}
