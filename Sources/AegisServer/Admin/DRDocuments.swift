import Foundation

// The DR documents of the admin API, shared by the server (which builds them) and the
// tools and `DrOrchestrator` (which read them).

/// `GET /v1/dr`: a node's view of its cluster's DR state and link.
public struct DRDocument: Codable, Sendable {
    /// The cursor of one source cluster's stream in this cluster: how far it has applied.
    public struct Cursor: Codable, Sendable {
        /// The source cluster's ID.
        public var source: String
        /// The source's last log index applied here.
        public var lastIndex: UInt64
        /// The source's epoch with that change.
        public var epoch: UInt64
        /// The source's commit index when that change was shipped.
        public var sourceCommit: UInt64
        /// The change's wall-clock time at the source (milliseconds since 1970).
        public var lastChangeMillis: UInt64

        /// Creates the document (the server builds it; clients decode it).
        public init(source: String, lastIndex: UInt64, epoch: UInt64, sourceCommit: UInt64, lastChangeMillis: UInt64) {
            self.source = source
            self.lastIndex = lastIndex
            self.epoch = epoch
            self.sourceCommit = sourceCommit
            self.lastChangeMillis = lastChangeMillis
        }
    }

    /// A standby leader's link to its primary.
    public struct Link: Codable, Sendable {
        /// The primary's cluster ID, once known.
        public var source: String?
        /// The primary's last index applied here, and its commit index as last heard.
        public var applied: UInt64
        public var sourceCommit: UInt64
        /// How far behind the primary the standby is, in entries and in seconds of its writes.
        public var lagEntries: UInt64
        public var lagSeconds: Double
        /// Milliseconds since the last answer from the primary.
        public var lastContactMillisAgo: UInt64?
        /// Frames, changes and bytes received; failed pulls and the last one's error.
        public var frames: UInt64
        public var changes: UInt64
        public var bytes: UInt64
        public var errors: UInt64
        public var lastError: String?
        /// Re-seeds from the primary's snapshot this leader completed, and the last one's index.
        public var seeds: UInt64?
        public var lastSeedIndex: UInt64?

        /// Creates the document (the server builds it; clients decode it).
        public init(source: String? = nil, applied: UInt64, sourceCommit: UInt64, lagEntries: UInt64, lagSeconds: Double,
                    lastContactMillisAgo: UInt64? = nil, frames: UInt64, changes: UInt64, bytes: UInt64, errors: UInt64,
                    lastError: String? = nil, seeds: UInt64? = nil, lastSeedIndex: UInt64? = nil) {
            self.source = source
            self.applied = applied
            self.sourceCommit = sourceCommit
            self.lagEntries = lagEntries
            self.lagSeconds = lagSeconds
            self.lastContactMillisAgo = lastContactMillisAgo
            self.frames = frames
            self.changes = changes
            self.bytes = bytes
            self.errors = errors
            self.lastError = lastError
            self.seeds = seeds
            self.lastSeedIndex = lastSeedIndex
        }
    }

    /// The answering node's cluster and node, and whether it is its cluster's leader.
    public var clusterID: String
    public var nodeID: String
    public var isLeader: Bool
    /// `primary`, `standby` or `fenced` (`none` outside a DR pair).
    public var role: String
    /// The cluster's epoch (fencing token).
    public var epoch: UInt64
    /// The primary's client and admin addresses (a standby's or a fenced cluster's redirection).
    public var primary: String
    public var primaryAdmin: String
    /// The write lease (0: none) and, on a primary's leader, what is left of it.
    public var leaseMillis: UInt64
    public var leaseRemainingMillis: UInt64?
    /// This cluster's client (RESP) addresses, named in the other cluster's errors.
    public var clientAddresses: String
    /// This cluster's admin addresses.
    public var adminAddresses: String
    /// The answering node's Raft indexes.
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var lastIndex: UInt64
    /// The streams applied in this cluster, by source.
    public var cursors: [Cursor]
    /// This node's lag behind its primary in entries (standby; `nil` when unknown).
    public var lagEntries: UInt64?
    /// The standby leader's link (absent elsewhere).
    public var link: Link?
    /// The cluster this failed-back standby must be re-seeded from first (absent: none).
    public var pendingSeed: String?

    /// Creates the document (the server builds it; clients decode it).
    public init(clusterID: String, nodeID: String, isLeader: Bool, role: String, epoch: UInt64, primary: String,
                primaryAdmin: String, leaseMillis: UInt64, leaseRemainingMillis: UInt64? = nil, clientAddresses: String,
                adminAddresses: String, commitIndex: UInt64, appliedIndex: UInt64, lastIndex: UInt64, cursors: [Cursor],
                lagEntries: UInt64? = nil, link: Link? = nil, pendingSeed: String? = nil) {
        self.clusterID = clusterID
        self.nodeID = nodeID
        self.isLeader = isLeader
        self.role = role
        self.epoch = epoch
        self.primary = primary
        self.primaryAdmin = primaryAdmin
        self.leaseMillis = leaseMillis
        self.leaseRemainingMillis = leaseRemainingMillis
        self.clientAddresses = clientAddresses
        self.adminAddresses = adminAddresses
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.lastIndex = lastIndex
        self.cursors = cursors
        self.lagEntries = lagEntries
        self.link = link
        self.pendingSeed = pendingSeed
    }
}

/// The answer of `POST /v1/dr/promote`, `/v1/dr/fence` and `/v1/dr/demote`.
public struct DRTransitioned: Codable, Sendable {
    /// The cluster's epoch (fencing token) after the call.
    public var epoch: UInt64
    /// The log index the transition was committed at.
    public var index: UInt64
    /// How long the call waited (out the old primary's write lease, for a promotion).
    public var waitedMillis: UInt64
    /// The cluster's ID.
    public var cluster: String

    /// Creates the answer.
    public init(epoch: UInt64, index: UInt64, waitedMillis: UInt64, cluster: String) {
        self.epoch = epoch
        self.index = index
        self.waitedMillis = waitedMillis
        self.cluster = cluster
    }
}
