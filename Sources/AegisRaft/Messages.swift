/// Asks for a vote (Raft §5.2), or, with `preVote`, asks whether a vote *would* be
/// granted without disrupting anyone (Raft thesis §9.6).
public struct VoteRequest: Sendable, Hashable {
    /// The candidate's term (for a pre-vote: the term it would campaign in).
    public var term: Term
    /// The candidate asking for the vote.
    public var candidateID: NodeID
    /// Index of the candidate's last log entry (Raft §5.4.1).
    public var lastLogIndex: LogIndex
    /// Term of the candidate's last log entry.
    public var lastLogTerm: Term
    /// `true` for a pre-vote (no term change, no vote recorded).
    public var preVote: Bool
    /// `true` when the campaign follows a leadership transfer: the receiver ignores its
    /// leader lease (Raft thesis §3.10).
    public var leadershipTransfer: Bool

    /// Creates a vote request.
    public init(term: Term, candidateID: NodeID, lastLogIndex: LogIndex, lastLogTerm: Term,
                preVote: Bool = false, leadershipTransfer: Bool = false) {
        self.term = term
        self.candidateID = candidateID
        self.lastLogIndex = lastLogIndex
        self.lastLogTerm = lastLogTerm
        self.preVote = preVote
        self.leadershipTransfer = leadershipTransfer
    }
}

/// The answer to a `VoteRequest`.
public struct VoteResponse: Sendable, Hashable {
    /// The voter's term (for a granted pre-vote: the term of the request).
    public var term: Term
    /// Whether the vote is granted.
    public var voteGranted: Bool
    /// The node that answers.
    public var voterID: NodeID
    /// `true` when this answers a pre-vote.
    public var preVote: Bool

    /// Creates a vote response.
    public init(term: Term, voteGranted: Bool, voterID: NodeID, preVote: Bool = false) {
        self.term = term
        self.voteGranted = voteGranted
        self.voterID = voterID
        self.preVote = preVote
    }
}

/// Replicates entries and carries the leader's commit index (Raft §5.3).
public struct AppendEntriesRequest: Sendable, Hashable {
    /// The leader's term.
    public var term: Term
    /// The leader, so followers can redirect clients.
    public var leaderID: NodeID
    /// Index of the entry immediately preceding `entries`.
    public var prevLogIndex: LogIndex
    /// Term of the entry at `prevLogIndex`.
    public var prevLogTerm: Term
    /// Entries to store; empty for a probe or a commit update.
    public var entries: [LogEntry]
    /// The leader's commit index.
    public var leaderCommit: LogIndex

    /// Creates an append request.
    public init(term: Term, leaderID: NodeID, prevLogIndex: LogIndex, prevLogTerm: Term,
                entries: [LogEntry], leaderCommit: LogIndex) {
        self.term = term
        self.leaderID = leaderID
        self.prevLogIndex = prevLogIndex
        self.prevLogTerm = prevLogTerm
        self.entries = entries
        self.leaderCommit = leaderCommit
    }
}

/// The answer to an `AppendEntriesRequest`.
///
/// On success `matchIndex` is the index of the last entry known to match the leader's
/// log. On rejection `rejectedIndex` echoes the request's `prevLogIndex`, and
/// `hintIndex`/`hintTerm` let the leader skip a whole term of mismatching entries at
/// once (fast backtracking, Raft §5.3 "optimisation").
public struct AppendEntriesResponse: Sendable, Hashable {
    /// The follower's term.
    public var term: Term
    /// Whether the entries were accepted.
    public var success: Bool
    /// The answering follower.
    public var followerID: NodeID
    /// On success: the last index that matches the leader.
    public var matchIndex: LogIndex
    /// On rejection: the `prevLogIndex` of the rejected request.
    public var rejectedIndex: LogIndex
    /// On rejection: the largest index at which the follower's log may still match.
    public var hintIndex: LogIndex
    /// On rejection: the follower's term at `hintIndex` (0 if unknown).
    public var hintTerm: Term

    /// Creates an append response.
    public init(term: Term, success: Bool, followerID: NodeID, matchIndex: LogIndex = 0,
                rejectedIndex: LogIndex = 0, hintIndex: LogIndex = 0, hintTerm: Term = 0) {
        self.term = term
        self.success = success
        self.followerID = followerID
        self.matchIndex = matchIndex
        self.rejectedIndex = rejectedIndex
        self.hintIndex = hintIndex
        self.hintTerm = hintTerm
    }
}

/// The leader's periodic heartbeat: asserts leadership, carries the commit index and,
/// when non-zero, a read-index round `context` to be echoed back.
public struct HeartbeatRequest: Sendable, Hashable {
    /// The leader's term.
    public var term: Term
    /// The leader.
    public var leaderID: NodeID
    /// `min(leader commit, follower's match index)`: never beyond what the follower has.
    public var commitIndex: LogIndex
    /// Read-index round identifier (0: none).
    public var context: UInt64

    /// Creates a heartbeat.
    public init(term: Term, leaderID: NodeID, commitIndex: LogIndex, context: UInt64 = 0) {
        self.term = term
        self.leaderID = leaderID
        self.commitIndex = commitIndex
        self.context = context
    }
}

/// The answer to a heartbeat.
public struct HeartbeatResponse: Sendable, Hashable {
    /// The follower's term.
    public var term: Term
    /// The answering follower.
    public var followerID: NodeID
    /// The echoed read-index round identifier.
    public var context: UInt64
    /// `true` when the heartbeat's commit index lies beyond what this follower has
    /// confirmed to match the leader's log in this term (for example after it
    /// restarted): it cannot commit that far until an append confirms its log, so it
    /// asks the leader for one.
    public var requestsAppend: Bool
    /// With `requestsAppend`: this follower's last log index. Below the index the
    /// leader believes it holds, the follower has lost entries it acknowledged (a
    /// wiped or restored disk); the leader then lowers its match and probes from here.
    public var lastIndex: LogIndex
    /// The commit index of the heartbeat this answers. The leader sends
    /// `min(commit, match)`, so it is an index this follower acknowledged in this term;
    /// a `lastIndex` below it proves the follower lost acknowledged entries, however
    /// late or duplicated the answer arrives.
    public var heartbeatCommit: LogIndex

    /// Creates a heartbeat response.
    public init(term: Term, followerID: NodeID, context: UInt64 = 0, requestsAppend: Bool = false,
                lastIndex: LogIndex = 0, heartbeatCommit: LogIndex = 0) {
        self.term = term
        self.followerID = followerID
        self.context = context
        self.requestsAppend = requestsAppend
        self.lastIndex = lastIndex
        self.heartbeatCommit = heartbeatCommit
    }
}

/// One chunk of a snapshot sent to a follower whose next entry was compacted (Raft §7).
public struct InstallSnapshotRequest: Sendable, Hashable {
    /// The leader's term.
    public var term: Term
    /// The leader.
    public var leaderID: NodeID
    /// Index, term and configuration of the snapshot.
    public var metadata: SnapshotMetadata
    /// Byte offset of `data` in the snapshot.
    public var offset: UInt64
    /// The chunk.
    public var data: [UInt8]
    /// `true` for the last chunk.
    public var done: Bool

    /// Creates a snapshot chunk.
    public init(term: Term, leaderID: NodeID, metadata: SnapshotMetadata, offset: UInt64, data: [UInt8], done: Bool) {
        self.term = term
        self.leaderID = leaderID
        self.metadata = metadata
        self.offset = offset
        self.data = data
        self.done = done
    }
}

/// The answer to a snapshot chunk.
public struct InstallSnapshotResponse: Sendable, Hashable {
    /// The follower's term.
    public var term: Term
    /// The answering follower.
    public var followerID: NodeID
    /// Index of the snapshot being transferred.
    public var snapshotIndex: LogIndex
    /// The offset the follower expects next (a lost chunk is re-sent from here).
    public var nextOffset: UInt64
    /// `true` once the snapshot is installed (its index is then the follower's match).
    public var done: Bool
    /// `true` when the follower refused the transfer (for example, an unknown offset);
    /// the leader restarts the transfer from offset 0.
    public var rejected: Bool

    /// Creates a snapshot response.
    public init(term: Term, followerID: NodeID, snapshotIndex: LogIndex, nextOffset: UInt64, done: Bool, rejected: Bool = false) {
        self.term = term
        self.followerID = followerID
        self.snapshotIndex = snapshotIndex
        self.nextOffset = nextOffset
        self.done = done
        self.rejected = rejected
    }
}

/// A message between Raft nodes. The shell delivers it to the node named `to` by
/// calling `RaftCore.step(_:)`.
public struct RaftMessage: Sendable, Hashable {
    /// Sender.
    public var from: NodeID
    /// Receiver.
    public var to: NodeID
    /// What is carried.
    public var payload: Payload

    /// The kinds of Raft messages.
    public enum Payload: Sendable, Hashable {
        case vote(VoteRequest)
        case voteResponse(VoteResponse)
        case appendEntries(AppendEntriesRequest)
        case appendEntriesResponse(AppendEntriesResponse)
        case heartbeat(HeartbeatRequest)
        case heartbeatResponse(HeartbeatResponse)
        case installSnapshot(InstallSnapshotRequest)
        case installSnapshotResponse(InstallSnapshotResponse)
        /// Tells the transfer target to campaign at once (Raft thesis §3.10).
        case timeoutNow(term: Term)
        /// A follower asks the leader for a read index (`context` identifies the read).
        case readIndex(term: Term, context: UInt64)
        /// The leader's answer: reads may be served once `index` is applied. `index` is 0
        /// when the leader could not serve the request.
        case readIndexResponse(term: Term, context: UInt64, index: LogIndex)
        /// A follower forwards client proposals to the leader.
        case forwardedProposal(term: Term, entries: [LogEntry])
    }

    /// Creates a message.
    public init(from: NodeID, to: NodeID, payload: Payload) {
        self.from = from
        self.to = to
        self.payload = payload
    }

    /// The sender's term (every message carries one, Raft §5.1).
    public var term: Term {
        switch payload {
        case .vote(let m): return m.term
        case .voteResponse(let m): return m.term
        case .appendEntries(let m): return m.term
        case .appendEntriesResponse(let m): return m.term
        case .heartbeat(let m): return m.term
        case .heartbeatResponse(let m): return m.term
        case .installSnapshot(let m): return m.term
        case .installSnapshotResponse(let m): return m.term
        case .timeoutNow(let t), .readIndex(let t, _), .readIndexResponse(let t, _, _), .forwardedProposal(let t, _):
            return t
        }
    }

    /// A short name for the kind of message, for logs and traces.
    public var kindName: String {
        switch payload {
        case .vote(let m): return m.preVote ? "PreVote" : "Vote"
        case .voteResponse(let m): return m.preVote ? "PreVoteResp" : "VoteResp"
        case .appendEntries: return "App"
        case .appendEntriesResponse: return "AppResp"
        case .heartbeat: return "Heartbeat"
        case .heartbeatResponse: return "HeartbeatResp"
        case .installSnapshot: return "Snap"
        case .installSnapshotResponse: return "SnapResp"
        case .timeoutNow: return "TimeoutNow"
        case .readIndex: return "ReadIndex"
        case .readIndexResponse: return "ReadIndexResp"
        case .forwardedProposal: return "Prop"
        }
    }

    /// `true` for an append from a leader: the one kind of message a leader may send
    /// before its own copy of the entries is durable (see `Ready`).
    public var isLeaderAppend: Bool {
        if case .appendEntries = payload { return true }
        return false
    }
}
