/// The outcome of a vote count.
public enum VoteResult: Sendable, Hashable {
    /// Not decided yet.
    case pending
    /// A quorum refused.
    case lost
    /// A quorum granted.
    case won
}

/// A set of voters deciding by simple majority.
struct MajorityConfig: Sendable, Hashable {
    /// Sorted, for deterministic iteration.
    var voters: [NodeID]

    init(_ voters: some Sequence<NodeID>) {
        self.voters = Array(Set(voters)).sorted()
    }

    var isEmpty: Bool { voters.isEmpty }

    /// The largest index acknowledged by a majority; `LogIndex.max` for an empty
    /// configuration (so a joint configuration with an empty half defers to the other).
    func committedIndex(_ matchOf: (NodeID) -> LogIndex?) -> LogIndex {
        let n = voters.count
        if n == 0 { return .max }
        // Insertion sort (descending) in a temporary buffer: no heap allocation for
        // the handful of voters a cluster has.
        return withUnsafeTemporaryAllocation(of: LogIndex.self, capacity: n) { buffer in
            for (k, id) in voters.enumerated() {
                let m = matchOf(id) ?? 0
                var j = k
                while j > 0 && buffer[j - 1] < m {
                    buffer[j] = buffer[j - 1]
                    j -= 1
                }
                buffer[j] = m
            }
            return buffer[n / 2]
        }
    }

    /// Tallies votes (`true` granted, `false` refused, missing: not yet answered).
    func voteResult(_ votes: [NodeID: Bool]) -> VoteResult {
        if voters.isEmpty { return .won }
        var granted = 0, missing = 0
        for id in voters {
            switch votes[id] {
            case .some(true): granted += 1
            case .some(false): break
            case .none: missing += 1
            }
        }
        let quorum = voters.count / 2 + 1
        if granted >= quorum { return .won }
        if granted + missing >= quorum { return .pending }
        return .lost
    }

    /// `true` if a majority satisfies `isActive`.
    func hasQuorum(_ isActive: (NodeID) -> Bool) -> Bool {
        if voters.isEmpty { return true }
        var count = 0
        for id in voters where isActive(id) { count += 1 }
        return count >= voters.count / 2 + 1
    }
}

/// Two majority configurations that must both agree (joint consensus, Raft §6).
/// With an empty `outgoing` it behaves as `incoming` alone.
struct JointConfig: Sendable, Hashable {
    var incoming: MajorityConfig
    var outgoing: MajorityConfig

    init(incoming: some Sequence<NodeID>, outgoing: some Sequence<NodeID> = []) {
        self.incoming = MajorityConfig(incoming)
        self.outgoing = MajorityConfig(outgoing)
    }

    /// All voters of both halves, sorted.
    var allVoters: [NodeID] { Array(Set(incoming.voters).union(outgoing.voters)).sorted() }

    func contains(_ id: NodeID) -> Bool {
        incoming.voters.contains(id) || outgoing.voters.contains(id)
    }

    func committedIndex(_ matchOf: (NodeID) -> LogIndex?) -> LogIndex {
        min(incoming.committedIndex(matchOf), outgoing.committedIndex(matchOf))
    }

    func voteResult(_ votes: [NodeID: Bool]) -> VoteResult {
        let a = incoming.voteResult(votes), b = outgoing.voteResult(votes)
        if a == b { return a }
        if a == .lost || b == .lost { return .lost }
        return .pending
    }

    func hasQuorum(_ isActive: (NodeID) -> Bool) -> Bool {
        incoming.hasQuorum(isActive) && outgoing.hasQuorum(isActive)
    }
}
