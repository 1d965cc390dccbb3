/// The leader's (and a candidate's) view of the cluster: the configuration, the
/// progress of every member and the votes of the current election.
struct ProgressTracker: Sendable {
    /// The voters (joint while a configuration change is in progress).
    private(set) var voters: JointConfig
    private(set) var learners: Set<NodeID>
    private(set) var learnersNext: Set<NodeID>
    private(set) var autoLeave: Bool
    /// Every member with a progress, sorted: iterate this, never the dictionary, so
    /// that message order is deterministic.
    private(set) var ids: [NodeID] = []
    var progress = ProgressMap()
    var votes: [NodeID: Bool] = [:]
    let maxInflight: Int
    let maxInflightBytes: Int

    init(maxInflight: Int, maxInflightBytes: Int) {
        self.maxInflight = maxInflight
        self.maxInflightBytes = maxInflightBytes
        voters = JointConfig(incoming: [])
        learners = []
        learnersNext = []
        autoLeave = false
    }

    /// The configuration as a value.
    var confState: ConfState {
        ConfState(voters: Set(voters.incoming.voters), outgoingVoters: Set(voters.outgoing.voters),
                  learners: learners, learnersNext: learnersNext, autoLeave: autoLeave)
    }

    /// `true` if `id` votes in the current configuration.
    func isVoter(_ id: NodeID) -> Bool { voters.contains(id) }

    /// Replaces the configuration. Members keep their progress; new members start at
    /// `next` (probe); members that left are dropped.
    mutating func apply(conf: ConfState, next: LogIndex) {
        voters = JointConfig(incoming: conf.voters, outgoing: conf.outgoingVoters)
        learners = conf.learners
        learnersNext = conf.learnersNext
        autoLeave = conf.autoLeave
        let members = conf.allMembers
        var newProgress = ProgressMap()
        for id in members {
            let learner = !voters.contains(id)
            if var existing = progress[id] {
                existing.isLearner = learner
                newProgress[id] = existing
            } else {
                var p = Progress(next: next, maxInflight: maxInflight, maxInflightBytes: maxInflightBytes, isLearner: learner)
                // A member added while this node leads counts as active so that it does
                // not make the leader step down before it had a chance to answer.
                p.recentActive = true
                newProgress[id] = p
            }
        }
        progress = newProgress
        ids = members
    }

    /// The largest index replicated on a quorum.
    func committedIndex() -> LogIndex {
        voters.committedIndex { progress[$0]?.match }
    }

    mutating func resetVotes() { votes = [:] }

    /// Records a vote (the first answer of each voter counts).
    mutating func recordVote(_ id: NodeID, granted: Bool) {
        if votes[id] == nil { votes[id] = granted }
    }

    func tallyVotes() -> (granted: Int, rejected: Int, result: VoteResult) {
        var granted = 0, rejected = 0
        for id in ids {
            guard let v = votes[id] else { continue }
            if v { granted += 1 } else { rejected += 1 }
        }
        return (granted, rejected, voters.voteResult(votes))
    }

    /// `true` if a quorum was recently active (the leader counts itself).
    func quorumActive(selfID: NodeID) -> Bool {
        voters.hasQuorum { id in id == selfID || (progress[id]?.recentActive ?? false) }
    }

    /// Applies `body` to every member's progress in id order, in place.
    mutating func forEach(_ body: (NodeID, inout Progress) -> Void) {
        for id in ids {
            guard let i = progress.index(of: id) else { continue }
            body(id, &progress.values[i])
        }
    }

    /// Runs `body` on one member's progress in place (no copy of its in-flight
    /// buffers, which a copy-out/write-back would duplicate). Nil if not a member.
    @discardableResult
    mutating func update<R>(_ id: NodeID, _ body: (inout Progress) -> R) -> R? {
        guard let i = progress.index(of: id) else { return nil }
        return body(&progress.values[i])
    }
}

/// Progress by member. Clusters are small (3–7 members), so a linear scan over short
/// identifiers beats hashing strings on every message.
struct ProgressMap: Sendable {
    private(set) var keys: [NodeID] = []
    var values: [Progress] = []

    func index(of id: NodeID) -> Int? {
        for i in keys.indices where keys[i] == id { return i }
        return nil
    }

    subscript(id: NodeID) -> Progress? {
        get { index(of: id).map { values[$0] } }
        set {
            if let i = index(of: id) {
                if let v = newValue {
                    values[i] = v
                } else {
                    keys.remove(at: i)
                    values.remove(at: i)
                }
            } else if let v = newValue {
                keys.append(id)
                values.append(v)
            }
        }
    }
}
