public import AegisCluster
public import AegisRaft

/// The role a node plays in the cluster, as the servers report it.
public enum NodeRole: String, Sendable, Hashable, Codable, CaseIterable {
    /// Leads the cluster for its term.
    case leader
    /// A voter following a leader (or waiting for one).
    case follower
    /// A voter campaigning for leadership (including pre-vote).
    case candidate
    /// A non-voting member that receives the log (promoted to voter once caught up).
    case learner

    /// The role of a voter in the given Raft role.
    public init(_ role: RaftRole) {
        switch role {
        case .leader: self = .leader
        case .follower: self = .follower
        case .preCandidate, .candidate: self = .candidate
        }
    }
}

/// One member of the cluster as this node sees it.
public struct MemberStatus: Sendable, Hashable {
    /// The member's node ID.
    public var id: NodeID
    /// `.learner` for non-voting members; otherwise the member's role when known to
    /// this node (a leader knows that every other voter follows it).
    public var role: NodeRole
    /// The address other members reach it at for Raft traffic (`host:port`).
    public var peerAddress: String
    /// The address its RESP clients connect to (`host:port`).
    public var clientAddress: String
    /// The highest log index known to be replicated on the member; known on the leader.
    public var matchIndex: LogIndex?
    /// How many entries the member is behind the leader's last index; known on the leader.
    public var lag: UInt64?
    /// Whether the leader currently hears from the member; known on the leader.
    public var reachable: Bool?
    /// The member's status as this node's failure detector sees it (the seed's
    /// `NodeStatus`: starting, healthy, suspect, down, leaving, left).
    public var health: AegisCluster.NodeStatus?
    /// How long ago this node last heard from the member (`nil` for itself).
    public var lastHeard: Duration?

    /// Creates a member status.
    public init(id: NodeID, role: NodeRole, peerAddress: String, clientAddress: String,
                matchIndex: LogIndex? = nil, lag: UInt64? = nil, reachable: Bool? = nil,
                health: AegisCluster.NodeStatus? = nil, lastHeard: Duration? = nil) {
        self.id = id
        self.role = role
        self.peerAddress = peerAddress
        self.clientAddress = clientAddress
        self.matchIndex = matchIndex
        self.lag = lag
        self.reachable = reachable
        self.health = health
        self.lastHeard = lastHeard
    }
}

/// How a node serves linearizable reads (`aegis serve --read-mode`).
public enum ReadMode: String, Sendable, Hashable, Codable {
    /// A ReadIndex heartbeat round to a quorum per batch of reads; no clock assumption.
    case safe
    /// The leader's lease (`ReadOnlyOption.leaseBased`): no round while the lease holds;
    /// sound while tick rates drift less than the configured bound.
    case lease
    /// Every read from local state without ReadIndex: not linearizable, for testing.
    case unsafeLocal = "unsafe-local"
}

/// A node's view of itself and its cluster, for INFO, health checks and the admin API.
public struct BackendStatus: Sendable, Hashable {
    /// This node's ID.
    public var nodeID: NodeID
    /// The cluster's ID, when configured.
    public var clusterID: String?
    /// This node's role.
    public var role: NodeRole
    /// The current leader, if known.
    public var leader: LeaderHint?
    /// This node's current term.
    public var term: Term
    /// The highest log index known to be committed.
    public var commitIndex: LogIndex
    /// The highest log index applied to this node's state machine.
    /// Invariant: `appliedIndex <= commitIndex`.
    public var appliedIndex: LogIndex
    /// The members of the cluster, this node included (and members removed recently,
    /// with health `left`).
    public var members: [MemberStatus]
    /// The cluster's health as this node sees it (the seed's `ClusterStats` and
    /// `ClusterState`); `nil` when the backend keeps no cluster view.
    public var cluster: ClusterStats?
    /// `false` once the node stopped serving (`failure` says why).
    public var running = true
    /// Why the node stopped serving (a storage failure, a divergence), if it has.
    public var failure: String?
    /// `true` while writes are refused because the disk is full.
    public var diskFull = false
    /// Recent WAL fsync time (a moving average), in seconds; `nil` before the first.
    public var fsyncSeconds: Double?
    /// The slowest of the recent WAL fsyncs, in seconds; `nil` before the first.
    public var slowestRecentFsyncSeconds: Double?
    /// `true` while the node replays its log up to the commit index it knew at start.
    public var replaying = false
    /// How this node serves linearizable reads.
    public var readMode: ReadMode = .safe

    /// Creates a status.
    public init(nodeID: NodeID, clusterID: String? = nil, role: NodeRole, leader: LeaderHint?, term: Term,
                commitIndex: LogIndex, appliedIndex: LogIndex, members: [MemberStatus]) {
        self.nodeID = nodeID
        self.clusterID = clusterID
        self.role = role
        self.leader = leader
        self.term = term
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.members = members
    }

    /// How many committed entries this node has not applied yet.
    public var applyLag: UInt64 { commitIndex > appliedIndex ? commitIndex - appliedIndex : 0 }
}
