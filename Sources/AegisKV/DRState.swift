public import AegisCRDT

/// What a cluster may do in a disaster-recovery pair: take writes, follow a primary
/// through the change stream, or nothing (fenced after a failover).
public enum ClusterRole: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The writable cluster (every cluster starts as one).
    case primary = 1
    /// A read-only copy fed by the change stream of its primary.
    case standby = 2
    /// A former primary that a failover replaced: read-only, it names the new primary.
    case fenced = 3

    public var description: String {
        switch self {
        case .primary: return "primary"
        case .standby: return "standby"
        case .fenced: return "fenced"
        }
    }

    /// Parses `primary`, `standby` or `fenced`.
    public init?(name: String) {
        guard let role = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = role
    }
}

/// How far one incoming link (a source cluster's change stream) has been applied.
public struct StreamCursor: Sendable, Hashable {
    /// The source's last log index whose changes are applied here (every change at or
    /// below it is applied exactly once).
    public var lastIndex: UInt64
    /// The source's epoch in the last batch applied.
    public var epoch: UInt64
    /// The HLC physical time (source leader's wall clock, ms) of the last change applied.
    public var lastPhysical: UInt64
    /// The source's commit index when it shipped the last batch applied: the link was
    /// `sourceCommit - lastIndex` entries behind then.
    public var sourceCommit: UInt64

    /// Creates a cursor.
    public init(lastIndex: UInt64, epoch: UInt64, lastPhysical: UInt64, sourceCommit: UInt64) {
        self.lastIndex = lastIndex
        self.epoch = epoch
        self.lastPhysical = lastPhysical
        self.sourceCommit = sourceCommit
    }
}

/// The disaster-recovery state a cluster keeps in its state machine, so it is replicated
/// by its Raft log, restored from its snapshots, and the same on every node.
public struct DRState: Sendable, Hashable {
    /// The fencing token: raised by every failover. A stream batch or a transition
    /// carrying a lower epoch is refused.
    public var epoch: UInt64 = 0
    /// The cluster's role.
    public var role: ClusterRole = .primary
    /// Where clients should write when this cluster is not the primary (client
    /// addresses, `host:port[,host:port…]`), named in the read-only error; empty if unknown.
    public var primary: String = ""
    /// The primary's admin addresses (`host:port[,…]`), where a standby asks for changes.
    public var primaryAdmin: String = ""
    /// The write lease in milliseconds a primary needs from its standby (0: none): a
    /// primary's leader takes writes only while a standby acknowledged it within this time.
    public var leaseMillis: UInt64 = 0
    /// The incoming links' cursors, by source cluster ID.
    public var cursors: [String: StreamCursor] = [:]
    /// The source cluster a failed-back standby must be re-seeded from before it applies
    /// any of its batches (`Command.drRejoin`), or empty. A seed from it clears it.
    public var pendingSeed: String = ""

    /// Creates the state of a cluster never configured for DR: primary, epoch 0.
    public init() {}

    /// `true` while the state is the one every cluster starts with.
    public var isInitial: Bool { self == DRState() }
}

/// A change of a cluster's DR role, epoch, primary address or lease, made through its log.
///
/// Applied only if `epoch` is at least the cluster's epoch (a lower one fails with
/// `KVError.staleEpoch`); a promotion to primary must raise the epoch.
public struct DRTransition: Sendable, Hashable {
    /// The epoch after the change.
    public var epoch: UInt64
    /// The role after the change.
    public var role: ClusterRole
    /// The primary's client addresses (empty for a primary itself).
    public var primary: String
    /// The primary's admin addresses (a standby asks them for changes).
    public var primaryAdmin: String
    /// The write lease after the change, in milliseconds (0: none).
    public var leaseMillis: UInt64
    /// For a cluster becoming a standby of a cluster it has no cursor for (a planned
    /// switchover): the source cluster ID and the source index to resume after (its
    /// log up to there holds nothing this cluster lacks). Empty: no cursor is set.
    public var resumeSource: String
    /// See `resumeSource`.
    public var resumeIndex: UInt64

    /// The longest `primary` text, in UTF-8 bytes.
    public static let maxPrimarySize = 1024

    /// Creates a transition.
    public init(epoch: UInt64, role: ClusterRole, primary: String = "", primaryAdmin: String = "",
                leaseMillis: UInt64 = 0, resumeSource: String = "", resumeIndex: UInt64 = 0) {
        self.epoch = epoch
        self.role = role
        self.primary = primary
        self.primaryAdmin = primaryAdmin
        self.leaseMillis = leaseMillis
        self.resumeSource = resumeSource
        self.resumeIndex = resumeIndex
    }
}

/// One committed change of a source cluster, as the change stream carries it.
///
/// `origin` and `timestamp` are for active-active: a cluster never sends a change back
/// to its origin (loop prevention), and CRDT merges order concurrent writes by the HLC
/// timestamp (whose replica is the origin). A DR standby applies `command` as is.
public struct StreamChange: Sendable, Hashable {
    /// The change's log index on the source cluster.
    public var sourceIndex: UInt64
    /// The cluster where the change was first written.
    public var origin: ReplicaID
    /// Its hybrid logical clock timestamp (physical part: the proposing leader's wall
    /// clock in ms), unique and increasing along the source's log.
    public var timestamp: HLCTimestamp
    /// The write, as the source applied it.
    public var command: Command

    /// Creates a change.
    public init(sourceIndex: UInt64, origin: ReplicaID, timestamp: HLCTimestamp, command: Command) {
        self.sourceIndex = sourceIndex
        self.origin = origin
        self.timestamp = timestamp
        self.command = command
    }
}

/// A batch of a source cluster's committed changes for one link: applied by the target
/// as one log entry, together with the link's cursor, so it is applied once or not at all.
///
/// It covers the source's log `afterIndex + 1 ... lastIndex`; `changes` are the writes in
/// that range (reads, no-ops and membership changes carry nothing to apply).
public struct StreamBatch: Sendable, Hashable {
    /// The source cluster's ID (the cursor's name on the target).
    public var source: String
    /// The source's epoch when it shipped the batch.
    public var epoch: UInt64
    /// The source index the batch follows.
    public var afterIndex: UInt64
    /// The last source index the batch covers (`>= afterIndex`).
    public var lastIndex: UInt64
    /// The source's commit index when it read the batch (`>= lastIndex`).
    public var sourceCommit: UInt64
    /// The writes, in source log order, each with an index in `afterIndex + 1 ... lastIndex`.
    public var changes: [StreamChange]

    /// The longest source cluster ID, in UTF-8 bytes.
    public static let maxSourceSize = 255

    /// Creates a batch.
    public init(source: String, epoch: UInt64, afterIndex: UInt64, lastIndex: UInt64, sourceCommit: UInt64,
                changes: [StreamChange]) {
        self.source = source
        self.epoch = epoch
        self.afterIndex = afterIndex
        self.lastIndex = lastIndex
        self.sourceCommit = sourceCommit
        self.changes = changes
    }
}
