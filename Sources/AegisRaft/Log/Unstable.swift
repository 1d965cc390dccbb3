/// Entries (and possibly a snapshot) that the core has accepted but the shell has
/// not yet persisted. They are handed out in `Ready` and become stable on `advance`.
struct Unstable: Sendable {
    /// A snapshot received from the leader, not yet persisted.
    var snapshot: Snapshot?
    /// Entries not yet persisted. Invariant: `entries[k].index == offset + k`.
    var entries: [LogEntry] = []
    /// The index of `entries[0]` (or where it would be).
    var offset: LogIndex

    init(offset: LogIndex) { self.offset = offset }

    /// The first index, if only known from an unstable snapshot.
    var maybeFirstIndex: LogIndex? { snapshot.map { $0.metadata.index + 1 } }

    var maybeLastIndex: LogIndex? {
        if !entries.isEmpty { return offset + LogIndex(entries.count) - 1 }
        return snapshot?.metadata.index
    }

    func maybeTerm(_ index: LogIndex) -> Term? {
        if index < offset {
            if let s = snapshot, s.metadata.index == index { return s.metadata.term }
            return nil
        }
        guard let last = maybeLastIndex, index <= last else { return nil }
        if entries.isEmpty { return nil }
        return entries[Int(index - offset)].term
    }

    /// The entries in `[low, high)`; the range must lie within the unstable entries.
    func slice(_ low: LogIndex, _ high: LogIndex) -> ArraySlice<LogEntry> {
        entries[Int(low - offset)..<Int(high - offset)]
    }

    /// Marks entries up to `index` (of term `term`) as persisted.
    mutating func stableTo(index: LogIndex, term: Term) {
        guard let t = maybeTerm(index), t == term, index >= offset else { return }
        let n = Int(index + 1 - offset)
        if n >= entries.count {
            entries.removeAll(keepingCapacity: true)
        } else {
            entries.removeFirst(n)
        }
        offset = index + 1
    }

    mutating func stableSnapshotTo(_ index: LogIndex) {
        if let s = snapshot, s.metadata.index == index { snapshot = nil }
    }

    mutating func restore(_ snap: Snapshot) {
        offset = snap.metadata.index + 1
        entries = []
        snapshot = snap
    }

    /// Appends entries, truncating any unstable suffix they replace. The caller
    /// guarantees `entries.first.index <= lastIndex + 1` of the whole log.
    mutating func truncateAndAppend(_ new: ArraySlice<LogEntry>) {
        guard let first = new.first else { return }
        let after = first.index
        if after == offset + LogIndex(entries.count) {
            entries.append(contentsOf: new)
        } else if after <= offset {
            // Replaces everything unstable; the shell will overwrite storage from `after`.
            offset = after
            entries = Array(new)
        } else {
            // Keep [offset, after) of the unstable entries, then append.
            let keep = Int(after - offset)
            entries.removeSubrange(keep...)
            entries.append(contentsOf: new)
        }
    }
}
