public import AegisCluster
public import AegisRaft

/// The seed's "Automatic Failover" API (`failover::{detection::FailureDetector,
/// election::LeaderElection, promotion::ReplicaPromotion, FailoverConfig,
/// PromotionStrategy}`), Swift-cased, over running nodes of this implementation:
///
/// - detection is the node's own phi-accrual failure detector over every peer (its
///   `ClusterView`, fed by Raft traffic and peer reports);
/// - election is Raft's: a follower that stops hearing the leader campaigns after its
///   randomised election timeout; `LeaderElection` waits for it and reports the winner;
/// - promotion is a Raft leadership transfer to the replica the `PromotionStrategy`
///   chooses (the leader brings it up to date, then tells it to campaign at once).
///
/// ```swift
/// let config = FailoverConfig.default
/// let detector = Failover.FailureDetector(config, node: node)
/// try await detector.start()
/// let election = Failover.LeaderElection(node.configuration.nodeID, priority: 100, config, node: node)
/// let result = try await election.startElection()
/// print("New leader elected: \(result.winnerID)")
/// ```
public enum Failover {}

/// How replicas are chosen for promotion.
public enum PromotionStrategy: Sendable, Hashable {
    /// The healthy voter with the highest match index: the least to catch up, nothing
    /// lost.
    case mostCaughtUp
    /// The healthy voter with the highest priority (missing: 0); ties go to the most
    /// caught up.
    case priority([NodeID: Int])
    /// This replica.
    case specific(NodeID)
}

/// The failover settings.
public struct FailoverConfig: Sendable, Hashable {
    /// How often the detector and the election look at the node's state. Default 20 ms.
    public var checkInterval: Duration
    /// How long `waitForFailure`, `startElection()` and `promote()` wait at most.
    /// Default 10 s.
    public var timeout: Duration
    /// How `ReplicaPromotion` chooses. Default `.mostCaughtUp`.
    public var promotionStrategy: PromotionStrategy

    /// Creates settings; see each property for its default.
    public init(checkInterval: Duration = .milliseconds(20), timeout: Duration = .seconds(10),
                promotionStrategy: PromotionStrategy = .mostCaughtUp) {
        self.checkInterval = checkInterval
        self.timeout = timeout
        self.promotionStrategy = promotionStrategy
    }

    /// The defaults.
    public static var `default`: FailoverConfig { FailoverConfig() }
}

/// Why a failover step did not complete.
public enum FailoverError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The node is not running (never started, or stopped).
    case notRunning(NodeID)
    /// Nothing happened within `FailoverConfig.timeout`; the text says what was awaited.
    case timedOut(String)
    /// No replica fits the strategy (none healthy, or the chosen one is not a voter).
    case noCandidate(String)

    public var description: String {
        switch self {
        case .notRunning(let id): return "node \(id) is not running"
        case .timedOut(let what): return "timed out waiting for \(what)"
        case .noCandidate(let why): return "no replica to promote: \(why)"
        }
    }
}

extension Failover {
    /// Heartbeat-based failure detection: the node's phi-accrual detector, which runs
    /// all the time inside the node; this reads its verdicts.
    public final class FailureDetector: Sendable {
        public let config: FailoverConfig
        let node: NodeRuntime

        /// A detector reading `node`'s view of its peers.
        public init(_ config: FailoverConfig, node: NodeRuntime) {
            self.config = config
            self.node = node
        }

        /// Checks that the node runs and keeps a view of its peers (the detection itself
        /// runs inside the node from its start).
        public func start() async throws(FailoverError) {
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: config.timeout)
            while !(node.status.running && node.status.cluster != nil) {
                guard clock.now < deadline else { throw .notRunning(node.configuration.nodeID) }
                try? await Task.sleep(for: config.checkInterval)
            }
        }

        /// Each member's status as the detector sees it now.
        public var statuses: [NodeID: AegisCluster.NodeStatus] {
            var result: [NodeID: AegisCluster.NodeStatus] = [:]
            for member in node.status.members { result[member.id] = member.health }
            return result
        }

        /// The members that are down now.
        public var failedNodes: [NodeID] { statuses.filter { $0.value == .down }.map(\.key).sorted() }

        /// Waits until `member` (or, with `nil`, any member) is down, and returns it.
        public func waitForFailure(of member: NodeID? = nil) async throws(FailoverError) -> NodeID {
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: config.timeout)
            while clock.now < deadline {
                if let failed = failedNodes.first(where: { member == nil || $0 == member }) { return failed }
                try? await Task.sleep(for: config.checkInterval)
            }
            throw .timedOut("\(member.map { "node \($0)" } ?? "a member") to be detected down")
        }
    }

    /// The outcome of an election.
    public struct ElectionResult: Sendable, Hashable {
        /// The new leader.
        public var winnerID: NodeID
        /// Its term.
        public var term: Term
        /// How long this node waited for it.
        public var waited: Duration
    }

    /// Raft leader election, seen from one node.
    public final class LeaderElection: Sendable {
        /// The node this election runs on.
        public let nodeID: NodeID
        /// Its leadership priority (higher is preferred; see `PromotionStrategy.priority`).
        public let priority: Int
        public let config: FailoverConfig
        let node: NodeRuntime

        /// An election on `node` (whose ID is `nodeID`) with `priority`.
        public init(_ nodeID: NodeID, priority: Int, _ config: FailoverConfig, node: NodeRuntime) {
            self.nodeID = nodeID
            self.priority = priority
            self.config = config
            self.node = node
        }

        /// Waits until the node knows a leader that its failure detector does not hold
        /// down, in a term at least the current one, and returns it. Raft runs the
        /// election itself (a follower campaigns once its election timeout passes
        /// without hearing a leader), so this never makes two leaders.
        public func startElection() async throws(FailoverError) -> ElectionResult {
            guard node.status.running else { throw .notRunning(nodeID) }
            let clock = ContinuousClock()
            let started = clock.now
            let deadline = started.advanced(by: config.timeout)
            let startTerm = node.status.term
            while clock.now < deadline {
                let status = node.status
                if let leader = status.leader, status.term >= startTerm,
                   status.members.first(where: { $0.id == leader })?.health != .down {
                    return ElectionResult(winnerID: leader, term: status.term, waited: clock.now - started)
                }
                try? await Task.sleep(for: config.checkInterval)
            }
            throw .timedOut("a leader to be elected")
        }
    }

    /// Replica promotion: leadership moves to the replica the strategy chooses, by a
    /// Raft leadership transfer from the current leader.
    public final class ReplicaPromotion: Sendable {
        public let config: FailoverConfig
        let nodes: [NodeRuntime]

        /// A promotion among `nodes` (the running members; the leader must be one of them).
        public init(_ config: FailoverConfig, nodes: [NodeRuntime]) {
            self.config = config
            self.nodes = nodes
        }

        /// The replica the strategy chooses now, among voters the leader sees healthy.
        public func candidate() throws(FailoverError) -> NodeID {
            guard let leader = nodes.first(where: { $0.status.role == .leader && $0.status.running }) else {
                throw .noCandidate("no running leader among the nodes given")
            }
            let members = leader.status.members.filter { $0.isVoter && $0.health == .healthy }
            guard !members.isEmpty else { throw .noCandidate("no healthy voter") }
            switch config.promotionStrategy {
            case .specific(let id):
                guard members.contains(where: { $0.id == id }) else { throw .noCandidate("\(id) is not a healthy voter") }
                return id
            case .mostCaughtUp:
                return members.max { ($0.match ?? 0, $1.id) < ($1.match ?? 0, $0.id) }?.id ?? leader.configuration.nodeID
            case .priority(let priorities):
                return members.max {
                    (priorities[$0.id] ?? 0, $0.match ?? 0, $1.id) < (priorities[$1.id] ?? 0, $1.match ?? 0, $0.id)
                }?.id ?? leader.configuration.nodeID
            }
        }

        /// Makes the chosen replica the leader and returns it once it leads.
        public func promote() async throws -> NodeID {
            let target = try candidate()
            guard let leader = nodes.first(where: { $0.status.role == .leader && $0.status.running }) else {
                throw FailoverError.noCandidate("no running leader among the nodes given")
            }
            if leader.configuration.nodeID != target { try await leader.transferLeadership(to: target) }
            return target
        }
    }
}
