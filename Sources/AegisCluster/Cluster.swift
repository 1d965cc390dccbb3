public import AegisRaft

/// The health of the cluster as a whole, derived from membership and node status.
public enum ClusterState: String, Sendable, Hashable, CaseIterable {
    /// Only the local node is known and the cluster needs more (`minNodes > 1`).
    case initializing
    /// Fewer than `minNodes` members, or no quorum yet only because members are still
    /// starting (none is suspect or down).
    case forming
    /// Quorum, and every member is healthy.
    case healthy
    /// Quorum, but some member is starting, suspect, down or leaving.
    case degraded
    /// Not enough healthy voters for quorum, and some voter is suspect or down.
    case noQuorum
}

/// A membership change for the replication engine to turn into a Raft configuration
/// change (see `raftOperation`).
public enum MembershipChange: Sendable, Hashable {
    /// A node joined.
    case add(NodeInfo)
    /// A node was removed; the value is its last description.
    case remove(NodeInfo)
    /// A node's description changed.
    case update(old: NodeInfo, new: NodeInfo)

    /// The Raft membership operation this change needs, or `nil` when it changes only
    /// descriptive fields (address, metadata, status). The cases mirror Raft's
    /// configuration-change types: add or promote a voter, add or demote a learner,
    /// remove a member.
    public var raftOperation: RaftMembershipOperation? {
        switch self {
        case .add(let node):
            return node.role.isVoter ? .addVoter(node.id) : .addLearner(node.id)
        case .remove(let node):
            return .removeNode(node.id)
        case .update(let old, let new):
            guard old.role.isVoter != new.role.isVoter else { return nil }
            return new.role.isVoter ? .addVoter(new.id) : .addLearner(new.id)
        }
    }
}

/// One Raft membership operation.
public enum RaftMembershipOperation: Sendable, Hashable {
    /// Add a voter, or promote a learner.
    case addVoter(NodeID)
    /// Add a learner, or demote a voter.
    case addLearner(NodeID)
    /// Remove a member.
    case removeNode(NodeID)
}

/// A node's status changing, as reported by `Cluster.checkFailures()`.
public struct NodeStatusChange: Sendable, Hashable {
    /// The node.
    public var node: NodeID
    /// The status before.
    public var from: NodeStatus
    /// The status after.
    public var to: NodeStatus

    /// Creates a status change.
    public init(node: NodeID, from: NodeStatus, to: NodeStatus) {
        self.node = node
        self.from = from
        self.to = to
    }
}

/// Cluster health figures at one moment.
public struct ClusterStats: Sendable, Hashable {
    /// Members, the local node included (nodes that left are not members).
    public var totalNodes: Int
    /// Members whose status is healthy.
    public var healthyNodes: Int
    /// Members whose status is suspect.
    public var suspectNodes: Int
    /// Members whose status is down.
    public var downNodes: Int
    /// Members that vote.
    public var votingNodes: Int
    /// Healthy voters needed for quorum.
    public var quorumSize: Int
    /// `true` when at least `quorumSize` voters are healthy.
    public var hasQuorum: Bool
    /// The leader, if known.
    public var leader: NodeID?
    /// The latest Raft term seen.
    public var term: Term
    /// The derived cluster state.
    public var state: ClusterState

    /// Creates statistics.
    public init(totalNodes: Int, healthyNodes: Int, suspectNodes: Int, downNodes: Int, votingNodes: Int,
                quorumSize: Int, hasQuorum: Bool, leader: NodeID?, term: Term, state: ClusterState) {
        self.totalNodes = totalNodes
        self.healthyNodes = healthyNodes
        self.suspectNodes = suspectNodes
        self.downNodes = downNodes
        self.votingNodes = votingNodes
        self.quorumSize = quorumSize
        self.hasQuorum = hasQuorum
        self.leader = leader
        self.term = term
        self.state = state
    }
}

/// The local node's view of the cluster: members, their status from heartbeats, the
/// leader, and the cluster state derived from them.
///
/// A pure value: it does no I/O and starts no timers. The node runtime calls
/// `heartbeat(from:)` when a peer's heartbeat arrives and `checkFailures()` on a timer,
/// and hands the `MembershipChange` returned by `addNode`, `removeNode` and
/// `updateNode` to the replication engine as Raft configuration changes. Time comes
/// from the injected `ClusterClock`.
public struct Cluster: Sendable {
    /// The settings, validated.
    public let config: ClusterConfig
    /// The local node's identity.
    public let localNodeID: NodeID
    /// The members by identity (the local node included).
    public private(set) var nodes: [NodeID: NodeInfo]
    /// The leader, if known.
    public private(set) var leader: NodeID?
    /// The latest Raft term seen. Invariant: never decreases.
    public private(set) var term: Term = 0
    /// The latest health check result per node.
    public private(set) var healthChecks: [NodeID: NodeHealth] = [:]
    var detector: FailureDetector
    let clock: ClusterClock

    /// Creates a cluster view holding only the local node, which is healthy (it is
    /// running this code).
    ///
    /// - Throws: `ClusterError.invalidConfig` or `.invalidNode` if the configuration
    ///   or the local node is invalid.
    public init(localNode: NodeInfo, config: ClusterConfig, clock: ClusterClock = .continuous) throws(ClusterError) {
        try config.validate()
        try Self.validate(localNode)
        var local = localNode
        local.status = .healthy
        self.config = config
        self.localNodeID = local.id
        self.nodes = [local.id: local]
        self.clock = clock
        self.detector = FailureDetector(heartbeatInterval: config.heartbeatInterval,
                                        failureTimeout: config.failureTimeout, config: config.failureDetector)
    }

    /// The local node's description.
    public var localNode: NodeInfo? { nodes[localNodeID] }

    /// The description of member `id`.
    public func node(_ id: NodeID) -> NodeInfo? { nodes[id] }

    /// The members, sorted by identity.
    public var members: [NodeInfo] { nodes.values.sorted { $0.id < $1.id } }

    static func validate(_ node: NodeInfo) throws(ClusterError) {
        guard !node.id.rawValue.isEmpty else { throw .invalidNode("the node identity is empty") }
        guard !node.address.isEmpty else { throw .invalidNode("node \(node.id) has an empty address") }
        guard (1 ... 65535).contains(node.port) else {
            throw .invalidNode("node \(node.id) has port \(node.port); ports are 1...65535")
        }
    }

    // MARK: Membership

    /// Adds a member; it starts as `.starting` until its first heartbeat.
    ///
    /// - Returns: the change for the replication engine to propose.
    /// - Throws: `.nodeAlreadyExists`, `.clusterFull`, or `.invalidNode` (including an
    ///   endpoint another member already uses).
    @discardableResult
    public mutating func addNode(_ node: NodeInfo) throws(ClusterError) -> MembershipChange {
        try Self.validate(node)
        guard nodes[node.id] == nil else { throw .nodeAlreadyExists(node.id) }
        guard nodes.count < config.maxNodes else { throw .clusterFull(maxNodes: config.maxNodes) }
        if let other = nodes.values.first(where: { $0.endpoint == node.endpoint }) {
            throw .invalidNode("\(node.endpoint) is already the address of node \(other.id)")
        }
        var added = node
        added.status = .starting
        nodes[added.id] = added
        detector.watch(added.id, at: clock.now())
        return .add(added)
    }

    /// Removes a member other than the local node.
    ///
    /// - Returns: the change for the replication engine to propose.
    @discardableResult
    public mutating func removeNode(_ id: NodeID) throws(ClusterError) -> MembershipChange {
        guard id != localNodeID else { throw .cannotRemoveLocalNode(id) }
        guard var removed = nodes.removeValue(forKey: id) else { throw .nodeNotFound(id) }
        detector.forget(id)
        healthChecks[id] = nil
        if leader == id { leader = nil }
        removed.status = .left
        return .remove(removed)
    }

    /// Replaces a member's description (address, port, role, metadata, or a status
    /// such as `.leaving`).
    ///
    /// - Returns: the change; its `raftOperation` is non-`nil` when the role moved
    ///   between voter and learner.
    @discardableResult
    public mutating func updateNode(_ node: NodeInfo) throws(ClusterError) -> MembershipChange {
        try Self.validate(node)
        guard let old = nodes[node.id] else { throw .nodeNotFound(node.id) }
        if let other = nodes.values.first(where: { $0.id != node.id && $0.endpoint == node.endpoint }) {
            throw .invalidNode("\(node.endpoint) is already the address of node \(other.id)")
        }
        nodes[node.id] = node
        return .update(old: old, new: node)
    }

    // MARK: Health

    /// Records a heartbeat from `id` now. A starting, suspect or down node becomes
    /// healthy; a leaving node stays leaving.
    ///
    /// - Returns: `false` if `id` is not a member (the heartbeat is ignored).
    @discardableResult
    public mutating func heartbeat(from id: NodeID) -> Bool {
        guard var node = nodes[id] else { return false }
        guard id != localNodeID else { return true }
        detector.heartbeat(from: id, at: clock.now())
        if [.starting, .suspect, .down].contains(node.status) {
            node.status = .healthy
            nodes[id] = node
        }
        return true
    }

    /// Asks the failure detector about every other member and updates their status:
    /// suspect when heartbeats are unusually late, down after the failure timeout.
    ///
    /// - Returns: the status changes made, sorted by node.
    @discardableResult
    public mutating func checkFailures() -> [NodeStatusChange] {
        let now = clock.now()
        var changes: [NodeStatusChange] = []
        for id in nodes.keys.sorted() where id != localNodeID {
            guard var node = nodes[id], [.starting, .healthy, .suspect].contains(node.status) else { continue }
            let next: NodeStatus
            switch detector.verdict(on: id, at: now) {
            case .alive: continue
            case .suspect:
                guard node.status != .suspect else { continue }
                next = .suspect
            case .down:
                next = .down
            }
            changes.append(NodeStatusChange(node: id, from: node.status, to: next))
            node.status = next
            nodes[id] = node
        }
        return changes
    }

    /// Records a health check result. A failed check makes a healthy node suspect; a
    /// passing check changes nothing (heartbeats decide recovery).
    ///
    /// - Returns: the status change made, if any.
    @discardableResult
    public mutating func recordHealth(_ health: NodeHealth) -> NodeStatusChange? {
        guard var node = nodes[health.node] else { return nil }
        healthChecks[health.node] = health
        guard !health.isHealthy, node.status == .healthy, node.id != localNodeID else { return nil }
        node.status = .suspect
        nodes[node.id] = node
        return NodeStatusChange(node: node.id, from: .healthy, to: .suspect)
    }

    /// The failure detector's suspicion level of `id` now (see `FailureDetector`).
    public func phi(of id: NodeID) -> Double? { detector.phi(of: id, at: clock.now()) }

    /// The time since `id`'s last heartbeat (since it was added, if it never sent one);
    /// `nil` for the local node and for non-members.
    public func silence(of id: NodeID) -> Duration? {
        id == localNodeID ? nil : detector.silence(of: id, at: clock.now())
    }

    // MARK: Leadership

    /// Records the leader of `term` (`nil` while an election runs). Older terms are
    /// ignored; the previous leader becomes a follower and the new one is marked leader.
    ///
    /// - Returns: `false` if `term` is older than the latest seen.
    @discardableResult
    public mutating func setLeader(_ id: NodeID?, term: Term) -> Bool {
        guard term >= self.term else { return false }
        self.term = term
        if let previous = leader, previous != id, var node = nodes[previous], node.role == .leader {
            node.role = .follower
            nodes[previous] = node
        }
        leader = id
        if let id, var node = nodes[id] {
            node.role = .leader
            nodes[id] = node
        }
        return true
    }

    // MARK: Derived state

    /// Voters among the members.
    var voters: [NodeInfo] { nodes.values.filter(\.isVotingMember) }

    /// Healthy voters needed for quorum: the configured size, or a majority of voters.
    public var quorumSize: Int { config.quorumSize ?? voters.count / 2 + 1 }

    /// `true` when enough voters are healthy to make decisions.
    public var hasQuorum: Bool { voters.filter { $0.status == .healthy }.count >= quorumSize }

    /// The cluster state derived from membership and status (see `ClusterState`).
    public var state: ClusterState {
        if nodes.count == 1 && config.minNodes > 1 { return .initializing }
        if nodes.count < config.minNodes { return .forming }
        if !hasQuorum {
            return voters.contains { $0.status == .suspect || $0.status == .down } ? .noQuorum : .forming
        }
        return nodes.values.allSatisfy { $0.status == .healthy } ? .healthy : .degraded
    }

    /// Health figures now.
    public func stats() -> ClusterStats {
        let all = nodes.values
        return ClusterStats(
            totalNodes: all.count,
            healthyNodes: all.filter { $0.status == .healthy }.count,
            suspectNodes: all.filter { $0.status == .suspect }.count,
            downNodes: all.filter { $0.status == .down }.count,
            votingNodes: voters.count,
            quorumSize: quorumSize,
            hasQuorum: hasQuorum,
            leader: leader,
            term: term,
            state: state)
    }
}
