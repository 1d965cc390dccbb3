import AegisRaft
import Foundation

/// The group commit: callers fill one batch under a lock while a dedicated writer
/// thread writes the previous batch with one `write` and one `fdatasync`, then wakes
/// every caller whose records it covered. A batch therefore holds everything that
/// arrived while the previous fsync ran.
///
/// Only the writer, `shutdown` and (without a writer thread) an inline writer waiting for
/// another to finish ever wait on `condition`; blocked callers park on
/// a `Parker` of their own and are woken only once their batch is durable.
final class GroupCommitEngine: @unchecked Sendable {
    typealias Continuation = CheckedContinuation<Result<Void, StorageError>, Never>

    /// Everything guarded by the lock.
    struct Core {
        var log: LogState
        var pending: Batch
        /// An emptied buffer handed back by the writer, reused for the next batch.
        var spare: [UInt8] = []
        /// The last ticket handed out. Invariant: `durable <= issued`.
        var issued: UInt64 = 0
        /// The last ticket whose batch is durable.
        var durable: UInt64 = 0
        var failure: StorageError?
        var closing = false
        var running = false
        /// Without a writer thread: a caller is writing a batch (outside the lock). Others
        /// wait for it, so batches are written one at a time and in order.
        var inlineWriting = false
        var writerIdle = false
        /// Set when the last write failed for want of space: the pending batch (which
        /// starts with the failed one) waits until a caller asks again (a new write or a
        /// wait), so that a full disk is not retried in a loop.
        var heldAfterNoSpace = false
        var waiters: [(ticket: UInt64, continuation: Continuation)] = []
        /// Threads blocked in `wait(for:)`, released by the writer.
        var parked: [(ticket: UInt64, parker: Parker)] = []
        var stats = WALStatistics()

        var latestTicket: WriteTicket { WriteTicket(sequence: issued) }

        func checkOpen() throws(StorageError) {
            if let failure { throw .stopped(reason: failure.description) }
            if closing { throw .stopped(reason: "the storage was closed") }
        }

        /// Adds entries (after checking the append contract) and a changed hard state.
        mutating func submit(hardState: RaftState?, entries: [LogEntry]) throws(StorageError) -> WriteTicket {
            try checkOpen()
            let toAppend = try log.validateAppend(entries)
            var wrote = false
            if let first = toAppend.first {
                if pending.firstEntryIndex == nil { pending.firstEntryIndex = first.index }
                for entry in toAppend { RecordFrame.appendEntry(entry, to: &pending.bytes) }
                pending.maxEntryIndex = max(pending.maxEntryIndex, first.index + LogIndex(toAppend.count) - 1)
                pending.entryCount += toAppend.count
                log.append(toAppend)
                wrote = true
            }
            // The hard state goes after the entries: a torn batch that kept it kept them.
            if let hardState, hardState != log.hardState {
                log.hardState = hardState
                RecordFrame.appendHardState(hardState, to: &pending.bytes)
                wrote = true
            }
            return wrote ? enqueue() : latestTicket
        }

        /// Records a snapshot (already durable in its file).
        mutating func recordSnapshot(_ metadata: SnapshotMetadata, resetsLog: Bool) throws(RaftError) -> WriteTicket {
            do { try checkOpen() } catch { throw error.asRaftError }
            if resetsLog {
                log.reset(to: metadata.index, term: metadata.term)
                pending.obsoleteThrough = .max
            }
            log.snapshot = metadata
            RecordFrame.appendSnapshot(metadata, resetsLog: resetsLog, to: &pending.bytes)
            pending.pruneSnapshotsKeeping = metadata.index
            return enqueue()
        }

        /// Discards the entries before `index`; `nil` when there is nothing to do.
        mutating func compact(upTo index: LogIndex) throws(RaftError) -> WriteTicket? {
            do { try checkOpen() } catch { throw error.asRaftError }
            if index <= log.offset { return nil }
            if index > log.lastIndex { throw .unavailable }
            let term = try log.term(at: index)
            log.compact(upTo: index)
            RecordFrame.appendCompact(index: index, term: term, to: &pending.bytes)
            pending.obsoleteThrough = max(pending.obsoleteThrough ?? 0, index)
            return enqueue()
        }

        private mutating func enqueue() -> WriteTicket {
            heldAfterNoSpace = false
            issued += 1
            pending.lastTicket = issued
            return WriteTicket(sequence: issued)
        }
    }

    private let condition = NSCondition()
    private var core: Core
    /// Confined to the writer thread once it has started.
    private let files: SegmentWriter

    /// `false`: no writer thread; a caller that waits for durability writes the
    /// pending batches itself (`DiskStorageOptions.writerThread`).
    private let threaded: Bool

    init(log: LogState, files: SegmentWriter, threaded: Bool = true) {
        core = Core(log: log, pending: Batch(log))
        core.stats = files.stats
        self.files = files
        self.threaded = threaded
    }

    /// Runs `body` under the lock, then wakes the writer if it sleeps and work arrived.
    func locked<T, E: Error>(_ body: (inout Core) throws(E) -> T) throws(E) -> T {
        condition.lock()
        defer {
            wakeIdleWriter()
            condition.unlock()
        }
        return try body(&core)
    }

    var statistics: WALStatistics { locked { $0.stats } }

    func start() {
        condition.lock()
        core.running = true
        condition.unlock()
        guard threaded else { return }
        let thread = Thread { [self] in self.run() }
        thread.name = "aegis-wal-writer"
        thread.start()
    }

    /// Blocks until `ticket` is durable; throws the write's error if it failed.
    func wait(for ticket: WriteTicket) throws(StorageError) {
        if !threaded { return try writeInline(until: ticket.sequence) }
        condition.lock()
        let parker: Parker?
        do { parker = try park(for: ticket.sequence) } catch {
            condition.unlock()
            throw error
        }
        condition.unlock()
        if let error = parker?.park() { throw error }
    }

    /// Submits and, with `sync`, blocks until the write is durable: one trip through
    /// the lock for both.
    func save(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws(StorageError) {
        if !threaded {
            let ticket = try locked { (core) throws(StorageError) in try core.submit(hardState: hardState, entries: entries) }
            if sync { try writeInline(until: ticket.sequence) }
            return
        }
        condition.lock()
        let parker: Parker?
        do {
            let ticket = try core.submit(hardState: hardState, entries: entries)
            parker = sync ? try park(for: ticket.sequence) : nil
        } catch {
            wakeIdleWriter()
            condition.unlock()
            throw error
        }
        wakeIdleWriter()
        condition.unlock()
        if let error = parker?.park() { throw error }
    }

    /// Under the lock: `nil` when `ticket` is already durable, else a registered parker.
    /// Waiting for a write that failed for want of space retries it.
    private func park(for ticket: UInt64) throws(StorageError) -> Parker? {
        if core.durable >= ticket { return nil }
        if let failure = core.failure { throw failure }
        if !core.running { throw .stopped(reason: "the storage was closed") }
        if core.heldAfterNoSpace {
            core.heldAfterNoSpace = false
            wakeIdleWriter()
        }
        let parker = Parker()
        core.parked.append((ticket, parker))
        return parker
    }

    /// Under the lock: wakes the writer if it sleeps and work arrived.
    private func wakeIdleWriter() {
        if core.writerIdle && !core.pending.isEmpty && !core.heldAfterNoSpace { condition.broadcast() }
    }

    /// Submits and registers `continuation` to be resumed when the write is durable.
    func submitAsync(hardState: RaftState?, entries: [LogEntry], continuation: Continuation) {
        if !threaded {
            do {
                try save(hardState: hardState, entries: entries, sync: true)
                continuation.resume(returning: .success(()))
            } catch {
                continuation.resume(returning: .failure(error))
            }
            return
        }
        condition.lock()
        let outcome: Result<WriteTicket, StorageError>
        do { outcome = .success(try core.submit(hardState: hardState, entries: entries)) } catch { outcome = .failure(error) }
        switch outcome {
        case .success(let ticket) where ticket.sequence > core.durable:
            core.waiters.append((ticket.sequence, continuation))
            core.heldAfterNoSpace = false
            if core.writerIdle { condition.broadcast() }
            condition.unlock()
        case .success:
            condition.unlock()
            continuation.resume(returning: .success(()))
        case .failure(let error):
            condition.unlock()
            continuation.resume(returning: .failure(error))
        }
    }

    /// Marks the storage failed (an I/O error outside the writer thread).
    func fail(with error: StorageError) {
        condition.lock()
        if core.failure == nil { core.failure = error }
        let parked = takeParked(all: true)
        let outcome = core.failure ?? error
        condition.broadcast()
        condition.unlock()
        Parker.wakeTree(parked, outcome: outcome)
    }

    /// Writes what is pending, stops the writer thread and closes the segment file.
    func shutdown() {
        if !threaded {
            condition.lock()
            let wasRunning = core.running
            core.closing = true
            let last = core.issued
            condition.unlock()
            guard wasRunning else { return }
            try? writeInline(until: last, closing: true)
            condition.lock()
            core.running = false
            condition.unlock()
            files.close()
            return
        }
        condition.lock()
        core.closing = true
        condition.broadcast()
        while core.running { condition.wait() }
        condition.unlock()
    }

    /// The writer thread: take the pending batch, write and sync it, acknowledge it.
    ///
    /// A write that fails for want of space (`StorageError.noSpace`) is not fatal: its
    /// batch goes back in front of the pending one, every caller waiting so far gets the
    /// error, and the writer waits for a caller to ask again (see `heldAfterNoSpace`).
    private func run() {
        condition.lock()
        while true {
            while (core.pending.isEmpty || core.heldAfterNoSpace) && !core.closing && core.failure == nil {
                core.writerIdle = true
                condition.wait()
            }
            core.writerIdle = false
            // Closing after a failed retryable write: those records were never
            // acknowledged (their callers got the error), and the disk is still full.
            if core.pending.isEmpty || core.failure != nil || (core.closing && core.heldAfterNoSpace) { break }
            let (parked, ready, outcome) = writeBatch()
            condition.unlock()
            wake(parked, ready, outcome)
            condition.lock()
        }
        let remaining = takeWaiters(all: true)
        let parked = takeParked(all: true)
        let outcome = core.failure ?? .stopped(reason: "the storage was closed")
        core.running = false
        condition.broadcast()
        condition.unlock()
        files.close()
        Parker.wakeTree(parked, outcome: outcome)
        for (continuation, result) in remaining { continuation.resume(returning: result) }
    }

    /// Under the lock, which it releases around the I/O: writes and syncs the pending
    /// batch and records the outcome. Returns who to wake (outside the lock).
    private func writeBatch() -> (parked: [Parker], ready: [(Continuation, Result<Void, StorageError>)],
                                  outcome: StorageError?) {
        var batch = core.pending
        batch.checkpoint = Checkpoint(core.log)
        batch.lastIndexAfter = core.log.lastIndex
        core.pending = Batch(core.log, reusing: core.spare)
        core.spare = []
        condition.unlock()

        var failure: StorageError?
        do { try files.write(batch) } catch { failure = error }

        condition.lock()
        core.stats = files.stats
        var outcome: StorageError?
        if let failure, failure.isRetryable {
            core.pending.prepend(batch)
            core.heldAfterNoSpace = true
            outcome = failure
        } else {
            batch.bytes.removeAll(keepingCapacity: true)
            core.spare = batch.bytes
            if let failure {
                if core.failure == nil { core.failure = failure }
            } else {
                core.durable = batch.lastTicket
            }
            outcome = core.failure
        }
        let ready = takeWaiters(failingWith: outcome)
        let parked = takeParked(all: outcome != nil)
        return (parked, ready, outcome)
    }

    /// Outside the lock: wakes the parked threads and resumes the async waiters a
    /// `writeBatch` released.
    private func wake(_ parked: [Parker], _ ready: [(Continuation, Result<Void, StorageError>)], _ outcome: StorageError?) {
        Parker.wakeTree(parked, outcome: outcome)
        for (continuation, result) in ready { continuation.resume(returning: result) }
    }

    /// Without a writer thread: writes pending batches on the calling thread until
    /// `ticket` is durable (deterministic: the simulator's storage).
    private func writeInline(until ticket: UInt64, closing: Bool = false) throws(StorageError) {
        condition.lock()
        while core.durable < ticket {
            if let failure = core.failure {
                condition.unlock()
                throw failure
            }
            if !closing && !core.running {
                condition.unlock()
                throw .stopped(reason: "the storage was closed")
            }
            if core.inlineWriting {
                // Another thread (the node loop, or a snapshot on its own thread) is
                // writing the batch before ours: wait for it, then look again.
                condition.wait()
                continue
            }
            if core.pending.isEmpty { break }
            core.heldAfterNoSpace = false
            core.inlineWriting = true
            let (parked, ready, outcome) = writeBatch()
            core.inlineWriting = false
            condition.broadcast()
            condition.unlock()
            wake(parked, ready, outcome)
            if let outcome { throw outcome }
            condition.lock()
        }
        condition.unlock()
    }

    /// Removes the parked threads whose tickets are durable (all of them with `all`,
    /// after a failure or at shutdown, when none of the rest will ever be durable).
    private func takeParked(all: Bool) -> [Parker] {
        if all {
            defer { core.parked.removeAll() }
            return core.parked.map(\.parker)
        }
        var ready: [Parker] = []
        let durable = core.durable
        core.parked.removeAll { waiter in
            guard waiter.ticket <= durable else { return false }
            ready.append(waiter.parker)
            return true
        }
        return ready
    }

    /// Removes the async waiters that can be answered now (all of them with `all` or
    /// a `failure`; by default the storage's fatal failure, if any).
    private func takeWaiters(all: Bool = false,
                             failingWith error: StorageError? = nil) -> [(Continuation, Result<Void, StorageError>)] {
        var ready: [(Continuation, Result<Void, StorageError>)] = []
        let durable = core.durable, failure = error ?? core.failure
        core.waiters.removeAll { waiter in
            if waiter.ticket <= durable {
                ready.append((waiter.continuation, .success(())))
            } else if let failure {
                ready.append((waiter.continuation, .failure(failure)))
            } else if all {
                ready.append((waiter.continuation, .failure(.stopped(reason: "the storage was closed"))))
            } else {
                return false
            }
            return true
        }
        return ready
    }
}
