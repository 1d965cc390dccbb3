/// The read side of a node's durable Raft state, queried by the core.
///
/// The core never writes through this protocol: the shell persists what `Ready` hands
/// it (through `RaftLogStorage` or its own means) before calling `advance(_:)`.
/// Methods throw `RaftError.compacted`, `.unavailable`, `.snapshotTemporarilyUnavailable`
/// or `.storage(_:)`.
public protocol RaftStorage: AnyObject {
    /// The persisted hard state and configuration, read once when a node starts.
    func initialState() throws -> (state: RaftState, conf: ConfState)
    /// Entries in `[low, high)`, at most `maxBytes` in total but always at least one
    /// when the range is not empty.
    func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [LogEntry]
    /// The term of the entry at `index`. Valid for `firstIndex - 1 ... lastIndex`
    /// (the entry before the first is the snapshot's).
    func term(at index: LogIndex) throws -> Term
    /// The index of the first entry still available (the snapshot's index + 1).
    func firstIndex() throws -> LogIndex
    /// The index of the last entry (the snapshot's index if the log is empty).
    func lastIndex() throws -> LogIndex
    /// The most recent snapshot.
    func snapshot() throws -> Snapshot
    /// Where the most recent snapshot stands, without its bytes (a storage that keeps
    /// them in a file need not read it).
    func snapshotMetadata() throws -> SnapshotMetadata
    /// The most recent snapshot, for the leader to send to a follower. A storage that
    /// must read it from a file may start that read elsewhere and throw
    /// `RaftError.snapshotTemporarilyUnavailable` until it is done, so the node's loop
    /// never waits for it; the leader asks again at its next contact with the follower.
    func snapshotForTransfer() throws -> Snapshot
}

extension RaftStorage {
    /// The default: the metadata of `snapshot()`.
    public func snapshotMetadata() throws -> SnapshotMetadata { try snapshot().metadata }
    /// The default: `snapshot()`.
    public func snapshotForTransfer() throws -> Snapshot { try snapshot() }
}

/// A storage the shell can also write: what the `Ready` contract asks it to persist.
/// Every implementation passes the conformance suite in `AegisTestKit`.
public protocol RaftLogStorage: RaftStorage {
    /// Appends entries, first discarding any existing entries at and after the first
    /// new index (a conflicting suffix). The entries must be contiguous and must start
    /// no later than `lastIndex + 1` and no earlier than `firstIndex`.
    func append(_ entries: [LogEntry]) throws
    /// Records the hard state.
    func setHardState(_ state: RaftState) throws
    /// Replaces the whole log with a snapshot received from the leader.
    func applySnapshot(_ snapshot: Snapshot) throws
    /// Records a snapshot the local state machine made at `index` (which must be
    /// applied, hence in the log), with the configuration at that point.
    @discardableResult
    func createSnapshot(at index: LogIndex, conf: ConfState, data: [UInt8]) throws -> Snapshot
    /// Records a snapshot the local state machine made at `index` whose bytes arrive
    /// as `chunks`, `byteCount` bytes in all, so that a storage writing them to a file
    /// never holds the whole snapshot in memory. Throws `RaftError.storage` if the
    /// chunks do not add up to `byteCount`, recording nothing.
    @discardableResult
    func createSnapshot<Chunks: Sequence<[UInt8]>>(at index: LogIndex, conf: ConfState, byteCount: Int,
                                                   chunks: Chunks) throws -> SnapshotMetadata
    /// Discards the entries before `index` (they must be covered by a snapshot).
    func compact(upTo index: LogIndex) throws
}

extension RaftLogStorage {
    /// The default: gathers the chunks and records them with `createSnapshot(at:conf:data:)`.
    @discardableResult
    public func createSnapshot<Chunks: Sequence<[UInt8]>>(at index: LogIndex, conf: ConfState, byteCount: Int,
                                                          chunks: Chunks) throws -> SnapshotMetadata {
        var data: [UInt8] = []
        data.reserveCapacity(byteCount)
        for chunk in chunks { data.append(contentsOf: chunk) }
        guard data.count == byteCount else {
            throw RaftError.storage("the snapshot at \(index) has \(data.count) bytes, not the \(byteCount) announced")
        }
        return try createSnapshot(at: index, conf: conf, data: data).metadata
    }
}

/// An in-memory `RaftLogStorage`, for tests, the simulator and the seed's examples.
///
/// Not thread-safe: use it from one executor.
public final class MemoryStorage: RaftLogStorage {
    /// `entries[0]` is a dummy entry holding the snapshot's index and term.
    /// Invariant: `entries[k].index == entries[0].index + k`.
    private var entries: [LogEntry]
    private var hardState: RaftState
    private var currentSnapshot: Snapshot

    /// Creates an empty storage, optionally with an initial configuration.
    public init(conf: ConfState = ConfState()) {
        entries = [LogEntry(index: 0, term: 0, type: .noOp)]
        hardState = RaftState()
        currentSnapshot = Snapshot(metadata: SnapshotMetadata(confState: conf))
    }

    private var offset: LogIndex { entries[0].index }

    /// A new storage holding the same entries, hard state and snapshot. Cheap: the
    /// copies share their buffers until one of them is written (copy-on-write).
    ///
    /// With `restore(from:)`, lets a harness or simulator prepare a state once and
    /// rerun from it many times (the libFuzzer target for `RaftCore.step` does).
    public func copy() -> MemoryStorage {
        let other = MemoryStorage()
        other.restore(from: self)
        return other
    }

    /// Replaces everything this storage holds (entries, hard state, snapshot) with
    /// what `other` holds, sharing buffers like `copy()`; `other` is not changed.
    ///
    /// A `RaftCore` keeps reading the storage object it was created over, so a copy of
    /// a prepared core (`RaftCore` is a value) starts from the prepared state once its
    /// storage has been restored from a `copy()` taken when the core was prepared.
    public func restore(from other: MemoryStorage) {
        entries = other.entries
        hardState = other.hardState
        currentSnapshot = other.currentSnapshot
    }

    public func initialState() throws -> (state: RaftState, conf: ConfState) {
        (hardState, currentSnapshot.metadata.confState)
    }

    /// Sets the configuration reported by `initialState()` (for bootstrapping).
    public func setConfState(_ conf: ConfState) {
        currentSnapshot.metadata.confState = conf
    }

    public func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [LogEntry] {
        if low <= offset { throw RaftError.compacted }
        if high > lastIndexValue + 1 || low > high { throw RaftError.unavailable }
        if low == high { return [] }
        return entries.prefix(from: Int(low - offset), to: Int(high - offset), maxBytes: maxBytes)
    }

    public func term(at index: LogIndex) throws -> Term {
        if index < offset { throw RaftError.compacted }
        if index > lastIndexValue { throw RaftError.unavailable }
        return entries[Int(index - offset)].term
    }

    public func firstIndex() throws -> LogIndex { offset + 1 }
    public func lastIndex() throws -> LogIndex { lastIndexValue }
    private var lastIndexValue: LogIndex { offset + LogIndex(entries.count - 1) }
    public func snapshot() throws -> Snapshot { currentSnapshot }

    /// The hard state last recorded.
    public var storedHardState: RaftState { hardState }

    public func append(_ newEntries: [LogEntry]) throws {
        guard let first = newEntries.first else { return }
        for k in 1..<max(newEntries.count, 1) where newEntries[k].index != newEntries[k - 1].index + 1 {
            throw RaftError.storage("appended entries are not contiguous at index \(newEntries[k].index)")
        }
        if first.index > lastIndexValue + 1 {
            throw RaftError.storage("append at \(first.index) leaves a gap after \(lastIndexValue)")
        }
        let lastNew = first.index + LogIndex(newEntries.count) - 1
        if lastNew <= offset { return }  // entirely covered by the snapshot
        var toAppend = newEntries[...]
        if first.index <= offset { toAppend = newEntries[Int(offset + 1 - first.index)...] }
        let keep = Int(toAppend[toAppend.startIndex].index - offset)
        if keep < entries.count { entries.removeSubrange(keep...) }
        entries.append(contentsOf: toAppend)
    }

    public func setHardState(_ state: RaftState) throws { hardState = state }

    public func applySnapshot(_ snapshot: Snapshot) throws {
        if snapshot.metadata.index < currentSnapshot.metadata.index {
            throw RaftError.storage("snapshot at \(snapshot.metadata.index) is older than the stored one at \(currentSnapshot.metadata.index)")
        }
        currentSnapshot = snapshot
        entries = [LogEntry(index: snapshot.metadata.index, term: snapshot.metadata.term, type: .noOp)]
    }

    @discardableResult
    public func createSnapshot(at index: LogIndex, conf: ConfState, data: [UInt8]) throws -> Snapshot {
        if index <= currentSnapshot.metadata.index { throw RaftError.snapshotTemporarilyUnavailable }
        if index > lastIndexValue { throw RaftError.unavailable }
        let snap = Snapshot(metadata: SnapshotMetadata(index: index, term: try term(at: index), confState: conf), data: data)
        currentSnapshot = snap
        return snap
    }

    public func compact(upTo index: LogIndex) throws {
        if index <= offset { return }
        if index > lastIndexValue { throw RaftError.unavailable }
        let k = Int(index - offset)
        var kept = Array(entries[k...])
        kept[0].data = []
        kept[0].type = .noOp
        entries = kept
    }
}
