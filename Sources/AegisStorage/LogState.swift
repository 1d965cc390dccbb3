import AegisRaft

/// The in-memory image of the durable log: what recovery rebuilds from the segments
/// and what `DiskStorage` serves reads from. Same semantics as `MemoryStorage`.
struct LogState {
    /// `entries[0]` is a dummy holding the compaction point's index and term.
    /// Invariant: `entries[k].index == entries[0].index + k`.
    private(set) var entries: [LogEntry]
    /// The hard state last recorded.
    var hardState = RaftState()
    /// The most recent snapshot's metadata.
    var snapshot: SnapshotMetadata

    init(snapshot: SnapshotMetadata = SnapshotMetadata()) {
        self.snapshot = snapshot
        entries = [LogEntry(index: snapshot.index, term: snapshot.term, type: .noOp)]
    }

    /// The index of the dummy entry (the compaction point).
    var offset: LogIndex { entries[0].index }
    /// The term of the dummy entry.
    var offsetTerm: Term { entries[0].term }
    var firstIndex: LogIndex { offset + 1 }
    var lastIndex: LogIndex { offset + LogIndex(entries.count - 1) }

    func term(at index: LogIndex) throws(RaftError) -> Term {
        if index < offset { throw .compacted }
        if index > lastIndex { throw .unavailable }
        return entries[Int(index - offset)].term
    }

    func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws(RaftError) -> [LogEntry] {
        if low <= offset { throw .compacted }
        if high > lastIndex + 1 || low > high { throw .unavailable }
        if low == high { return [] }
        return entries.prefix(from: Int(low - offset), to: Int(high - offset), maxBytes: maxBytes)
    }

    /// Checks an append against the contract and returns the part not already covered
    /// by the compaction point (empty when all of it is).
    func validateAppend(_ newEntries: [LogEntry]) throws(StorageError) -> ArraySlice<LogEntry> {
        guard let first = newEntries.first else { return [] }
        for k in 1..<max(newEntries.count, 1) where newEntries[k].index != newEntries[k - 1].index &+ 1 {
            throw .invalidArgument("appended entries are not contiguous at index \(newEntries[k].index)")
        }
        if first.index > lastIndex + 1 {
            throw .invalidArgument("append at \(first.index) leaves a gap after the last index \(lastIndex)")
        }
        let lastNew = first.index + LogIndex(newEntries.count) - 1
        if lastNew <= offset { return [] }
        if first.index <= offset { return newEntries[Int(offset + 1 - first.index)...] }
        return newEntries[...]
    }

    /// Appends validated entries, discarding any conflicting suffix first.
    mutating func append(_ newEntries: ArraySlice<LogEntry>) {
        guard let first = newEntries.first else { return }
        let keep = Int(first.index - offset)
        if keep < entries.count { entries.removeSubrange(keep...) }
        entries.append(contentsOf: newEntries)
    }

    /// Discards the entries before `index` (which must be at most `lastIndex`).
    mutating func compact(upTo index: LogIndex) {
        if index <= offset || index > lastIndex { return }
        var kept = Array(entries[Int(index - offset)...])
        kept[0].data = []
        kept[0].type = .noOp
        entries = kept
    }

    /// Sets the term of the compaction point (known from a compaction record when the
    /// entry itself was in a deleted segment).
    mutating func setOffsetTerm(_ term: Term) {
        entries[0].term = term
    }

    /// Discards every entry: the log restarts after `index`, whose term is `term`.
    mutating func reset(to index: LogIndex, term: Term) {
        entries = [LogEntry(index: index, term: term, type: .noOp)]
    }
}
