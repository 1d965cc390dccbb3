public import AegisKV
import Foundation

/// An `ArenaSlabSource` whose thread allocates arena slabs and writes to every page of
/// each, a few slabs ahead of the reader that takes them, so the page faults of filling
/// a large state are taken on a second core.
///
/// Used while a restart parses the stored snapshot (`NodeConfiguration.snapshotPreparer`,
/// a budget of the snapshot's length in slabs plus one) and while it replays a long log
/// (`NodeConfiguration.prefaultsReplayMemory`, no budget: it is stopped when the replay
/// is done): the parsing thread was the restart's critical path, and half of its time
/// went to first writes to fresh pages (`perf`, a 1.1 GB snapshot on the project's
/// 2-core VM).
///
/// Bounded: it prepares at most `budget` slabs in all and at most `ahead` not yet
/// taken; `stop()` frees those left. Created only through a `Lease`.
final class PrefaultingSlabSource: ArenaSlabSource, @unchecked Sendable {
    /// Guards every field below.
    private let condition = NSCondition()
    private var ready: [UnsafeMutableRawPointer] = []
    private var stopped = false
    private var left: Int
    private let ahead: Int
    private let slabBytes = StateMachine.arenaSlabBytes

    /// Owns a source for its user and stops it when released, so an abandoned user
    /// leaves no thread or slabs behind.
    final class Lease: Sendable {
        let source: PrefaultingSlabSource

        init(budget: Int, ahead: Int = 16) { source = PrefaultingSlabSource(budget: budget, ahead: ahead) }

        deinit { source.stop() }
    }

    /// Starts the thread: `budget` slabs in all, at most `ahead` waiting.
    private init(budget: Int, ahead: Int = 16) {
        self.left = max(0, budget)
        self.ahead = max(1, ahead)
        let thread = Thread { [self] in run() }
        thread.name = "aegis-prefault"
        thread.start()
    }

    deinit {
        for slab in ready { slab.deallocate() }  // none after `stop()`
    }

    func takeSlab() -> UnsafeMutableRawPointer? {
        condition.lock()
        defer { condition.unlock() }
        guard !ready.isEmpty else { return nil }
        let slab = ready.removeFirst()
        condition.signal()
        return slab
    }

    /// Stops the thread and frees the slabs not taken.
    func stop() {
        condition.lock()
        stopped = true
        let unused = ready
        ready = []
        condition.signal()
        condition.unlock()
        for slab in unused { slab.deallocate() }
    }

    private func run() {
        let page = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)
        while true {
            condition.lock()
            while !stopped && left > 0 && ready.count >= ahead { condition.wait() }
            guard !stopped && left > 0 else {
                condition.unlock()
                return
            }
            left -= 1
            condition.unlock()
            let slab = UnsafeMutableRawPointer.allocate(byteCount: slabBytes, alignment: 16)
            var offset = 0
            while offset < slabBytes {
                slab.storeBytes(of: 0, toByteOffset: offset, as: UInt8.self)
                offset += page
            }
            condition.lock()
            if stopped {
                condition.unlock()
                slab.deallocate()
                return
            }
            ready.append(slab)
            condition.unlock()
        }
    }
}
