public import AegisRaft

/// A breach of one of Raft's safety properties (Raft figure 3), as found by
/// `InvariantChecker`.
public enum Violation: Sendable, Hashable, CustomStringConvertible {
    /// Election safety: two leaders were elected in one term.
    case twoLeaders(term: Term, first: NodeID, second: NodeID)
    /// Log matching: an entry with the same index and term differs in content or in
    /// the term of its predecessor on two nodes.
    case logMismatch(node: NodeID, index: LogIndex, term: Term)
    /// Leader completeness: a leader was elected without an entry committed before.
    case leaderMissingCommitted(leader: NodeID, term: Term, index: LogIndex)
    /// State machine safety: two nodes applied different entries at one index.
    case appliedMismatch(node: NodeID, index: LogIndex)
    /// A committed entry was changed or lost (another entry was committed at its
    /// index, or a node overwrote it).
    case committedChanged(node: NodeID, index: LogIndex)
    /// A node's term went down.
    case termDecreased(node: NodeID, from: Term, to: Term)

    public var description: String {
        switch self {
        case .twoLeaders(let t, let a, let b): return "election safety: \(a) and \(b) both leaders in term \(t)"
        case .logMismatch(let n, let i, let t): return "log matching: \(n) has a different entry (\(i), term \(t))"
        case .leaderMissingCommitted(let l, let t, let i):
            return "leader completeness: \(l) became leader of term \(t) without committed entry \(i)"
        case .appliedMismatch(let n, let i): return "state machine safety: \(n) applied a different entry at \(i)"
        case .committedChanged(let n, let i): return "committed entry \(i) changed or lost on \(n)"
        case .termDecreased(let n, let a, let b): return "term decreased on \(n): \(a) -> \(b)"
        }
    }

    /// A short name for the kind of violation.
    public var kind: String {
        switch self {
        case .twoLeaders: return "election-safety"
        case .logMismatch: return "log-matching"
        case .leaderMissingCommitted: return "leader-completeness"
        case .appliedMismatch: return "state-machine-safety"
        case .committedChanged: return "committed-changed"
        case .termDecreased: return "term-decreased"
        }
    }
}

/// Checks Raft's safety properties incrementally, from observations a test or the
/// simulator feeds it after every step. Each observation costs time proportional to
/// what it reports, so checking after every step stays cheap.
public struct InvariantChecker: Sendable {
    /// Everything found so far, in order.
    public private(set) var violations: [Violation] = []
    private var leaders: [Term: NodeID] = [:]
    private var terms: [NodeID: Term] = [:]
    private var durableTerms: [NodeID: Term] = [:]
    /// (index, term) -> (content hash, term of the previous entry).
    private var entries: [EntryKey: EntryShape] = [:]
    /// index -> (term, hash) of committed entries.
    private var committed: [LogIndex: EntryShape] = [:]
    /// The highest committed index observed.
    public private(set) var maxCommitted: LogIndex = 0
    /// index -> hash of the applied entry.
    private var applied: [LogIndex: UInt64] = [:]

    struct EntryKey: Hashable, Sendable { var index: LogIndex; var term: Term }
    struct EntryShape: Hashable, Sendable { var hash: UInt64; var term: Term }

    /// Creates an empty checker.
    public init() {}

    /// The number of distinct committed indexes observed.
    public var committedCount: Int { committed.count }

    /// A content hash of an entry (FNV-1a over term, type and data).
    public static func hash(_ entry: LogEntry) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        var t = entry.term
        for _ in 0..<8 { mix(UInt8(truncatingIfNeeded: t)); t >>= 8 }
        mix(entry.type.rawValue)
        for b in entry.data { mix(b) }
        return h
    }

    private mutating func report(_ v: Violation) {
        if !violations.contains(v) { violations.append(v) }
    }

    /// A node's current term (persistent term after a restart included).
    public mutating func observeTerm(node: NodeID, term: Term) {
        if let previous = terms[node], term < previous { report(.termDecreased(node: node, from: previous, to: term)) }
        terms[node] = term
    }

    /// `node` restarted from durable state whose term is `durableTerm`. Terms that
    /// were never persisted may be forgotten (nothing was sent on their behalf), but
    /// the durable term never goes down.
    public mutating func observeRestart(node: NodeID, durableTerm: Term) {
        if let previous = durableTerms[node], durableTerm < previous {
            report(.termDecreased(node: node, from: previous, to: durableTerm))
        }
        durableTerms[node] = durableTerm
        terms[node] = durableTerm
    }

    /// `node` was replaced: its data was wiped and it joins again as a new member, so
    /// its terms start over.
    public mutating func observeReplaced(node: NodeID) {
        terms[node] = nil
        durableTerms[node] = nil
    }

    /// `node` persisted a hard state with `term`.
    public mutating func observePersistedTerm(node: NodeID, term: Term) {
        if let previous = durableTerms[node], term < previous {
            report(.termDecreased(node: node, from: previous, to: term))
        }
        durableTerms[node] = term
    }

    /// `node` is leader of `term`; `termAt` reads its log (nil: no entry / compacted),
    /// `snapshotIndex` is the index its log starts after.
    public mutating func observeLeader(node: NodeID, term: Term, snapshotIndex: LogIndex, termAt: (LogIndex) -> Term?) {
        if let other = leaders[term], other != node {
            report(.twoLeaders(term: term, first: other, second: node))
        } else if leaders[term] == nil {
            leaders[term] = node
            // Leader completeness: every entry committed so far must be in its log.
            for (index, shape) in committed where index > snapshotIndex && shape.term < term {
                if termAt(index) != shape.term {
                    report(.leaderMissingCommitted(leader: node, term: term, index: index))
                }
            }
        }
    }

    /// `node` now holds `entry` in its log, preceded by an entry of term `previousTerm`.
    /// By induction this establishes Log Matching: identical (index, term) pairs must
    /// have identical contents and identical predecessors everywhere.
    public mutating func observeLogEntry(node: NodeID, entry: LogEntry, previousTerm: Term) {
        let shape = EntryShape(hash: Self.hash(entry), term: previousTerm)
        let key = EntryKey(index: entry.index, term: entry.term)
        if let known = entries[key] {
            if known != shape { report(.logMismatch(node: node, index: entry.index, term: entry.term)) }
        } else {
            entries[key] = shape
        }
    }

    /// `node` learned that `entry` is committed (for example when it applies it).
    public mutating func observeCommitted(node: NodeID, entry: LogEntry) {
        let shape = EntryShape(hash: Self.hash(entry), term: entry.term)
        if let known = committed[entry.index] {
            if known != shape { report(.committedChanged(node: node, index: entry.index)) }
        } else {
            committed[entry.index] = shape
            maxCommitted = max(maxCommitted, entry.index)
        }
    }

    /// `node` applied `entry` to its state machine.
    public mutating func observeApplied(node: NodeID, entry: LogEntry) {
        let h = Self.hash(entry)
        if let known = applied[entry.index] {
            if known != h { report(.appliedMismatch(node: node, index: entry.index)) }
        } else {
            applied[entry.index] = h
        }
        observeCommitted(node: node, entry: entry)
    }

    /// Checks a node's durable state after a crash: its log (via `termAt`) must hold
    /// every entry up to its durable `commitIndex`, each equal to the committed one.
    /// (Entries past the node's own commit index may legitimately differ: they can be
    /// stale entries from a deposed leader, not yet overwritten.)
    public mutating func observeDurableLog(node: NodeID, snapshotIndex: LogIndex, commitIndex: LogIndex,
                                           termAt: (LogIndex) -> Term?) {
        guard commitIndex > snapshotIndex else { return }
        for index in (snapshotIndex + 1)...commitIndex {
            let t = termAt(index)
            if t == nil || (committed[index].map { $0.term != t } ?? false) {
                report(.committedChanged(node: node, index: index))
            }
        }
    }
}
