/// The role a Raft node currently plays.
public enum RaftRole: String, Sendable, Hashable {
    /// Follows a leader (or waits for one).
    case follower
    /// Runs a pre-vote: asks whether it could win before disrupting anyone.
    case preCandidate
    /// Campaigns for leadership in a new term.
    case candidate
    /// Leads the cluster for its term.
    case leader
}

/// What a proposal led to.
public enum Proposal: Sendable, Hashable {
    /// Appended to the leader's log at `index` in `term`. It is committed once the
    /// entry at `index` is handed out in `Ready.committedEntries` with that term.
    case appended(index: LogIndex, term: Term)
    /// Forwarded to the leader (`RaftConfig.forwardProposals`); its index is not known
    /// here.
    case forwarded(to: NodeID)
}

/// The Raft consensus algorithm as a deterministic value that does no I/O.
///
/// Inputs: `tick()`, `step(_:)`, `propose(_:timestamp:)` and the other requests.
/// Outputs: a `Ready` (entries and state to persist, messages to send, entries to
/// apply) that the shell handles in the order documented on `Ready`, then confirms
/// with `advance(_:)`. The only source of randomness is `RaftConfig.randomSeed`.
///
/// Not thread-safe: drive it from one executor.
public struct RaftCore {
    /// This node.
    public let id: NodeID
    /// The configuration.
    public let config: RaftConfig
    /// The current term. Invariant: never decreases.
    public internal(set) var term: Term = 0
    /// The vote cast in `term`.
    public internal(set) var votedFor: NodeID?
    /// The current role.
    public internal(set) var role: RaftRole = .follower
    /// The leader of `term`, if known.
    public internal(set) var leader: NodeID?
    /// The log.
    public internal(set) var log: ReplicatedLog
    var tracker: ProgressTracker
    /// Messages produced since the last `ready()`.
    var messages: [RaftMessage] = []
    /// Ticks since the last election timeout reset (followers/candidates) or since the
    /// last check-quorum round (leaders).
    var electionElapsed = 0
    /// Ticks since the last heartbeat (leaders).
    var heartbeatElapsed = 0
    /// Periodic heartbeats sent (leaders; never reset): a large probe waiting for its
    /// answer is re-sent at most once per periodic heartbeat, however many read rounds
    /// the heartbeats carry between (`Progress.probeSentAtHeartbeat`).
    var periodicHeartbeats: UInt64 = 0
    /// Ticks since this node last heard from a leader (an append, heartbeat or
    /// snapshot), counted from its start and not reset by term changes: the voter's
    /// side of the leader lease (`LeaderLease`). A node that just started counts
    /// from 0, so a restart cannot shorten a promise made before it.
    var leaderContactElapsed = 0
    /// The election timeout for this term, drawn from `[timeout, 2 * timeout)`.
    var randomizedElectionTimeout = 0
    var rng: SplitMix64
    /// Set by proposals; the appends go out once per `ready()` (batching).
    var pendingBroadcast = false
    /// The transfer target while a leadership transfer is in progress.
    public internal(set) var leadTransferee: NodeID?
    /// Ticks since the transfer started.
    var transferElapsed = 0
    /// The index of the latest configuration change appended by this leader; no
    /// further change is accepted before it is applied.
    var pendingConfIndex: LogIndex = 0
    /// Bytes of entries proposed in this term and not yet applied (leaders).
    var uncommittedBytes = 0
    /// Read requests and their resolution (ReadIndex).
    var readOnly = ReadOnlyState()
    /// Reads that became ready since the last `ready()`.
    var readStates: [ReadState] = []
    /// Follower side of a snapshot transfer in progress.
    var incomingSnapshot: IncomingSnapshot?
    /// Where chunks of an incoming snapshot are reassembled.
    let snapshotReceiver: any SnapshotReceiver
    /// Follower: the highest index confirmed to match the log of the current leader
    /// of the current term, by a successful append (or an installed snapshot) from it.
    /// Commits are clamped to it (Raft §5.3, see `handleHeartbeat`). Reset to 0 on
    /// every role or term change.
    var leaderConfirmedIndex: LogIndex = 0
    /// See `divergence`.
    var divergenceRecord: Divergence?
    /// `true` once a snapshot request has been handed out and not yet answered.
    var snapshotRequested = false
    /// The index of the latest snapshot (taken locally or installed from a leader).
    var lastSnapshotIndex: LogIndex = 0
    /// What the shell last persisted and saw (to compute `Ready` deltas).
    var previousHardState: RaftState
    var previousSoftState: SoftState
    /// Leadership priorities of members (failback); see `setPriority(_:of:)`.
    var priorities: [NodeID: Int] = [:]
    /// Counts for metrics and the simulator.
    public internal(set) var stats = RaftStats()

    /// Creates a node over a storage. The initial configuration is the storage's
    /// (`initialState().conf`) unless it is empty, in which case `peers` (which should
    /// include `id`) become the voters.
    ///
    /// - Parameter snapshotReceiver: where snapshots sent by a leader are reassembled
    ///   (default: in memory). The core owns it from now on.
    public init(id: NodeID, config: RaftConfig, storage: any RaftStorage, peers: [NodeID] = [],
                snapshotReceiver: any SnapshotReceiver = MemorySnapshotReceiver()) throws {
        try config.validate()
        self.id = id
        self.config = config
        self.snapshotReceiver = snapshotReceiver
        log = try ReplicatedLog(storage: storage)
        tracker = ProgressTracker(maxInflight: config.maxInflightMessages, maxInflightBytes: config.maxInflightBytes)
        var seed = config.randomSeed
        for byte in id.rawValue.utf8 { seed = (seed ^ UInt64(byte)) &* 0x100_0000_01B3 }
        rng = SplitMix64(seed: seed)
        let (hardState, storedConf) = try storage.initialState()
        var conf = storedConf
        if conf.voters.isEmpty && conf.learners.isEmpty && !peers.isEmpty { conf = ConfState(voters: Set(peers)) }
        let last = try log.lastIndex()
        lastSnapshotIndex = try storage.snapshotMetadata().index
        tracker.apply(conf: conf, next: last + 1)
        if !hardState.isEmpty {
            if hardState.commitIndex > last {
                throw RaftError.storage("hard state commit \(hardState.commitIndex) is beyond the last log index \(last)")
            }
            term = hardState.term
            votedFor = hardState.votedFor
            log.commit(to: hardState.commitIndex)
        }
        if config.applied > 0 { log.appliedTo(min(config.applied, log.committed)) }
        previousHardState = RaftState(term: term, votedFor: votedFor, commitIndex: log.committed)
        previousSoftState = SoftState(leader: nil, role: .follower)
        becomeFollower(term: term, leader: nil)
    }

    // MARK: Queries

    /// `true` if this node is the leader.
    public var isLeader: Bool { role == .leader }

    /// The current configuration.
    public var confState: ConfState { tracker.confState }

    /// `true` if this node may campaign: it is a voter, has no pending snapshot and
    /// has not diverged.
    public var isPromotable: Bool { tracker.isVoter(id) && log.unstable.snapshot == nil && divergenceRecord == nil }

    /// The leader's view of a member's replication progress (leaders only).
    public func progress(of node: NodeID) -> Progress? { role == .leader ? tracker.progress[node] : nil }

    /// The persistent state as it stands in memory.
    public var hardState: RaftState { RaftState(term: term, votedFor: votedFor, commitIndex: log.committed) }

    /// The volatile state.
    public var softState: SoftState { SoftState(leader: leader, role: role) }

    // MARK: Role transitions

    mutating func reset(term newTerm: Term) {
        if term != newTerm {
            term = newTerm
            votedFor = nil
        }
        leader = nil
        leaderConfirmedIndex = 0
        electionElapsed = 0
        heartbeatElapsed = 0
        resetRandomizedElectionTimeout()
        abortLeaderTransfer()
        tracker.resetVotes()
        let last = (try? log.lastIndex()) ?? 0
        let stableLast = log.unstable.entries.isEmpty ? last : log.unstable.offset - 1
        tracker.forEach { nodeID, p in
            let learner = p.isLearner
            p = Progress(next: last + 1, maxInflight: config.maxInflightMessages,
                         maxInflightBytes: config.maxInflightBytes, isLearner: learner)
            if nodeID == id { p.match = stableLast }
        }
        pendingConfIndex = 0
        uncommittedBytes = 0
        pendingBroadcast = false
        readOnly = ReadOnlyState()
    }

    mutating func resetRandomizedElectionTimeout() {
        randomizedElectionTimeout = config.electionTimeout + Int(rng.next() % UInt64(config.electionTimeout))
    }

    /// Becomes a follower in `term`, following `leader` if known.
    mutating func becomeFollower(term newTerm: Term, leader newLeader: NodeID?) {
        reset(term: newTerm)
        leader = newLeader
        role = .follower
    }

    /// Starts a pre-vote: no term change, no vote recorded.
    mutating func becomePreCandidate() {
        tracker.resetVotes()
        leader = nil
        role = .preCandidate
    }

    /// Starts a real election in the next term, voting for itself.
    mutating func becomeCandidate() {
        // `term` came from validated messages (<= RaftMessage.maxTermOrIndex) or from
        // campaigns, one term each: it cannot reach UInt64.max.
        reset(term: term.saturatingSuccessor)
        votedFor = id
        role = .candidate
        stats.campaigns += 1
    }

    /// Becomes the leader of the current term and appends an empty entry, so that
    /// entries of earlier terms get committed with it (Raft §5.4.2).
    mutating func becomeLeader() {
        reset(term: term)
        leader = id
        role = .leader
        tracker.update(id) { $0.becomeReplicate() }
        // Configuration entries may be in the uncommitted tail; be conservative.
        pendingConfIndex = (try? log.lastIndex()) ?? 0
        let noop = LogEntry(index: 0, term: term, type: .noOp)
        _ = try? appendLeaderEntries([noop])
        stats.leaderships += 1
    }

    // MARK: Ticks

    /// Advances logical time by one tick.
    public mutating func tick() {
        guard divergenceRecord == nil else { return }
        if leaderContactElapsed < Int.max { leaderContactElapsed += 1 }
        if role == .leader { tickHeartbeat() } else { tickElection() }
    }

    mutating func tickElection() {
        electionElapsed += 1
        if isPromotable && electionElapsed >= randomizedElectionTimeout {
            electionElapsed = 0
            campaign(preVote: config.preVote, transfer: false)
        }
    }

    mutating func tickHeartbeat() {
        heartbeatElapsed += 1
        electionElapsed += 1
        tickLease()
        if leadTransferee != nil {
            transferElapsed += 1
            if transferElapsed >= config.electionTimeout { abortLeaderTransfer() }
        }
        if electionElapsed >= config.electionTimeout {
            electionElapsed = 0
            if config.checkQuorum && !tracker.quorumActive(selfID: id) {
                stats.checkQuorumStepDowns += 1
                becomeFollower(term: term, leader: nil)
                return
            }
            // Before activity is reset for the next round: a preferred node must have
            // been heard from in this one.
            maybeTransferToPreferred()
            if config.checkQuorum {
                let me = id
                tracker.forEach { nodeID, p in if nodeID != me { p.recentActive = false } }
            }
        }
        tickSnapshotTransfers()
        if heartbeatElapsed >= config.heartbeatInterval {
            heartbeatElapsed = 0
            periodicHeartbeats &+= 1
            let round = openLeaseRound()
            markRoundSent(round)
            broadcastHeartbeat(context: round)
        }
    }

    // MARK: Elections

    /// Starts an election (or a pre-vote) now, as if the election timeout elapsed.
    public mutating func campaign() {
        campaign(preVote: config.preVote, transfer: false)
    }

    mutating func campaign(preVote: Bool, transfer: Bool) {
        guard isPromotable else { return }
        let voteTerm: Term
        if preVote {
            becomePreCandidate()
            voteTerm = term.saturatingSuccessor
        } else {
            becomeCandidate()
            voteTerm = term
        }
        tracker.recordVote(id, granted: true)
        if tracker.tallyVotes().result == .won {
            if preVote { campaign(preVote: false, transfer: transfer) } else { becomeLeader() }
            return
        }
        let lastIndex = (try? log.lastIndex()) ?? 0
        let lastTerm = (try? log.lastTerm()) ?? 0
        for voter in tracker.voters.allVoters where voter != id {
            send(to: voter, .vote(VoteRequest(term: voteTerm, candidateID: id, lastLogIndex: lastIndex,
                                              lastLogTerm: lastTerm, preVote: preVote, leadershipTransfer: transfer)))
        }
    }

    mutating func send(to: NodeID, _ payload: RaftMessage.Payload) {
        messages.append(RaftMessage(from: id, to: to, payload: payload))
    }
}

/// The volatile state reported in `Ready` when it changes.
public struct SoftState: Sendable, Hashable {
    /// The known leader.
    public var leader: NodeID?
    /// This node's role.
    public var role: RaftRole
}

/// Counters kept by the core, for metrics and the simulator.
public struct RaftStats: Sendable, Hashable {
    /// Elections started (real campaigns, not pre-votes).
    public var campaigns = 0
    /// Times this node became leader.
    public var leaderships = 0
    /// Times this node stepped down because it lost contact with a quorum.
    public var checkQuorumStepDowns = 0
    /// Proposals refused.
    public var proposalsDropped = 0
    /// Snapshots this node installed from a leader.
    public var snapshotsInstalled = 0
    /// Leadership transfers this node started.
    public var transfersStarted = 0
    /// Snapshot chunks refused because the snapshot would pass
    /// `RaftConfig.maxSnapshotBytes`.
    public var snapshotChunksRefused = 0
}
