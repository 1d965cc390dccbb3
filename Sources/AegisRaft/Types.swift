/// A Raft term: a monotonically increasing election epoch (Raft §5.1).
public typealias Term = UInt64

/// The position of an entry in the replicated log. The first entry has index 1;
/// index 0 means "before the first entry".
public typealias LogIndex = UInt64

/// The identity of a node in a cluster. Stable for the node's lifetime; never reused
/// for a different node.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The textual identifier, for example `"node1"`.
    public let rawValue: String

    /// Creates an identifier from its textual form.
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// Creates an identifier from a string literal.
    public init(stringLiteral value: String) { self.rawValue = value }

    public var description: String { rawValue }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// What a log entry carries.
public enum EntryType: UInt8, Sendable, Hashable, CaseIterable {
    /// An application command, handed to the state machine when committed.
    case command = 0
    /// A cluster configuration change (`ConfChange`, encoded in `data`).
    case configChange = 1
    /// An empty entry a new leader appends to commit entries of earlier terms (Raft §5.4.2).
    case noOp = 2
}

/// One entry of the replicated log.
public struct LogEntry: Sendable, Hashable {
    /// The entry's position in the log.
    public var index: LogIndex
    /// The term of the leader that created the entry.
    public var term: Term
    /// What the entry carries.
    public var type: EntryType
    /// The payload: an application command or an encoded configuration change.
    public var data: [UInt8]
    /// Wall-clock time (milliseconds since the Unix epoch) supplied by the shell of the
    /// proposing leader; 0 when unknown. Used by point-in-time recovery, never by Raft.
    public var timestamp: UInt64

    /// Creates an entry.
    public init(index: LogIndex, term: Term, type: EntryType = .command, data: [UInt8] = [], timestamp: UInt64 = 0) {
        self.index = index
        self.term = term
        self.type = type
        self.data = data
        self.timestamp = timestamp
    }

    /// The approximate number of bytes the entry occupies, for flow control.
    @inlinable public var byteSize: Int { data.count + 32 }
}

/// The persistent state of a Raft node (Raft figure 2): it must be on stable storage
/// before the node answers any message that depends on it.
public struct RaftState: Sendable, Hashable {
    /// The latest term the node has seen.
    public var term: Term
    /// The candidate that received this node's vote in `term`, if any.
    public var votedFor: NodeID?
    /// The highest log index known to be committed. Persisting it is an optimisation
    /// (it lets a restarted node apply without waiting for the leader); it never
    /// decreases.
    public var commitIndex: LogIndex

    /// Creates a persistent state.
    public init(term: Term = 0, votedFor: NodeID? = nil, commitIndex: LogIndex = 0) {
        self.term = term
        self.votedFor = votedFor
        self.commitIndex = commitIndex
    }

    /// `true` when nothing has been recorded yet.
    public var isEmpty: Bool { term == 0 && votedFor == nil && commitIndex == 0 }
}

/// The membership of a cluster: who votes and who only receives the log.
///
/// During a joint-consensus change (Raft §6), `outgoingVoters` holds the old voter set
/// and a decision needs a majority of both sets.
public struct ConfState: Sendable, Hashable {
    /// The voters of the (incoming) configuration.
    public var voters: Set<NodeID>
    /// The voters of the outgoing configuration while a joint change is in progress;
    /// empty otherwise.
    public var outgoingVoters: Set<NodeID>
    /// Non-voting members that receive the log.
    public var learners: Set<NodeID>
    /// Voters of the outgoing configuration that become learners when the joint
    /// configuration is left.
    public var learnersNext: Set<NodeID>
    /// When `true`, the leader leaves the joint configuration on its own once the
    /// joint entry is applied.
    public var autoLeave: Bool

    /// Creates a configuration.
    public init(voters: Set<NodeID> = [], outgoingVoters: Set<NodeID> = [], learners: Set<NodeID> = [],
                learnersNext: Set<NodeID> = [], autoLeave: Bool = false) {
        self.voters = voters
        self.outgoingVoters = outgoingVoters
        self.learners = learners
        self.learnersNext = learnersNext
        self.autoLeave = autoLeave
    }

    /// `true` while a joint configuration is in effect.
    public var isJoint: Bool { !outgoingVoters.isEmpty }

    /// Every member (voters of both halves and learners), sorted.
    public var allMembers: [NodeID] {
        Array(voters.union(outgoingVoters).union(learners).union(learnersNext)).sorted()
    }
}

/// Describes a snapshot: the last log entry it covers and the configuration at that point.
public struct SnapshotMetadata: Sendable, Hashable {
    /// The index of the last entry the snapshot includes.
    public var index: LogIndex
    /// The term of that entry.
    public var term: Term
    /// The configuration as of `index`.
    public var confState: ConfState

    /// Creates snapshot metadata.
    public init(index: LogIndex = 0, term: Term = 0, confState: ConfState = ConfState()) {
        self.index = index
        self.term = term
        self.confState = confState
    }
}

/// A point-in-time image of the application state machine plus its metadata.
public struct Snapshot: Sendable, Hashable {
    /// Where the snapshot stands in the log.
    public var metadata: SnapshotMetadata
    /// The state machine's serialised state.
    public var data: [UInt8]

    /// Creates a snapshot.
    public init(metadata: SnapshotMetadata = SnapshotMetadata(), data: [UInt8] = []) {
        self.metadata = metadata
        self.data = data
    }

    /// `true` for the empty snapshot (index 0).
    public var isEmpty: Bool { metadata.index == 0 }
}

extension Array where Element == LogEntry {
    /// The entries at positions `start..<end`, cut once their total `byteSize` passes
    /// `maxBytes` — but always at least one when the range is not empty (a storage's
    /// `entries(from:to:maxBytes:)` contract).
    public func prefix(from start: Int, to end: Int, maxBytes: Int) -> [LogEntry] {
        var size = 0
        var stop = start
        while stop < end {
            size += self[stop].byteSize
            if stop > start && size > maxBytes { break }
            stop += 1
        }
        return Array(self[start..<stop])
    }
}
