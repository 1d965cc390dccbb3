import AegisKV
import Foundation

/// `GET /v1/cluster`: a node's view of its cluster, as JSON.
public struct ClusterStatusDocument: Codable, Sendable, Hashable {
    /// One member.
    public struct Member: Codable, Sendable, Hashable {
        public var id: String
        /// `leader`, `follower`, `candidate` or `learner`.
        public var role: String
        public var peerAddress: String
        public var clientAddress: String
        public var matchIndex: UInt64?
        /// Entries behind the leader: the leader's own view, or on another node the
        /// view in the leader's last report.
        public var lag: UInt64?
        public var reachable: Bool?
        /// The answering node's failure detector's verdict: `starting`, `healthy`,
        /// `suspect`, `down`, `leaving` or `left`.
        public var status: String?
        /// Milliseconds since the answering node last heard from the member.
        public var lastHeardMs: Int64?
    }

    /// The cluster's health as the answering node sees it (the seed's `ClusterStats`).
    public struct Stats: Codable, Sendable, Hashable {
        /// `initializing`, `forming`, `healthy`, `degraded` or `noQuorum`.
        public var state: String
        public var totalNodes: Int
        public var healthyNodes: Int
        public var suspectNodes: Int
        public var downNodes: Int
        public var votingNodes: Int
        public var quorumSize: Int
        public var hasQuorum: Bool
    }

    /// The node that answered.
    public var nodeID: String
    public var clusterID: String?
    /// The answering node's role.
    public var role: String
    /// The leader's ID, `nil` while none is known.
    public var leader: String?
    /// The leader's RESP address, when known.
    public var leaderClientAddress: String?
    public var term: UInt64
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    /// How the answering node serves linearizable reads: safe, lease or unsafe-local
    /// (absent from the documents of nodes older than the read modes).
    public var readMode: String?
    public var members: [Member]
    /// `nil` when the node keeps no cluster view.
    public var cluster: Stats?

    /// The document for `status`.
    public init(_ status: BackendStatus) {
        nodeID = status.nodeID.rawValue
        clusterID = status.clusterID
        role = status.role.rawValue
        leader = status.leader?.id.rawValue
        leaderClientAddress = status.leader?.clientAddress
        term = status.term
        commitIndex = status.commitIndex
        appliedIndex = status.appliedIndex
        readMode = status.readMode.rawValue
        members = status.members.map {
            Member(id: $0.id.rawValue, role: $0.health == .left ? "removed" : $0.role.rawValue, peerAddress: $0.peerAddress,
                   clientAddress: $0.clientAddress, matchIndex: $0.matchIndex, lag: $0.lag, reachable: $0.reachable,
                   status: $0.health?.rawValue, lastHeardMs: $0.lastHeard.map(Self.milliseconds))
        }
        cluster = status.cluster.map {
            Stats(state: $0.state.rawValue, totalNodes: $0.totalNodes, healthyNodes: $0.healthyNodes,
                  suspectNodes: $0.suspectNodes, downNodes: $0.downNodes, votingNodes: $0.votingNodes,
                  quorumSize: $0.quorumSize, hasQuorum: $0.hasQuorum)
        }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds.multipliedReportingOverflow(by: 1000).partialValue &+ attoseconds / 1_000_000_000_000_000
    }
}

/// `POST /v1/node/shutdown`: the node is stopping.
public struct ShutdownDocument: Codable, Sendable, Hashable {
    /// The node that stops.
    public var nodeID: String
    /// What happens now.
    public var message = "stopping gracefully: a leader hands leadership to the most caught-up voter first"
}

/// `POST /v1/cluster/members`: the member to add.
public struct AddMemberRequest: Codable, Sendable, Hashable {
    /// The new member's node ID.
    public var id: String
    /// Its Raft peer address (`host:port`).
    public var peerAddress: String
    /// Its RESP address (`host:port`).
    public var clientAddress: String
    /// Add as a non-voting learner (promote it once it caught up). Default `true`.
    public var learner: Bool?

    /// Creates a request.
    public init(id: String, peerAddress: String, clientAddress: String, learner: Bool? = nil) {
        self.id = id
        self.peerAddress = peerAddress
        self.clientAddress = clientAddress
        self.learner = learner
    }
}

/// `POST /v1/cluster/transfer-leader`: the optional target.
public struct TransferLeaderRequest: Codable, Sendable, Hashable {
    /// The member to hand leadership to; `nil` for the most up-to-date voter.
    public var target: String?

    /// Creates a request.
    public init(target: String? = nil) { self.target = target }
}

/// `GET /v1/kv/{key}`, and the answer of `PUT` and `DELETE`.
public struct KeyValueDocument: Codable, Sendable, Hashable {
    /// The key, as UTF-8 text (invalid UTF-8 repaired; see `keyBase64`).
    public var key: String
    /// The value as UTF-8 text, when it is valid UTF-8.
    public var value: String?
    /// The value in base64, when it is not valid UTF-8.
    public var valueBase64: String?
    /// The key's version (writes since it was created); 0 once deleted.
    public var version: UInt64
    /// The store revision of the key's latest write (GET), or the store revision after
    /// the command (PUT, DELETE).
    public var revision: UInt64?
    /// For DELETE: whether the key existed.
    public var deleted: Bool?

    /// The value's bytes, from `value` or `valueBase64` (`nil`: no value, or base64 that does not decode).
    public var bytes: [UInt8]? {
        if let value { return Array(value.utf8) }
        return valueBase64.flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) }
    }

    init(key: Key, value: [UInt8]?, version: UInt64, revision: UInt64?, deleted: Bool? = nil) {
        self.key = key.description
        if let value {
            if let text = String(validating: value, as: UTF8.self) {
                self.value = text
            } else {
                self.valueBase64 = Data(value).base64EncodedString()
            }
        }
        self.version = version
        self.revision = revision
        self.deleted = deleted
    }
}

/// `PUT /v1/aa/peers/{id}`: add a cluster to this cluster's active-active group, with
/// its admin addresses (absent: a member known only through forwarding) and, in a tree,
/// the neighbour it hangs `via`.
public struct AAPeerRequest: Codable, Sendable, Hashable {
    public var addresses: [String]?
    public var via: String?

    public init(addresses: [String]? = nil, via: String? = nil) {
        self.addresses = addresses
        self.via = via
    }
}

/// `PUT /v1/kv/{key}` with `Content-Type: application/json`.
public struct PutValueRequest: Codable, Sendable, Hashable {
    /// The value as text.
    public var value: String
}

/// The body of every error response.
public struct AdminErrorDocument: Codable, Sendable, Hashable {
    /// What went wrong and what to do.
    public var error: String
    /// The leader's ID, when the error is about leadership and one is known.
    public var leader: String?
    /// The leader's RESP address, when known.
    public var leaderClientAddress: String?

    /// Creates an error body.
    public init(error: String, leader: String? = nil, leaderClientAddress: String? = nil) {
        self.error = error
        self.leader = leader
        self.leaderClientAddress = leaderClientAddress
    }
}
