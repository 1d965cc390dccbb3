/// How a leader answers read-index requests.
public enum ReadOnlyOption: Sendable, Hashable {
    /// Confirm leadership with a heartbeat round to a quorum before answering
    /// (linearizable without clock assumptions; Raft thesis §6.4).
    case safe
    /// Answer from the leader lease without a message round (Raft thesis §6.4.1):
    /// the leader answers locally while `RaftConfig.leaseDurationTicks` of its own
    /// ticks have not passed since it *sent* a heartbeat round that a quorum
    /// acknowledged, and only after it committed an entry of its term. Sound only if
    /// no node's tick rate differs from the true rate by more than
    /// `RaftConfig.maxClockDriftPercent`, only with `checkQuorum`, and only if every
    /// voter runs with this option (voters keep the lease's promise: see
    /// "Lease reads" in the AegisRaft article). Outside its lease the leader falls
    /// back to a `safe` round. Expiring keys make a second, separate clock
    /// assumption (wall clocks within a bounded skew of each other), documented
    /// under "Expiring keys" in AegisReplication.
    case leaseBased
}

/// Configuration of a Raft node. Durations are in ticks: the shell calls `tick()`
/// at a fixed interval (for example every 10 ms) and the core counts them.
public struct RaftConfig: Sendable, Hashable {
    /// Ticks without hearing from a leader before a follower campaigns. The actual
    /// timeout is drawn uniformly from `[electionTimeout, 2 * electionTimeout)`.
    public var electionTimeout: Int = 10
    /// Ticks between leader heartbeats. Must be less than `electionTimeout`.
    public var heartbeatInterval: Int = 1
    /// Applied entries since the last snapshot after which `Ready` asks the
    /// application to take a snapshot (0: never).
    public var snapshotThreshold: UInt64 = 10_000
    /// Entries kept in the log behind a snapshot, so slightly lagging followers can
    /// catch up without a snapshot transfer.
    public var snapshotTrailingEntries: UInt64 = 1_000
    /// Run a pre-vote before campaigning, so a partitioned node does not disrupt the
    /// cluster when it rejoins (Raft thesis §9.6).
    public var preVote: Bool = true
    /// A leader that has not heard from a quorum within an election timeout steps
    /// down; followers that have heard from a leader within an election timeout
    /// ignore vote requests (the leader lease).
    public var checkQuorum: Bool = true
    /// Maximum bytes of entries in one append message.
    public var maxSizePerMessage: Int = 1 << 20
    /// Maximum append messages in flight to one follower in the replicate state.
    public var maxInflightMessages: Int = 256
    /// Maximum bytes of entries in flight to one follower (0: unlimited).
    public var maxInflightBytes: Int = 32 << 20
    /// Maximum bytes of proposed but uncommitted entries on the leader; proposals
    /// past it are refused with `RaftError.uncommittedLimitExceeded` (0: unlimited).
    public var maxUncommittedBytes: Int = 64 << 20
    /// Maximum bytes of committed entries handed out in one `Ready`.
    public var maxCommittedBytesPerReady: Int = 16 << 20
    /// Maximum bytes per `InstallSnapshot` chunk.
    public var snapshotChunkSize: Int = 1 << 20
    /// The largest snapshot a follower accepts from a leader, in bytes (default
    /// 4 GiB). A chunk that would take the reassembled snapshot past it is refused
    /// (answered `rejected`, the partial snapshot dropped), so a faulty or hostile
    /// leader cannot make a follower buffer without bound. The state machines Aegis
    /// ships keep their whole state in memory and install a snapshot as one buffer,
    /// so a legitimate snapshot is bounded by the leader's memory; 4 GiB is well above
    /// the data sets they are meant for and below what a server can hold twice (the
    /// snapshot and the state built from it). Raise it for larger data sets: it must
    /// be at least the size of the largest snapshot any leader will send.
    public var maxSnapshotBytes: UInt64 = 4 << 30
    /// Ticks a leader waits for a snapshot chunk to be acknowledged (including the
    /// follower's apply) before re-sending from the follower's last known offset.
    public var snapshotApplyTimeout: Int = 50
    /// When `true`, a follower forwards proposals to the known leader; when `false`
    /// it refuses them with `RaftError.notLeader` naming the leader.
    public var forwardProposals: Bool = false
    /// A learner is promoted to voter only if its log is at most this many entries
    /// behind the leader's (so a lagging voter cannot stall commits).
    public var maxPromotionLag: UInt64 = 1_000
    /// How read-index requests are answered.
    public var readOnlyOption: ReadOnlyOption = .safe
    /// The largest difference, in percent, between any node's tick rate and the true
    /// rate that lease reads (`ReadOnlyOption.leaseBased`) tolerate: a slow leader
    /// clock makes its lease last longer in real time, a fast follower clock ends
    /// the follower's promise sooner. It sets `leaseDurationTicks`; 0...99. Ticks
    /// that a paused or overloaded node catches up late count as drift too.
    public var maxClockDriftPercent: Int = 10
    /// The leader's lease, in its own ticks, from the sending of a heartbeat round a
    /// quorum acknowledged: `floor((electionTimeout - 1) * (100 - d) / (100 + d))`
    /// for `d = maxClockDriftPercent`. Why: a voter that acknowledged the round
    /// reset its election timer when the round arrived (after it was sent) and
    /// grants no vote, nor campaigns, until `electionTimeout` of its ticks passed,
    /// which is more than `electionTimeout - 1` of its tick periods; the leader
    /// serves while fewer than `leaseDurationTicks` of its ticks passed since the
    /// send, which is less than `leaseDurationTicks` of its tick periods. With
    /// periods within `(1 ± d/100)` of the true period, the lease ends before any
    /// voter of the acknowledging quorum can help elect another leader. 0 when the
    /// settings leave no lease (refused by `validate()` for `leaseBased`).
    public var leaseDurationTicks: Int {
        guard electionTimeout > 1 else { return 0 }
        let drift = min(max(maxClockDriftPercent, 0), 99)
        let (product, overflow) = (electionTimeout - 1).multipliedReportingOverflow(by: 100 - drift)
        guard !overflow else { return 0 }
        return product / (100 + drift)
    }
    /// This node's priority for leadership (higher is preferred). A leader that sees
    /// a caught-up, healthy voter of higher priority transfers leadership to it.
    public var priority: Int = 0
    /// Seed for the election-timeout jitter. Same seed, same behaviour.
    public var randomSeed: UInt64 = 0x5eed
    /// The index already applied to the state machine when the node starts.
    public var applied: LogIndex = 0

    /// The defaults: 10-tick elections, 1-tick heartbeats, pre-vote and check-quorum on.
    public init() {}

    /// Creates a configuration with the given timeouts.
    public init(electionTimeout: Int, heartbeatInterval: Int) {
        self.electionTimeout = electionTimeout
        self.heartbeatInterval = heartbeatInterval
    }

    /// Throws `RaftError.invalidConfig` if a setting is out of range.
    public func validate() throws(RaftError) {
        if heartbeatInterval <= 0 { throw .invalidConfig("heartbeatInterval must be positive") }
        if electionTimeout <= heartbeatInterval {
            throw .invalidConfig("electionTimeout (\(electionTimeout)) must be greater than heartbeatInterval (\(heartbeatInterval))")
        }
        if maxInflightMessages <= 0 { throw .invalidConfig("maxInflightMessages must be positive") }
        if maxSizePerMessage <= 0 { throw .invalidConfig("maxSizePerMessage must be positive") }
        if maxInflightBytes < 0 || maxUncommittedBytes < 0 { throw .invalidConfig("byte limits must not be negative") }
        if maxInflightBytes != 0 && maxInflightBytes < maxSizePerMessage {
            throw .invalidConfig("maxInflightBytes must be at least maxSizePerMessage")
        }
        if snapshotChunkSize <= 0 { throw .invalidConfig("snapshotChunkSize must be positive") }
        if maxSnapshotBytes == 0 || maxSnapshotBytes > RaftMessage.maxTermOrIndex {
            throw .invalidConfig("maxSnapshotBytes must be between 1 and \(RaftMessage.maxTermOrIndex)")
        }
        if maxClockDriftPercent < 0 || maxClockDriftPercent > 99 {
            throw .invalidConfig("maxClockDriftPercent (\(maxClockDriftPercent)) must be between 0 and 99")
        }
        if readOnlyOption == .leaseBased && !checkQuorum {
            throw .invalidConfig("lease-based reads require checkQuorum")
        }
        if readOnlyOption == .leaseBased && leaseDurationTicks < 1 {
            throw .invalidConfig("lease-based reads need a lease: electionTimeout (\(electionTimeout)) is too short for maxClockDriftPercent (\(maxClockDriftPercent))")
        }
    }
}

/// A small, fast, seedable generator (SplitMix64) for the election jitter.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from a seed.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
