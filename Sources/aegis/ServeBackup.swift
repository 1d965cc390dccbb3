import AegisBackup
import AegisRaft
import AegisServer
import ArgumentParser
import Foundation
import Logging

/// The backup options of `aegis serve` (flags, then AEGIS_<NAME>, then --config).
struct ServeBackupOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A backup repository (directory): turns on continuous WAL archiving and scheduled backups of this member. Enable it on one member (a follower is best).", valueName: "path"))
    var backupRepo: String?
    @Option(help: "How often committed log is shipped to the repository (default 1s; on an object store each pass with new entries is two PUTs).")
    var archiveInterval: String?
    @Option(help: "Scheduled backups, e.g. full=24h,differential=6h,incremental=1h (default: none).")
    var backupSchedule: String?
    @Option(help: "/healthz warns when the last successful backup is older than this (e.g. 26h).")
    var backupMaxAge: String?
    @Option(help: "Verify (restore and compare digests) the newest backup this often (e.g. 24h).")
    var backupVerifyInterval: String?
    @Option(help: "Compression of backup files: none, gzip, lz4, zstd (default zstd).")
    var backupCompression: String?
    @Flag(help: "Take scheduled backups but do not archive the log from this member.")
    var noArchive = false

    /// The service, or `nil` without a repository.
    func makeService(config: String?, dataDirectory: String, logger: Logger,
                     archived: ArchivedIndex? = nil) throws -> BackupService? {
        let value = try ServeSettings.lookup(config: config)
        guard let repo = value("backup-repo", backupRepo) else { return nil }
        func duration(_ name: String, _ flag: String?) throws -> Duration? {
            guard let text = value(name, flag) else { return nil }
            guard let d = BackupServiceConfiguration.parseDuration(text) else {
                throw ValidationError("--\(name): '\(text)' is not a duration like 1s, 500ms, 6h, 7d")
            }
            return d
        }
        let codecName = value("backup-compression", backupCompression) ?? "zstd"
        guard let codec = BackupCompression(rawValue: codecName) else {
            throw ValidationError("--backup-compression: '\(codecName)' is not none, gzip, lz4 or zstd")
        }
        try codec.checkAvailable()
        var configuration = BackupServiceConfiguration(target: try makeBackupTarget(repo),
                                                       settings: BackupSettings(compression: codec))
        configuration.archiveInterval = try duration("archive-interval", archiveInterval) ?? .seconds(1)
        configuration.archive = !(noArchive || value("no-archive", nil) == "true")
        configuration.schedule = try value("backup-schedule", backupSchedule).map(BackupServiceConfiguration.parseSchedule) ?? [:]
        configuration.maxBackupAge = try duration("backup-max-age", backupMaxAge)
        configuration.verifyInterval = try duration("backup-verify-interval", backupVerifyInterval)
        if let archived { configuration.onArchived = { archived.set($0) } }
        return BackupService(configuration: configuration, dataDirectory: dataDirectory, logger: logger)
    }
}

extension ServeSettings {
    /// A setting's value: the flag, else `AEGIS_<NAME>`, else the `--config` file's line.
    static func lookup(config: String?) throws -> (_ name: String, _ flag: String?) -> String? {
        let env = ProcessInfo.processInfo.environment
        let file = try config.map(parseConfigFile) ?? [:]
        return { name, flag in
            if let flag { return flag }
            let envName = "AEGIS_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
            if let v = env[envName], !v.isEmpty { return v }
            return file[name]
        }
    }
}

/// The index WAL archiving has shipped through: set by the backup service after each
/// pass, read by the node loop before it compacts (`NodeConfiguration.compactionFloor`).
final class ArchivedIndex: @unchecked Sendable {
    private let lock = NSLock()
    private var index: LogIndex?

    var value: LogIndex? { lock.withLock { index } }
    func set(_ newValue: LogIndex) { lock.withLock { index = newValue } }
}
