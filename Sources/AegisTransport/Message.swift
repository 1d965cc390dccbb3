public import AegisRaft

/// The kinds of messages the transport carries. The raw value is the `kind` byte of a
/// frame on the wire; it never changes for an existing kind.
public enum MessageType: UInt8, Sendable, Hashable, CaseIterable {
    /// A vote or pre-vote request (Raft §5.2).
    case voteRequest = 1
    /// The answer to a vote or pre-vote request.
    case voteResponse = 2
    /// Log entries from the leader (Raft §5.3).
    case appendEntries = 3
    /// The answer to `appendEntries`.
    case appendEntriesResponse = 4
    /// The leader's heartbeat.
    case heartbeat = 5
    /// The answer to a heartbeat.
    case heartbeatResponse = 6
    /// One chunk of a snapshot (Raft §7).
    case installSnapshot = 7
    /// The answer to a snapshot chunk.
    case installSnapshotResponse = 8
    /// Tells a node to campaign at once (leadership transfer).
    case timeoutNow = 9
    /// A follower asks the leader for a read index.
    case readIndex = 10
    /// The leader's answer to `readIndex`.
    case readIndexResponse = 11
    /// Client proposals a follower forwards to the leader.
    case forwardedProposal = 12
    /// A client operation forwarded between nodes.
    case clientRequest = 13
    /// The answer to a forwarded client operation.
    case clientResponse = 14
    /// A member's periodic report of itself to every other member (liveness and, from
    /// the leader, its replication progress): see `PeerStatusReport`.
    case peerStatus = 15

    /// The kind of a Raft payload.
    public init(_ payload: RaftMessage.Payload) {
        switch payload {
        case .vote: self = .voteRequest
        case .voteResponse: self = .voteResponse
        case .appendEntries: self = .appendEntries
        case .appendEntriesResponse: self = .appendEntriesResponse
        case .heartbeat: self = .heartbeat
        case .heartbeatResponse: self = .heartbeatResponse
        case .installSnapshot: self = .installSnapshot
        case .installSnapshotResponse: self = .installSnapshotResponse
        case .timeoutNow: self = .timeoutNow
        case .readIndex: self = .readIndex
        case .readIndexResponse: self = .readIndexResponse
        case .forwardedProposal: self = .forwardedProposal
        }
    }
}

/// What a `Message` carries: a Raft message or a client operation.
public enum MessagePayload: Sendable, Hashable {
    /// A Raft protocol message. Its `from` and `to` are the envelope's.
    case raft(RaftMessage.Payload)
    /// A client operation, for example forwarded by a follower to the leader.
    case clientRequest(ClientRequest)
    /// The answer to a `clientRequest`.
    case clientResponse(ClientResponse)
    /// A member's periodic report of itself (liveness gossip).
    case peerStatus(PeerStatusReport)

    /// The kind of this payload.
    public var type: MessageType {
        switch self {
        case .raft(let payload): return MessageType(payload)
        case .clientRequest: return .clientRequest
        case .clientResponse: return .clientResponse
        case .peerStatus: return .peerStatus
        }
    }
}

/// What a member tells every other member at each heartbeat interval: that it is alive
/// (every member observes every other directly, not only the leader and its followers
/// as Raft traffic would allow) and where it is. A leader adds its view of each
/// member's replication, so that any member can report every member's match index and
/// lag. Informational only: nothing in Raft depends on it.
public struct PeerStatusReport: Sendable, Hashable {
    /// The most members a report may describe (`progress`); a longer list is refused
    /// when decoded.
    public static let maxProgressEntries = 1_024

    /// The sender's term.
    public var term: Term
    /// The sender's commit index.
    public var commitIndex: LogIndex
    /// The sender's applied index.
    public var appliedIndex: LogIndex
    /// The sender's last log index.
    public var lastIndex: LogIndex
    /// From a leader: each member's match index as the leader tracks it (the leader
    /// included); empty from other members.
    public var progress: [NodeID: LogIndex]

    /// Creates a report.
    public init(term: Term, commitIndex: LogIndex, appliedIndex: LogIndex, lastIndex: LogIndex,
                progress: [NodeID: LogIndex] = [:]) {
        self.term = term
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.lastIndex = lastIndex
        self.progress = progress
    }
}

/// The transport envelope: who sends, who receives, and what.
///
/// A Raft message travels as `Message(raft)`; its sender and receiver are stored once,
/// in the envelope, so `raftMessage` gives back exactly the message that was sent.
public struct Message: Sendable, Hashable {
    /// The sending node.
    public var from: NodeID
    /// The receiving node.
    public var to: NodeID
    /// What is carried.
    public var payload: MessagePayload

    /// Creates a message.
    public init(from: NodeID, to: NodeID, payload: MessagePayload) {
        self.from = from
        self.to = to
        self.payload = payload
    }

    /// Wraps a Raft message.
    public init(_ raft: RaftMessage) {
        self.init(from: raft.from, to: raft.to, payload: .raft(raft.payload))
    }

    /// The kind of message.
    public var type: MessageType { payload.type }

    /// The Raft message carried, or `nil` for a client message.
    public var raftMessage: RaftMessage? {
        guard case .raft(let payload) = payload else { return nil }
        return RaftMessage(from: from, to: to, payload: payload)
    }
}

/// A client operation sent between nodes, for example by a follower that forwards a
/// client's write to the leader. The command is opaque to the transport.
public struct ClientRequest: Sendable, Hashable {
    /// What the client asks for.
    public enum Kind: UInt8, Sendable, Hashable, CaseIterable {
        /// A command that goes through the log.
        case write = 0
        /// A linearizable read (served after a read-index round).
        case read = 1
    }

    /// Identifies the request on the sending node; echoed in the response.
    public var requestID: UInt64
    /// Whether the command writes or only reads.
    public var kind: Kind
    /// The encoded command (for example an `AegisKV` command).
    public var command: [UInt8]

    /// Creates a request.
    public init(requestID: UInt64, kind: Kind = .write, command: [UInt8]) {
        self.requestID = requestID
        self.kind = kind
        self.command = command
    }
}

/// Why a client operation failed.
public struct ClientFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// A failure category. New codes may be added; unknown codes decode as themselves.
    public struct Code: RawRepresentable, Sendable, Hashable {
        /// The wire value.
        public var rawValue: UInt16
        /// Creates a code from its wire value.
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        /// The receiver is not the leader; see `leaderHint`.
        public static let notLeader = Code(rawValue: 1)
        /// The proposal was dropped (for example during a leadership transfer); retry.
        public static let proposalDropped = Code(rawValue: 2)
        /// The operation did not complete in time; its outcome is unknown.
        public static let timeout = Code(rawValue: 3)
        /// The command could not be decoded or is not allowed.
        public static let invalidRequest = Code(rawValue: 4)
        /// The node is shutting down or cannot serve.
        public static let unavailable = Code(rawValue: 5)
        /// The state machine rejected the command (for example a failed compare-and-swap).
        public static let rejected = Code(rawValue: 6)
    }

    /// The category.
    public var code: Code
    /// A message a person can act on.
    public var message: String
    /// The leader, when the failing node knows it.
    public var leaderHint: NodeID?

    /// Creates a failure.
    public init(code: Code, message: String, leaderHint: NodeID? = nil) {
        self.code = code
        self.message = message
        self.leaderHint = leaderHint
    }

    public var description: String {
        let hint = leaderHint.map { " (leader: \($0))" } ?? ""
        return "client failure \(code.rawValue): \(message)\(hint)"
    }
}

/// The answer to a `ClientRequest`.
public struct ClientResponse: Sendable, Hashable {
    /// How the operation ended.
    public enum Outcome: Sendable, Hashable {
        /// Applied at `index`; `value` is the state machine's answer (possibly empty).
        case success(index: LogIndex, value: [UInt8])
        /// Not applied, or applied with an error.
        case failure(ClientFailure)
    }

    /// The `requestID` of the request answered.
    public var requestID: UInt64
    /// The outcome.
    public var outcome: Outcome

    /// Creates a response.
    public init(requestID: UInt64, outcome: Outcome) {
        self.requestID = requestID
        self.outcome = outcome
    }
}
