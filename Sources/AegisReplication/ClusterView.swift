public import AegisCluster
public import AegisRaft
import AegisTransport

/// A node's view of every member's health: the seed's cluster module (`AegisCluster`)
/// fed by what this node hears.
///
/// **How every member observes every other.** Raft traffic alone does not do it: a
/// follower hears only the leader (and candidates), so it could say nothing of the
/// other followers. Every member therefore sends each other member a small
/// `PeerStatusReport` once per Raft heartbeat interval (100 ms by default): about 60
/// bytes, n·(n−1) messages per interval — 6 for three nodes, 20 for five — next to
/// the leader's own heartbeats. Each report is a heartbeat for the phi-accrual
/// `FailureDetector`, so each node judges each peer on its own evidence (a follower
/// sees a partitioned peer as down even while the leader still reaches it). Raft
/// traffic does not count: under load it arrives every millisecond and would teach the
/// detector an interval that an idle moment then looks like a failure against. The leader's report also carries its match index of every member,
/// which is how a follower reports every member's MATCH and LAG (as of the leader's
/// last report, at most one interval old).
///
/// Time is the node's tick count times the tick interval, so the simulator's runs stay
/// deterministic. `Leaving` follows membership: a member in the outgoing half of a joint
/// configuration only, or whose removal this leader proposed and has not applied yet;
/// `Left` is reported for the last `maxDeparted` members removed.
struct ClusterView {
    /// Members removed that are still reported as `left`, most recent last.
    static let maxDeparted = 16

    let localID: NodeID
    private(set) var cluster: Cluster
    /// The latest report of each peer.
    private(set) var reports: [NodeID: PeerStatusReport] = [:]
    /// The latest report from the leader of the current term (its replication view).
    private(set) var leaderReport: (from: NodeID, report: PeerStatusReport)?
    /// Members removed, reported as `left`.
    private(set) var departed: [NodeInfo] = []
    /// Removals this node proposed as leader and has not applied yet.
    var pendingRemovals: Set<NodeID> = []

    /// A view holding only this node. `heartbeat` is the interval at which peers report,
    /// `failureTimeout` the silence after which a peer is down.
    init(localID: NodeID, heartbeat: Duration, failureTimeout: Duration, clock: TickTime) throws(ClusterError) {
        self.localID = localID
        let config = ClusterConfig(name: "aegis").withMinNodes(1).withMaxNodes(Self.maxMembers)
            .withHeartbeatInterval(heartbeat).withFailureTimeout(max(failureTimeout, heartbeat * 2))
        let local = NodeInfo(id: localID, address: Self.placeholderHost(localID), port: 1)
        cluster = try Cluster(localNode: local, config: config, clock: ClusterClock { clock.now })
    }

    /// Members a view tracks at most (a Raft configuration larger than this is not
    /// tracked beyond it).
    static let maxMembers = 1_024

    /// A host name standing in for a member whose address this node does not know.
    static func placeholderHost(_ id: NodeID) -> String { "unknown-address-of-\(id.rawValue)" }

    // MARK: Inputs

    /// Brings the members in line with the Raft configuration: adds new members (as
    /// `starting`), removes members gone (reported as `left`), marks leaving members,
    /// and records the leader.
    mutating func sync(conf: ConfState, addresses: [NodeID: MemberAddress], leader: NodeID?, term: Term) {
        let members = Set(conf.allMembers)
        for id in cluster.nodes.keys where id != localID && !members.contains(id) {
            if let change = try? cluster.removeNode(id), case .remove(let info) = change {
                departed.removeAll { $0.id == id }
                departed.append(info)
                if departed.count > Self.maxDeparted { departed.removeFirst(departed.count - Self.maxDeparted) }
            }
            reports[id] = nil
            pendingRemovals.remove(id)
        }
        for id in conf.allMembers.sorted() {
            let voter = conf.voters.contains(id) || conf.outgoingVoters.contains(id)
            let leaving = pendingRemovals.contains(id) || (conf.outgoingVoters.contains(id) && !conf.voters.contains(id))
            if var node = cluster.node(id) {
                let role: NodeRole = voter ? (node.role == .learner ? .follower : node.role) : .learner
                let status: AegisCluster.NodeStatus = leaving ? .leaving : (node.status == .leaving ? .starting : node.status)
                guard role != node.role || status != node.status else { continue }
                node.role = role
                node.status = id == localID && status != .leaving ? .healthy : status
                _ = try? cluster.updateNode(node)
            } else {
                guard cluster.nodes.count < Self.maxMembers else { continue }
                departed.removeAll { $0.id == id }
                let (host, port) = Self.endpoint(of: id, addresses[id])
                _ = try? cluster.addNode(NodeInfo(id: id, address: host, port: port, role: voter ? .follower : .learner))
            }
        }
        cluster.setLeader(leader, term: term)
        // Removals proposed by this node as leader are settled by the log; once another
        // node leads, whatever this node proposed is not pending on its account.
        if leader != localID { pendingRemovals = [] }
    }

    /// A sign of life from `peer` (a report; tests call it directly).
    mutating func heard(from peer: NodeID) {
        cluster.heartbeat(from: peer)
    }

    /// A peer's periodic report: a sign of life, and from the leader its replication view.
    mutating func received(_ report: PeerStatusReport, from peer: NodeID, leader: NodeID?) {
        guard cluster.node(peer) != nil else { return }
        cluster.heartbeat(from: peer)
        reports[peer] = report
        if peer == leader, !report.progress.isEmpty { leaderReport = (peer, report) }
    }

    /// Asks the failure detector about every peer.
    @discardableResult
    mutating func checkFailures() -> [NodeStatusChange] { cluster.checkFailures() }

    // MARK: Outputs

    /// The status of member `id` (`left` for a recently removed one).
    func status(of id: NodeID) -> AegisCluster.NodeStatus? {
        cluster.node(id)?.status ?? departed.last(where: { $0.id == id })?.status
    }

    /// The time since `id` was last heard from (`nil` for this node or an unknown one).
    func silence(of id: NodeID) -> Duration? {
        cluster.silence(of: id)
    }

    /// The leader's match index for `id` and the leader's last index, from the leader's
    /// latest report (`nil` when none was received from the current leader).
    func leaderProgress(of id: NodeID, leader: NodeID?) -> (match: LogIndex, leaderLast: LogIndex)? {
        guard let (from, report) = leaderReport, from == leader, let match = report.progress[id] else { return nil }
        return (match, report.lastIndex)
    }
}

/// Node time for the failure detector: the loop's ticks times the tick interval. Read
/// and written on the loop's thread only.
final class TickTime: @unchecked Sendable {
    let tickInterval: Duration
    var ticks = 0

    init(tickInterval: Duration) { self.tickInterval = tickInterval }

    var now: ClusterInstant { ClusterInstant(sinceOrigin: tickInterval * ticks) }
}

extension ClusterView {
    /// `host` and `port` of a member's peer address; a placeholder when unknown.
    static func endpoint(of id: NodeID, _ address: MemberAddress?) -> (String, Int) {
        if let text = address?.peer, let peer = PeerAddress(parsing: text), (1 ... 65535).contains(peer.port) {
            return (peer.host, peer.port)
        }
        return (placeholderHost(id), 1)
    }
}
