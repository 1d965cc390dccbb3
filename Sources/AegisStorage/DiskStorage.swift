public import AegisRaft
import Foundation

/// Settings of a `DiskStorage`.
public struct DiskStorageOptions: Sendable {
    /// A segment is closed and a new one started once a batch would take it past this
    /// many bytes (a segment can exceed it by at most one batch).
    public var segmentSize: Int
    /// Whether each segment file is zero-filled to `segmentSize` when it is created, so
    /// that appends overwrite existing bytes and `fdatasync` need not also write the
    /// file's metadata (about twice the sync rate on ext4). Costs writing every
    /// segment twice; recovery reads either kind.
    public var preallocateSegments = true
    /// How many snapshot files to keep (at least 1).
    public var retainedSnapshots: Int
    /// The configuration a brand-new directory starts with (for bootstrapping).
    public var initialConf: ConfState
    /// Receives notable events (a torn tail truncated, a leftover file removed).
    public var log: (@Sendable (String) -> Void)?
    /// Whether a dedicated writer thread performs the group commit (the default). With
    /// `false` there is no thread: a caller that needs durability (`save(sync: true)`,
    /// `sync()`, snapshots, compaction) writes and syncs the pending batch itself, and
    /// writes submitted without `sync` stay in memory until then. Deterministic: the
    /// simulator runs the storage this way on a simulated file system.
    public var writerThread = true
    /// Work to do on the newest snapshot as it is read at open, on the thread that
    /// reads it, while the log is recovered on the opening thread: a node parses the
    /// snapshot into its state machine here, so the two overlap. The data is streamed
    /// to the `SnapshotPreparation` made for the snapshot's metadata, a chunk at a time
    /// (`SnapshotFile.streamChunkBytes`), and not kept: the storage never holds the
    /// whole file, and `snapshot()` reads it again if asked. The result is handed out
    /// once by `DiskStorage.takePreparedSnapshot()` when that snapshot is the one the log
    /// names (the real file system only; `nil`: the snapshot is read whole and kept
    /// for the first `snapshot()`).
    public var snapshotPreparer: (@Sendable (SnapshotMetadata) -> any SnapshotPreparation)?
    /// Test hook: makes named system calls fail (only with the POSIX file system, that
    /// is `DiskStorage.init(directory:options:)`).
    var faults: FaultInjector?

    /// Creates options; the defaults suit production (64 MiB segments, 2 snapshots).
    public init(segmentSize: Int = 64 << 20, retainedSnapshots: Int = 2, initialConf: ConfState = ConfState(),
                log: (@Sendable (String) -> Void)? = nil) {
        self.segmentSize = segmentSize
        self.retainedSnapshots = retainedSnapshots
        self.initialConf = initialConf
        self.log = log
    }
}

/// Identifies a write handed to the group commit; durable once `waitUntilDurable`
/// returns for it.
public struct WriteTicket: Sendable, Hashable, Comparable {
    let sequence: UInt64
    public static func < (a: WriteTicket, b: WriteTicket) -> Bool { a.sequence < b.sequence }
}

/// A durable `RaftLogStorage`: a segmented write-ahead log with group commit, snapshot
/// files and crash recovery. See the "On-disk format" article.
///
/// Thread-safe: one lock guards the in-memory image of the log (which serves every
/// read) and the batch being filled; a dedicated writer thread writes each batch with
/// one `write` and one `fdatasync` while the next one fills. It is `@unchecked Sendable`
/// because every mutable field is guarded by that lock or confined to the writer thread.
///
/// Nothing is acknowledged before it is durable: the `RaftLogStorage` methods and
/// `save(hardState:entries:sync:)` return only after the batch holding their records
/// was fsynced. After a failed write or fsync every call throws: the node must stop.
/// A full disk is the exception: the write throws `StorageError.noSpace`, nothing of it
/// is acknowledged, the storage stays open, and the write can be retried (see
/// `StorageError` for which errors are retryable).
public final class DiskStorage: RaftLogStorage, @unchecked Sendable {
    /// The directory holding the segments and snapshot files.
    public let directory: String
    /// What recovery found when this storage was opened.
    public let recovery: RecoveryReport
    let engine: GroupCommitEngine
    private let options: DiskStorageOptions
    /// Every file of the log and its snapshots is read and written through it.
    private let fileSystem: any FileSystem
    /// Serialises snapshot-file writers (which run outside the main lock).
    private let snapshotLock = NSLock()
    /// The snapshot read and verified when the storage opened, kept until the first
    /// `snapshot()` call (the node restoring its state machine) takes it or a newer
    /// snapshot replaces it; guarded by `openedLock`. Otherwise a snapshot's bytes live
    /// only in its file: `snapshot()` reads them when asked (a leader sending it).
    private var openedSnapshot: Snapshot?
    /// What `DiskStorageOptions.snapshotPreparer` made of the snapshot read at open,
    /// until `takePreparedSnapshot()` hands it out.
    private var preparedSnapshot: (any Sendable)?
    /// A read of the current snapshot for a transfer, running or done (`snapshotForTransfer`);
    /// guarded by `openedLock`.
    private var transferRead: SnapshotFile.BackgroundRead?
    private let openedLock = NSLock()

    /// Opens (or creates) the storage in `directory`, recovering the log.
    ///
    /// Throws `StorageError.corruption` when synced data is damaged: the node must not
    /// start as a voter. A torn tail is truncated and reported in `recovery`.
    public convenience init(directory: String, options: DiskStorageOptions = DiskStorageOptions()) throws(StorageError) {
        try self.init(directory: directory, fileSystem: PosixFileSystem(faults: options.faults), options: options)
    }

    /// Opens (or creates) the storage in `directory` of `fileSystem`, recovering the log:
    /// every file of the log and its snapshots is read and written through it (for
    /// example a `SimulatedFileSystem` that loses unsynced writes on a power loss).
    ///
    /// Throws `StorageError.corruption` when synced data is damaged (see
    /// `init(directory:options:)`).
    public init(directory: String, fileSystem: any FileSystem,
                options: DiskStorageOptions = DiskStorageOptions()) throws(StorageError) {
        if options.segmentSize < 4096 { throw .invalidArgument("segment size \(options.segmentSize) is below 4096 bytes") }
        self.directory = directory
        self.options = options
        self.fileSystem = fileSystem
        try fileSystem.makeDirectory(directory)
        // Both the log and the newest snapshot are read in full: on the real file system,
        // read the newest snapshot file on a second thread while the log is recovered
        // (the log says which snapshot counts; if it is another one, that is read after).
        // A simulated file system is driven from one thread, deterministically.
        let early = fileSystem is PosixFileSystem
            ? SnapshotFile.readNewestInBackground(directory: directory, fileSystem: fileSystem,
                                                  prepare: options.snapshotPreparer) : nil
        let recovered: RecoveredWAL?
        do {
            recovered = try Recovery.recover(directory: directory, fileSystem: fileSystem, log: options.log)
        } catch {
            _ = early?.wait()
            throw error
        }
        var log = recovered?.log ?? LogState(snapshot: SnapshotMetadata(confState: options.initialConf))
        if SnapshotFile.isStored(log.snapshot, directory: directory, fileSystem: fileSystem) {
            let snapshot: Snapshot
            var kept = true
            if let (index, term, result) = early?.wait(), index == log.snapshot.index, term == log.snapshot.term {
                snapshot = try result.get()
                preparedSnapshot = early?.prepared
                kept = early?.dataKept ?? true
            } else {
                snapshot = try SnapshotFile.read(directory: directory, index: log.snapshot.index, term: log.snapshot.term,
                                                 fileSystem: fileSystem)
            }
            log.snapshot.confState = snapshot.metadata.confState
            if kept { openedSnapshot = Snapshot(metadata: log.snapshot, data: snapshot.data) }
        } else {
            _ = early?.wait()
        }
        let files = try SegmentWriter(directory: directory, segmentSize: options.segmentSize,
                                      preallocates: options.preallocateSegments, fileSystem: fileSystem,
                                      recovered: recovered, log: log)
        files.retainedSnapshots = options.retainedSnapshots
        recovery = RecoveryReport(segments: recovered?.segments.count ?? 0, firstIndex: log.firstIndex,
                                  lastIndex: log.lastIndex, hardState: log.hardState,
                                  snapshotIndex: log.snapshot.index, tornTail: recovered?.tornTail,
                                  droppedBelowSnapshot: recovered?.droppedBelowSnapshot ?? [],
                                  warnings: (recovered?.droppedBelowSnapshot ?? []).map {
                                      $0.droppedWarning(snapshotIndex: log.snapshot.index)
                                  })
        engine = GroupCommitEngine(log: log, files: files, threaded: options.writerThread)
        engine.start()
    }

    deinit { engine.shutdown() }

    /// Flushes what is pending, stops the writer thread and closes the files. Later
    /// calls throw `StorageError.stopped`.
    public func close() { engine.shutdown() }

    /// The fatal error that stopped the storage, if any.
    public var failure: StorageError? { engine.locked { $0.failure } }

    /// Counters of the write-ahead log's work so far.
    public var statistics: WALStatistics { engine.statistics }

    // MARK: Durable writes

    /// Hands hard state and entries to the group commit without waiting; the returned
    /// ticket becomes durable with the next `fdatasync`. Entries are visible to reads at once.
    public func submit(hardState: RaftState? = nil, entries: [LogEntry]) throws(StorageError) -> WriteTicket {
        try engine.locked { (core) throws(StorageError) in try core.submit(hardState: hardState, entries: entries) }
    }

    /// Whether the write behind `ticket` is durable already (never blocks).
    public func isDurable(_ ticket: WriteTicket) -> Bool {
        engine.locked { $0.durable >= ticket.sequence }
    }

    /// Waits until the write behind `ticket` (and everything submitted before it) is durable.
    public func waitUntilDurable(_ ticket: WriteTicket) throws(StorageError) {
        try engine.wait(for: ticket)
    }

    /// Writes hard state (if given and changed) and entries as one batch; with `sync`,
    /// returns once they are durable (sharing the `fdatasync` with concurrent callers).
    public func save(hardState: RaftState?, entries: [LogEntry], sync: Bool = true) throws(StorageError) {
        try engine.save(hardState: hardState, entries: entries, sync: sync)
    }

    /// `save(hardState:entries:sync:)` for async callers: suspends, without blocking a
    /// thread, until the batch is durable.
    public func saveAsync(hardState: RaftState? = nil, entries: [LogEntry]) async throws(StorageError) {
        let result: Result<Void, StorageError> = await withCheckedContinuation { continuation in
            engine.submitAsync(hardState: hardState, entries: entries, continuation: continuation)
        }
        try result.get()
    }

    /// Waits until everything submitted so far is durable.
    public func sync() throws(StorageError) {
        try engine.wait(for: engine.locked { $0.latestTicket })
    }

    /// Without a writer thread (``DiskStorageOptions/writerThread`` off): writes and
    /// syncs what was submitted without `sync` and is still only in memory (nothing to
    /// do when nothing is). With a writer thread: nothing, as the writer does that at
    /// once. A caller that saves without `sync` calls it now and then, so those records
    /// (a Raft commit index, say) reach the files within a bounded time.
    public func flushUnsynced() throws(StorageError) {
        guard !options.writerThread else { return }
        try sync()
    }

    // MARK: RaftStorage

    public func initialState() throws -> (state: RaftState, conf: ConfState) {
        try read { ($0.log.hardState, $0.log.snapshot.confState) }
    }

    public func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [LogEntry] {
        try read { (core) throws(RaftError) in try core.log.entries(from: low, to: high, maxBytes: maxBytes) }
    }

    public func term(at index: LogIndex) throws -> Term {
        try read { (core) throws(RaftError) in try core.log.term(at: index) }
    }

    public func firstIndex() throws -> LogIndex { try read { $0.log.firstIndex } }
    public func lastIndex() throws -> LogIndex { try read { $0.log.lastIndex } }

    /// What `DiskStorageOptions.snapshotPreparer` made of the snapshot read at open
    /// (`nil` if there is none, it was taken already, or the log named another
    /// snapshot); handed out once.
    public func takePreparedSnapshot() -> (any Sendable)? {
        openedLock.withLock {
            defer { preparedSnapshot = nil }
            return preparedSnapshot
        }
    }

    /// The most recent snapshot, read from its file (and verified) unless it is the one
    /// read at open and not yet taken. A snapshot file that cannot be read or fails its
    /// checksum stops the storage (synced data is damaged) and throws.
    public func snapshot() throws -> Snapshot {
        var metadata = try snapshotMetadata()
        if let opened = openedLock.withLock({ () -> Snapshot? in
            defer { openedSnapshot = nil }
            return openedSnapshot
        }), opened.metadata == metadata {
            return opened
        }
        // A newer snapshot may be recorded (and this one pruned) while the file is read:
        // only a failure to read the current one is damage.
        while true {
            guard SnapshotFile.isStored(metadata, directory: directory, fileSystem: fileSystem) else {
                return Snapshot(metadata: metadata)
            }
            do {
                let stored = try SnapshotFile.read(directory: directory, index: metadata.index, term: metadata.term,
                                                   fileSystem: fileSystem)
                return Snapshot(metadata: metadata, data: stored.data)
            } catch {
                let now = try snapshotMetadata()
                if now != metadata { metadata = now; continue }
                engine.fail(with: error)
                throw error.raftFacing
            }
        }
    }

    public func snapshotMetadata() throws -> SnapshotMetadata { try read { $0.log.snapshot } }

    /// The snapshot for a leader to send: on the real file system, the first call starts
    /// reading the file on another thread and throws `RaftError.snapshotTemporarilyUnavailable`
    /// (the node loop must not stall for a read as large as the state); a call after the
    /// read finished takes its result. Damage found by the read stops the storage. On a
    /// simulated file system, `snapshot()`.
    public func snapshotForTransfer() throws -> Snapshot {
        guard fileSystem is PosixFileSystem else { return try snapshot() }
        let metadata = try snapshotMetadata()
        guard SnapshotFile.isStored(metadata, directory: directory, fileSystem: fileSystem) else {
            return Snapshot(metadata: metadata)
        }
        let outcome: Result<Snapshot, StorageError>? = openedLock.withLock {
            if let opened = openedSnapshot, opened.metadata == metadata {
                openedSnapshot = nil
                return .success(opened)
            }
            if let running = transferRead, running.index == metadata.index, running.term == metadata.term {
                guard let result = running.poll() else { return nil }
                transferRead = nil  // handed out once: the core keeps it for the transfer
                return result
            }
            transferRead = SnapshotFile.readInBackground(directory: directory, index: metadata.index,
                                                         term: metadata.term, fileSystem: fileSystem)
            return nil
        }
        switch outcome {
        case nil:
            throw RaftError.snapshotTemporarilyUnavailable
        case .success(let stored)?:
            return Snapshot(metadata: metadata, data: stored.data)
        case .failure(let error)?:
            if try snapshotMetadata() != metadata { throw RaftError.snapshotTemporarilyUnavailable }
            engine.fail(with: error)
            throw error.raftFacing
        }
    }

    /// The hard state last recorded.
    public var storedHardState: RaftState { engine.locked { $0.log.hardState } }

    private func read<T>(_ body: (GroupCommitEngine.Core) throws(RaftError) -> T) throws(RaftError) -> T {
        try engine.locked { (core) throws(RaftError) in
            if let failure = core.failure { throw failure.asRaftError }
            return try body(core)
        }
    }

    // MARK: RaftLogStorage

    // These throw `RaftError.storage` for fatal errors, and `StorageError.noSpace`
    // itself (retryable, see `StorageError`).

    public func append(_ entries: [LogEntry]) throws {
        do { try save(hardState: nil, entries: entries) } catch { throw error.raftFacing }
    }

    public func setHardState(_ state: RaftState) throws {
        do { try save(hardState: state, entries: []) } catch { throw error.raftFacing }
    }

    public func applySnapshot(_ snapshot: Snapshot) throws {
        snapshotLock.lock()
        defer { snapshotLock.unlock() }
        let current = try read { $0.log.snapshot.index }
        if snapshot.metadata.index < current {
            throw RaftError.storage("snapshot at \(snapshot.metadata.index) is older than the stored one at \(current)")
        }
        try writeSnapshotFile { () throws(StorageError) in
            try SnapshotFile.write(snapshot, directory: directory, fileSystem: fileSystem)
        }
        let ticket = try engine.locked { (core) throws(RaftError) in
            try core.recordSnapshot(snapshot.metadata, resetsLog: true)
        }
        openedLock.withLock {
            openedSnapshot = nil
            transferRead = nil
        }
        try waitOrRaftError(ticket)
    }

    @discardableResult
    public func createSnapshot(at index: LogIndex, conf: ConfState, data: [UInt8]) throws -> Snapshot {
        let metadata = try createSnapshot(at: index, conf: conf, byteCount: data.count, chunks: CollectionOfOne(data))
        return Snapshot(metadata: metadata, data: data)
    }

    /// Records a snapshot whose bytes are streamed from `chunks` into its file, one chunk
    /// in memory at a time. Chunks that do not add up to `byteCount` leave no file and
    /// throw `RaftError.storage` without stopping the storage.
    @discardableResult
    public func createSnapshot<Chunks: Sequence<[UInt8]>>(at index: LogIndex, conf: ConfState, byteCount: Int,
                                                          chunks: Chunks) throws -> SnapshotMetadata {
        snapshotLock.lock()
        defer { snapshotLock.unlock() }
        let metadata = try read { (core) throws(RaftError) in
            if index <= core.log.snapshot.index { throw .snapshotTemporarilyUnavailable }
            if index > core.log.lastIndex { throw .unavailable }
            return SnapshotMetadata(index: index, term: try core.log.term(at: index), confState: conf)
        }
        try writeSnapshotFile { () throws(StorageError) in
            try SnapshotFile.write(metadata, dataCount: byteCount, chunks: chunks, directory: directory, fileSystem: fileSystem)
        }
        let ticket = try engine.locked { (core) throws(RaftError) in
            if index <= core.log.snapshot.index { throw .snapshotTemporarilyUnavailable }
            return try core.recordSnapshot(metadata, resetsLog: false)
        }
        openedLock.withLock {
            openedSnapshot = nil
            transferRead = nil
        }
        try waitOrRaftError(ticket)
        return metadata
    }

    public func compact(upTo index: LogIndex) throws {
        let ticket = try engine.locked { (core) throws(RaftError) in try core.compact(upTo: index) }
        try waitOrRaftError(ticket)
    }

    /// Writes a snapshot file with `write`; a full disk leaves nothing behind and is
    /// retryable, chunks that do not match their announced length leave nothing behind
    /// and are the caller's error, any other failure stops the storage.
    private func writeSnapshotFile(_ write: () throws(StorageError) -> Void) throws {
        do {
            try write()
        } catch {
            if case .invalidArgument(let why) = error { throw RaftError.storage(why) }
            if !error.isRetryable { engine.fail(with: error) }
            throw error.raftFacing
        }
    }

    private func waitOrRaftError(_ ticket: WriteTicket?) throws {
        guard let ticket else { return }
        do { try engine.wait(for: ticket) } catch { throw error.raftFacing }
    }
}
