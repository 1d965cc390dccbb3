public import AegisBackup

/// The bounds a receiver enforces on every frame before it allocates for it.
public struct StreamLimits: Sendable, Hashable {
    /// The largest frame, compressed, in bytes (default 16 MiB).
    public var maxFrameBytes: Int
    /// The largest batch once decompressed, in bytes (default 16 MiB): a frame whose
    /// header claims more, or that decompresses to more, is refused.
    public var maxBatchBytes: Int
    /// The most changes in one batch (default 50,000).
    public var maxBatchEntries: Int

    /// Creates limits.
    public init(maxFrameBytes: Int = 16 << 20, maxBatchBytes: Int = 16 << 20, maxBatchEntries: Int = 50_000) {
        self.maxFrameBytes = maxFrameBytes
        self.maxBatchBytes = maxBatchBytes
        self.maxBatchEntries = maxBatchEntries
    }
}

/// The settings of one link of the change stream (source and target use the same).
public struct StreamSettings: Sendable, Hashable {
    /// The most log entries read into one batch (default 10,000).
    public var maxBatchEntries: Int = 10_000
    /// The most log bytes (entry data) read into one batch (default 4 MiB). Below
    /// `limits.maxBatchBytes`, so a batch the source makes is one the target accepts.
    public var maxBatchBytes: Int = 4 << 20
    /// How each frame's batch is compressed (default LZ4: fast, and most of the gain).
    public var compression: BackupCompression = .lz4
    /// The receiver's bounds.
    public var limits = StreamLimits()
    /// How long the source holds a request while it has nothing new (default 200 ms).
    public var pollWaitMillis: UInt64 = 200
    /// The write lease of the primary, in ms (default 0: none). With a lease, the
    /// primary's leader takes writes only while its standby asked for changes within it,
    /// and the standby's failover waits it out (see the article's "Fencing").
    public var leaseMillis: UInt64 = 0
    /// The most log entries the source keeps uncompacted for a link that is behind
    /// (default 1,000,000); a link further behind must be re-seeded.
    public var maxEntriesHeld: UInt64 = 1_000_000
    /// How long the source keeps holding its log for a link after the link's last
    /// request (default 300,000 ms): a standby gone longer is re-seeded from a snapshot
    /// when it comes back, and the source's log (and memory) is not held for it.
    public var linkHoldMillis: UInt64 = 300_000
    /// Active-active: how often, at most, a link logs a batch that carries no change but
    /// a source progress vector that moved (default 1,000 ms). Without it an idle
    /// source's progress would reach this cluster only with its next write (or after
    /// many entries), and metadata waiting for causal stability would wait for it.
    public var progressIntervalMillis: UInt64 = 1_000

    /// Creates the default settings.
    public init() {}
}
