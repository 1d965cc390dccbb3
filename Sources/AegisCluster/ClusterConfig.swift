public import AegisRaft

/// Errors from cluster configuration and membership operations; each leaves the
/// cluster unchanged.
public enum ClusterError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The configuration is invalid; the text says which setting and why.
    case invalidConfig(String)
    /// The node description is invalid; the text says why.
    case invalidNode(String)
    /// A node with this identity is already a member.
    case nodeAlreadyExists(NodeID)
    /// No member has this identity.
    case nodeNotFound(NodeID)
    /// The cluster already has `maxNodes` members.
    case clusterFull(maxNodes: Int)
    /// The local node cannot remove itself; another member must remove it.
    case cannotRemoveLocalNode(NodeID)

    public var description: String {
        switch self {
        case .invalidConfig(let why): return "invalid cluster configuration: \(why)"
        case .invalidNode(let why): return "invalid node: \(why)"
        case .nodeAlreadyExists(let id): return "node \(id) is already a member of the cluster"
        case .nodeNotFound(let id): return "node \(id) is not a member of the cluster"
        case .clusterFull(let max):
            return "the cluster already has its maximum of \(max) nodes; raise maxNodes or remove a node first"
        case .cannotRemoveLocalNode(let id):
            return "node \(id) cannot remove itself; ask another member to remove it"
        }
    }
}

/// The settings of a cluster, built in the seed's style:
///
/// ```swift
/// let config = ClusterConfig(name: "my-cluster")
///     .withReplicationFactor(3)
///     .withHeartbeatInterval(.seconds(1))
/// ```
public struct ClusterConfig: Sendable, Hashable {
    /// The cluster's name; nodes of another cluster are refused.
    public var name: String
    /// The fewest members the cluster needs before it is considered formed.
    public var minNodes: Int
    /// The most members (voters and learners) the cluster accepts.
    public var maxNodes: Int
    /// How many copies of the data the cluster keeps (the intended number of voters).
    public var replicationFactor: Int
    /// How often nodes send heartbeats.
    public var heartbeatInterval: Duration
    /// The silence after which a node is considered down.
    public var failureTimeout: Duration
    /// The number of healthy voters needed for quorum; `nil` means a majority of the
    /// current voters.
    public var quorumSize: Int?
    /// The failure detector's tuning.
    public var failureDetector: FailureDetectorConfig

    /// Creates a configuration with defaults: 3 to 100 nodes, replication factor 3,
    /// heartbeats every second, down after 5 seconds, majority quorum.
    public init(name: String) {
        self.name = name
        minNodes = 3
        maxNodes = 100
        replicationFactor = 3
        heartbeatInterval = .seconds(1)
        failureTimeout = .seconds(5)
        quorumSize = nil
        failureDetector = FailureDetectorConfig()
    }

    /// A copy with `minNodes` changed.
    public func withMinNodes(_ value: Int) -> ClusterConfig { with { $0.minNodes = value } }
    /// A copy with `maxNodes` changed.
    public func withMaxNodes(_ value: Int) -> ClusterConfig { with { $0.maxNodes = value } }
    /// A copy with `replicationFactor` changed.
    public func withReplicationFactor(_ value: Int) -> ClusterConfig { with { $0.replicationFactor = value } }
    /// A copy with `heartbeatInterval` changed.
    public func withHeartbeatInterval(_ value: Duration) -> ClusterConfig { with { $0.heartbeatInterval = value } }
    /// A copy with `failureTimeout` changed.
    public func withFailureTimeout(_ value: Duration) -> ClusterConfig { with { $0.failureTimeout = value } }
    /// A copy with a fixed `quorumSize` (`nil` for a majority of the voters).
    public func withQuorumSize(_ value: Int?) -> ClusterConfig { with { $0.quorumSize = value } }
    /// A copy with the failure detector's tuning changed.
    public func withFailureDetector(_ value: FailureDetectorConfig) -> ClusterConfig { with { $0.failureDetector = value } }

    private func with(_ change: (inout ClusterConfig) -> Void) -> ClusterConfig {
        var copy = self
        change(&copy)
        return copy
    }

    /// Checks the settings against each other.
    ///
    /// - Throws: `ClusterError.invalidConfig` naming the first setting that is wrong.
    public func validate() throws(ClusterError) {
        func fail(_ why: String) -> ClusterError { .invalidConfig(why) }
        guard !name.isEmpty, !name.contains(where: \.isWhitespace) else {
            throw fail("the name must be non-empty and contain no whitespace (got \"\(name)\")")
        }
        guard minNodes >= 1 else { throw fail("minNodes must be at least 1 (got \(minNodes))") }
        guard maxNodes >= minNodes else { throw fail("maxNodes (\(maxNodes)) must be at least minNodes (\(minNodes))") }
        guard replicationFactor >= 1, replicationFactor <= maxNodes else {
            throw fail("replicationFactor must be between 1 and maxNodes (\(maxNodes)) (got \(replicationFactor))")
        }
        guard heartbeatInterval > .zero else { throw fail("heartbeatInterval must be positive (got \(heartbeatInterval))") }
        guard failureTimeout >= heartbeatInterval * 2 else {
            throw fail("failureTimeout (\(failureTimeout)) must be at least twice the heartbeatInterval (\(heartbeatInterval))")
        }
        if let quorumSize {
            guard quorumSize > replicationFactor / 2, quorumSize <= replicationFactor else {
                throw fail("quorumSize must be a majority of the replicationFactor (\(replicationFactor / 2 + 1)"
                    + "...\(replicationFactor)), or two groups could both decide (got \(quorumSize))")
            }
        }
        guard failureDetector.suspectPhi > 0, failureDetector.windowSize >= 1,
              failureDetector.minStandardDeviationRatio > 0, failureDetector.acceptablePause >= .zero else {
            throw fail("the failure detector needs suspectPhi > 0, windowSize >= 1, "
                + "minStandardDeviationRatio > 0 and a non-negative acceptablePause")
        }
    }
}
