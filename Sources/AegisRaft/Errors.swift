/// Errors returned by the Raft core. All are recoverable by the caller unless noted.
public enum RaftError: Error, Sendable, Hashable, CustomStringConvertible {
    /// This node is not the leader. `leader` names the leader if known, so the caller
    /// can redirect.
    case notLeader(leader: NodeID?)
    /// A proposal was dropped; `reason` says why (for example a leadership transfer in
    /// progress, or the node was removed from the cluster).
    case proposalDropped(reason: String)
    /// Accepting the proposal would exceed the configured bound on uncommitted bytes.
    case uncommittedLimitExceeded(limit: Int)
    /// A configuration change is already pending; only one may be in flight.
    case configChangeInProgress
    /// The requested configuration change is invalid; the text says why.
    case invalidConfigChange(String)
    /// The configuration is invalid; the text says why.
    case invalidConfig(String)
    /// The requested log index has been compacted into a snapshot.
    case compacted
    /// The requested log index is beyond the end of the log.
    case unavailable
    /// A snapshot is being prepared; try again later.
    case snapshotTemporarilyUnavailable
    /// The storage failed. Fatal for this node: it must stop and be repaired.
    case storage(String)
    /// A message that cannot be processed (for example addressed to another node, or
    /// with a field out of range). The message was dropped before it changed anything;
    /// the node keeps running. The text names the field and why it is invalid.
    case invalidMessage(String)
    /// This node's log conflicts with the leader's at an index it had already
    /// committed (for example its peers lost acknowledged data). Sticky and fatal for
    /// this node's participation: it no longer votes, campaigns, appends, commits or
    /// applies; an operator must repair or replace it. See `RaftCore.divergence`.
    case diverged(Divergence)
    /// Receiving a snapshot failed locally (for example the `SnapshotReceiver` could
    /// not write its temporary file). The transfer was dropped; the leader restarts it.
    case snapshotReceiveFailed(String)
    /// `advance(_:)` was called without a matching `ready()`.
    case readyMismatch

    public var description: String {
        switch self {
        case .notLeader(let leader):
            if let leader { return "not the leader; the leader is \(leader)" }
            return "not the leader, and no leader is known"
        case .proposalDropped(let reason): return "proposal dropped: \(reason)"
        case .uncommittedLimitExceeded(let limit):
            return "proposal refused: more than \(limit) bytes are proposed but not yet committed"
        case .configChangeInProgress: return "a configuration change is already in progress"
        case .invalidConfigChange(let why): return "invalid configuration change: \(why)"
        case .invalidConfig(let why): return "invalid configuration: \(why)"
        case .compacted: return "requested index is compacted"
        case .unavailable: return "requested index is unavailable"
        case .snapshotTemporarilyUnavailable: return "snapshot is temporarily unavailable"
        case .storage(let why): return "storage failure: \(why)"
        case .invalidMessage(let why): return "invalid message: \(why)"
        case .diverged(let divergence): return divergence.description
        case .snapshotReceiveFailed(let why): return "snapshot receive failed: \(why)"
        case .readyMismatch: return "advance() called without a matching ready()"
        }
    }
}
