/// Settings of a point-in-time recovery (the seed's `RecoveryConfig`).
public struct RecoveryConfig: Sendable {
    /// The repository to recover from (default: the local directory `./.aegis/backups`).
    public var repository: any BackupTarget
    /// The node ID of the recovered cluster's first member (default `n1`).
    public var nodeID: String
    /// The recovered cluster's ID (default: the backed-up cluster's).
    public var clusterID: String?
    /// Restrict to backups of this cluster UUID (default: the newest full backup's cluster).
    public var sourceClusterUUID: String?
    /// Codec and chunk sizes for reading.
    public var settings: BackupSettings

    public init(repository: any BackupTarget = LocalDirectoryTarget(root: "./.aegis/backups"), nodeID: String = "n1",
                clusterID: String? = nil, sourceClusterUUID: String? = nil, settings: BackupSettings = BackupSettings()) {
        self.repository = repository
        self.nodeID = nodeID
        self.clusterID = clusterID
        self.sourceClusterUUID = sourceClusterUUID
        self.settings = settings
    }
}

/// The outcome of `PitrManager.recover(_:)` (the seed's `RecoveryResult`).
public struct RecoveryResult: Sendable {
    /// Log entries (transactions) replayed on top of the full backup.
    public var transactionsReplayed: Int
    /// Wall time of the recovery in milliseconds (the achieved RTO).
    public var durationMs: UInt64
    /// Everything the restore reports (chain, position reached, RPO, new cluster UUID).
    public var report: RestoreReport
}

/// Point-in-time recovery into a data directory (the seed's `PitrManager`): a thin layer
/// over `BackupRepository.restore(to:options:)`.
///
/// ```swift
/// let manager = PitrManager(config: RecoveryConfig(), dataDirectory: "/var/lib/aegis/restored")
/// let result = try await manager.recover(.latest)
/// print("Recovery complete: \(result.transactionsReplayed) transactions replayed in \(result.durationMs)ms")
/// ```
public struct PitrManager: Sendable {
    public let config: RecoveryConfig
    /// The data directory to create (it must not exist or be empty).
    public let dataDirectory: String

    public init(config: RecoveryConfig, dataDirectory: String) {
        self.config = config
        self.dataDirectory = dataDirectory
    }

    /// Recovers to `target` into `dataDirectory` under a new cluster UUID.
    public func recover(_ target: RecoveryTarget) async throws(BackupError) -> RecoveryResult {
        let repository = BackupRepository(target: config.repository, settings: config.settings)
        let report = try await repository.restore(
            to: target, options: RestoreOptions(dataDirectory: dataDirectory, nodeID: config.nodeID,
                                                clusterID: config.clusterID),
            clusterUUID: config.sourceClusterUUID)
        return RecoveryResult(transactionsReplayed: report.entriesReplayed, durationMs: report.durationMillis,
                              report: report)
    }
}
