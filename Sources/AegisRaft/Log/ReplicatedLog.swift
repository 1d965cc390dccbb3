/// The replicated log as the core sees it: the durable part in a `RaftStorage`, the
/// not-yet-persisted part in memory, and the commit and apply positions.
///
/// Invariant: `applied <= committed <= lastIndex`.
public struct ReplicatedLog {
    /// The durable part, owned by the shell.
    let storage: any RaftStorage
    /// The accepted but not yet persisted part.
    var unstable: Unstable
    /// The highest index known to be committed (stored on a quorum).
    /// Invariant: `committed <= lastIndex`.
    public internal(set) var committed: LogIndex
    /// The highest index handed to the application for applying (and acknowledged by
    /// `advance`). Invariant: `applied <= committed`.
    public internal(set) var applied: LogIndex

    /// Opens the log over a storage.
    public init(storage: any RaftStorage) throws {
        self.storage = storage
        let first = try storage.firstIndex()
        let last = try storage.lastIndex()
        unstable = Unstable(offset: last + 1)
        committed = first - 1
        applied = first - 1
    }

    // MARK: Bounds and terms

    /// The first index still in the log (the one after the latest snapshot).
    public func firstIndex() throws -> LogIndex {
        if let i = unstable.maybeFirstIndex { return i }
        return try storage.firstIndex()
    }

    /// The index of the last entry.
    public func lastIndex() throws -> LogIndex {
        if let i = unstable.maybeLastIndex { return i }
        return try storage.lastIndex()
    }

    /// The term of the last entry.
    public func lastTerm() throws -> Term { try term(at: lastIndex()) }

    /// The term of the entry at `index`; throws `.compacted` or `.unavailable`.
    public func term(at index: LogIndex) throws -> Term {
        if let t = unstable.maybeTerm(index) { return t }
        // Indexes below firstIndex-1 are compacted; above lastIndex unavailable.
        let dummy = try firstIndex() - 1
        if index < dummy { throw RaftError.compacted }
        if index > (try lastIndex()) { throw RaftError.unavailable }
        return try storage.term(at: index)
    }

    /// `true` if the log has an entry at `index` with `term`.
    public func matchTerm(_ index: LogIndex, _ term: Term) -> Bool {
        (try? self.term(at: index)) == term
    }

    /// `true` if a candidate whose last entry is (`index`, `term`) is at least as
    /// up to date as this log (Raft §5.4.1).
    public func isUpToDate(lastIndex index: LogIndex, lastTerm term: Term) throws -> Bool {
        let myTerm = try lastTerm()
        return try (term > myTerm || (term == myTerm && index >= lastIndex()))
    }

    // MARK: Reading entries

    /// Entries from `low` up to the last, at most `maxBytes` (at least one).
    public func entries(from low: LogIndex, maxBytes: Int) throws -> [LogEntry] {
        let last = try lastIndex()
        if low > last { return [] }
        return try slice(low, last + 1, maxBytes: maxBytes)
    }

    /// Entries in `[low, high)`, at most `maxBytes` (at least one).
    public func slice(_ low: LogIndex, _ high: LogIndex, maxBytes: Int) throws -> [LogEntry] {
        if low == high { return [] }
        let first = try firstIndex()
        if low < first { throw RaftError.compacted }
        if high > (try lastIndex()) + 1 { throw RaftError.unavailable }
        var result: [LogEntry] = []
        var size = 0
        if low < unstable.offset {
            let stored = try storage.entries(from: low, to: min(high, unstable.offset), maxBytes: maxBytes)
            result = stored
            for e in stored { size += e.byteSize }
            // Storage stopped early because of the byte limit.
            if LogIndex(stored.count) < min(high, unstable.offset) - low { return result }
        }
        if high > unstable.offset {
            let from = max(low, unstable.offset)
            for e in unstable.slice(from, high) {
                size += e.byteSize
                if !result.isEmpty && size > maxBytes { break }
                result.append(e)
            }
        }
        return result
    }

    /// The entries not yet persisted.
    public var unstableEntries: [LogEntry] { unstable.entries }

    // MARK: Appending and conflicts

    /// Appends entries created by this node as leader. Returns the new last index.
    @discardableResult
    mutating func append(_ entries: ArraySlice<LogEntry>) throws -> LogIndex {
        guard let first = entries.first else { return try lastIndex() }
        if first.index <= committed {
            throw RaftError.storage("refusing to overwrite committed entry \(first.index) (committed \(committed))")
        }
        unstable.truncateAndAppend(entries)
        return try lastIndex()
    }

    /// The index of the first entry of `entries` whose term differs from this log's
    /// (or that this log lacks); 0 if all are present.
    public func findConflict(_ entries: ArraySlice<LogEntry>) -> LogIndex {
        for e in entries where !matchTerm(e.index, e.term) { return e.index }
        return 0
    }

    /// For fast backtracking: the largest index `<= index` whose term is `<= term`,
    /// with its term (0 if it is compacted). Used on both sides of a rejected append.
    public func findConflictByTerm(index: LogIndex, term: Term) -> (index: LogIndex, term: Term) {
        var i = index
        while true {
            guard let t = try? self.term(at: i) else { return (i, 0) }
            if t <= term || i == 0 { return (i, t) }
            i -= 1
        }
    }

    /// The follower side of AppendEntries (Raft §5.3): if the entry at `prevIndex` has
    /// `prevTerm`, appends the new entries (dropping a conflicting suffix), raises the
    /// commit index and returns the last index now known to match the leader.
    /// Returns `nil` when the previous entry does not match.
    mutating func maybeAppend(prevIndex: LogIndex, prevTerm: Term, leaderCommit: LogIndex,
                              entries: [LogEntry]) throws -> LogIndex? {
        guard matchTerm(prevIndex, prevTerm) else { return nil }
        let lastNew = prevIndex + LogIndex(entries.count)
        let conflict = findConflict(entries[...])
        if conflict != 0 {
            if conflict <= committed {
                // Unreachable: `RaftCore.findCommittedConflict` stops such an append
                // first. Refused without touching the log, never as a storage failure.
                throw RaftError.invalidMessage("entry \(conflict) conflicts with a committed entry (committed \(committed))")
            }
            let start = Int(conflict - (prevIndex + 1))
            try append(entries[start...])
        }
        commit(to: min(leaderCommit, lastNew))
        return lastNew
    }

    // MARK: Commit and apply

    /// Raises the commit index to `index` (never lowers it).
    mutating func commit(to index: LogIndex) {
        if committed < index, let last = try? lastIndex() {
            committed = min(index, last)
        }
    }

    /// The leader's commit rule (Raft §5.4.2): commits `index` only if its entry is
    /// from the current term. Returns `true` if the commit index moved.
    mutating func maybeCommit(_ index: LogIndex, term: Term) -> Bool {
        if index > committed && matchTerm(index, term) {
            committed = index
            return true
        }
        return false
    }

    mutating func appliedTo(_ index: LogIndex) {
        if index > applied && index <= committed { applied = index }
    }

    /// `true` if committed entries wait to be applied.
    var hasNextCommittedEntries: Bool { committed > applied }

    /// The committed entries not yet applied, bounded by `maxBytes`.
    func nextCommittedEntries(maxBytes: Int) throws -> [LogEntry] {
        guard committed > applied else { return [] }
        let low = max(applied + 1, try firstIndex())
        return try slice(low, committed + 1, maxBytes: maxBytes)
    }

    // MARK: Persistence feedback and snapshots

    mutating func stableTo(index: LogIndex, term: Term) { unstable.stableTo(index: index, term: term) }
    mutating func stableSnapshotTo(_ index: LogIndex) { unstable.stableSnapshotTo(index) }

    /// Replaces the log with a snapshot received from the leader.
    mutating func restore(_ snapshot: Snapshot) {
        committed = snapshot.metadata.index
        unstable.restore(snapshot)
    }

    /// The snapshot to send a follower: the unstable one or the storage's (which may be
    /// temporarily unavailable while the storage reads it: see
    /// `RaftStorage.snapshotForTransfer()`).
    func snapshot() throws -> Snapshot {
        if let s = unstable.snapshot { return s }
        return try storage.snapshotForTransfer()
    }
}
