public import AegisKV
public import AegisRaft

/// Where to find the leader: its ID and the address its clients (RESP) connect to.
public struct LeaderHint: Sendable, Hashable, CustomStringConvertible {
    /// The leader's node ID.
    public var id: NodeID
    /// The leader's RESP address (`host:port`), when known.
    public var clientAddress: String?

    /// Creates a hint.
    public init(id: NodeID, clientAddress: String? = nil) {
        self.id = id
        self.clientAddress = clientAddress
    }

    /// `node2 at 127.0.0.1:7002`, or just `node2` when the address is unknown.
    public var description: String {
        if let clientAddress { return "\(id) at \(clientAddress)" }
        return id.rawValue
    }
}

/// Why the backend could not run a request. Every case says what the caller can do.
public enum BackendError: Error, Sendable, Hashable, CustomStringConvertible {
    /// This node is not the leader and forwarding the request to the leader failed.
    /// The request was not applied. Retry, or connect to the leader directly.
    case notLeader(leader: LeaderHint?)
    /// No leader is elected at the moment (an election is running, or there is no
    /// quorum). `lastKnownLeader` is the most recent leader this node knew of.
    /// The request was not applied; retry shortly.
    case noLeader(lastKnownLeader: LeaderHint?)
    /// The request did not complete within `milliseconds`. A write may still be
    /// applied later: read before retrying a non-idempotent command.
    case timeout(milliseconds: Int64)
    /// The node cannot serve requests (it is starting, shutting down, or its storage
    /// failed); the text says why.
    case unavailable(String)
    /// The state machine (or a local check before proposing) refused the command;
    /// nothing changed.
    case command(KVError)
    /// The node is too busy to take the request now (its request queue is full);
    /// nothing was applied. Retry after a short pause.
    case overloaded(String)
    /// The write was not committed: after a leadership change another entry took its
    /// log position, so it can never be applied. Nothing was applied; retry.
    case notCommitted
    /// The cluster refused an administrative request (for example a membership change
    /// while another is in progress, or an unknown member); the text says why.
    case rejected(String)

    public var description: String {
        switch self {
        case .notLeader(let leader):
            if let leader { return "this node is not the leader and could not forward to the leader \(leader); retry, or connect to the leader" }
            return "this node is not the leader and no leader is known; retry shortly"
        case .noLeader(let last):
            if let last { return "no leader elected (last known leader: \(last)); retry shortly" }
            return "no leader elected (no leader known yet); retry shortly"
        case .timeout(let milliseconds):
            return "timed out after \(milliseconds) ms; a write may still be applied, so read before retrying"
        case .unavailable(let why):
            return "node unavailable: \(why)"
        case .command(let error):
            return error.description
        case .rejected(let why):
            return "request rejected: \(why)"
        case .overloaded(let why):
            return "node overloaded: \(why)"
        case .notCommitted:
            return "the write was not committed because leadership changed; nothing was applied, retry"
        }
    }
}
