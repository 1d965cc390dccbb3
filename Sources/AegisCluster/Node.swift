public import AegisRaft

/// Where a node is in its life cycle, as seen by this node.
public enum NodeStatus: String, Sendable, Hashable, CaseIterable {
    /// Added, but not heard from yet.
    case starting
    /// Heartbeats arrive as expected.
    case healthy
    /// Heartbeats are late: the failure detector suspects the node.
    case suspect
    /// No heartbeat within the failure timeout: the node is considered failed.
    case down
    /// The node is being removed from the cluster.
    case leaving
    /// The node has left the cluster.
    case left
}

/// The node's part in Raft.
public enum NodeRole: String, Sendable, Hashable, CaseIterable {
    /// A voter following the leader.
    case follower
    /// A voter running an election.
    case candidate
    /// The voter that leads the current term.
    case leader
    /// A non-voting member that receives the log.
    case learner

    /// `true` for members that vote (everything but learners).
    public var isVoter: Bool { self != .learner }
}

/// What a node offers, for placement decisions. Every field is optional.
public struct NodeCapacity: Sendable, Hashable {
    /// Processor cores.
    public var cpuCores: Int?
    /// Memory, in bytes.
    public var memoryBytes: UInt64?
    /// Disk space for data, in bytes.
    public var storageBytes: UInt64?

    /// Creates a capacity description.
    public init(cpuCores: Int? = nil, memoryBytes: UInt64? = nil, storageBytes: UInt64? = nil) {
        self.cpuCores = cpuCores
        self.memoryBytes = memoryBytes
        self.storageBytes = storageBytes
    }
}

/// Where a node runs and what it offers, for placement and failure-domain decisions.
public struct NodeMetadata: Sendable, Hashable {
    /// The datacenter (or region).
    public var datacenter: String?
    /// The rack within the datacenter.
    public var rack: String?
    /// The availability zone.
    public var zone: String?
    /// Free-form labels.
    public var tags: [String: String]
    /// The node's resources.
    public var capacity: NodeCapacity

    /// Creates metadata.
    public init(datacenter: String? = nil, rack: String? = nil, zone: String? = nil,
                tags: [String: String] = [:], capacity: NodeCapacity = NodeCapacity()) {
        self.datacenter = datacenter
        self.rack = rack
        self.zone = zone
        self.tags = tags
        self.capacity = capacity
    }
}

/// A member of the cluster: identity, address, status, role and metadata.
public struct NodeInfo: Sendable, Hashable, Identifiable {
    /// The node's identity in Raft.
    public var id: NodeID
    /// The host name or IP address peers connect to.
    public var address: String
    /// The port peers connect to (1...65535).
    public var port: Int
    /// The node's status as this node sees it.
    public var status: NodeStatus
    /// The node's Raft role as this node knows it.
    public var role: NodeRole
    /// Placement information.
    public var metadata: NodeMetadata

    /// Creates a node description; a new node starts as a `.starting` follower.
    public init(id: NodeID, address: String, port: Int, status: NodeStatus = .starting,
                role: NodeRole = .follower, metadata: NodeMetadata = NodeMetadata()) {
        self.id = id
        self.address = address
        self.port = port
        self.status = status
        self.role = role
        self.metadata = metadata
    }

    /// `address:port`, with IPv6 addresses in brackets.
    public var endpoint: String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    /// `true` if the node is a member whose vote counts (not a learner, not gone).
    public var isVotingMember: Bool { role.isVoter && status != .left }
}

/// The result of one health check of a node, with the metrics it reported.
public struct NodeHealth: Sendable, Hashable {
    /// The node checked.
    public var node: NodeID
    /// `true` if the check passed.
    public var isHealthy: Bool
    /// When the check completed, on the cluster's clock.
    public var checkedAt: ClusterInstant
    /// How long the node took to answer, if it answered.
    public var responseTime: Duration?
    /// CPU use, from 0 to 1.
    public var cpuUsage: Double?
    /// Memory use, from 0 to 1.
    public var memoryUsage: Double?
    /// Disk use, from 0 to 1.
    public var diskUsage: Double?
    /// How many log entries the node is behind the leader.
    public var replicationLag: UInt64?
    /// A short human-readable explanation (for example why the check failed).
    public var detail: String

    /// Creates a health check result.
    public init(node: NodeID, isHealthy: Bool, checkedAt: ClusterInstant, responseTime: Duration? = nil,
                cpuUsage: Double? = nil, memoryUsage: Double? = nil, diskUsage: Double? = nil,
                replicationLag: UInt64? = nil, detail: String = "") {
        self.node = node
        self.isHealthy = isHealthy
        self.checkedAt = checkedAt
        self.responseTime = responseTime
        self.cpuUsage = cpuUsage
        self.memoryUsage = memoryUsage
        self.diskUsage = diskUsage
        self.replicationLag = replicationLag
        self.detail = detail
    }
}
