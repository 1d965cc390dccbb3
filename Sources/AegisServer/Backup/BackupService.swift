public import AegisBackup
public import AegisRaft
import Foundation
public import Logging
import Metrics
public import ServiceLifecycle

/// The backup settings of `aegis serve`.
public struct BackupServiceConfiguration: Sendable {
    /// The repository.
    public var target: any BackupTarget
    /// Codec and chunk size.
    public var settings: BackupSettings
    /// How often committed log is shipped (default 1 s). Each pass that finds new
    /// entries writes two objects (log piece, manifest): on an object store that is up to
    /// 2 PUTs per second and one object pair per second of writes; a longer interval costs
    /// fewer requests and bounds RPO less tightly.
    public var archiveInterval: Duration
    /// Whether this member archives (one member per cluster should).
    public var archive: Bool
    /// Told the index archiving has shipped through after each successful pass (the
    /// node holds its log compaction there: `NodeConfiguration.compactionFloor`).
    public var onArchived: (@Sendable (LogIndex) -> Void)?
    /// Cadence of scheduled backups by kind (absent: none of that kind).
    public var schedule: [BackupKind: Duration]
    /// `/healthz` warns when the last successful backup is older than this.
    public var maxBackupAge: Duration?
    /// Verify the newest backup this often (absent: never).
    public var verifyInterval: Duration?

    public init(target: any BackupTarget, settings: BackupSettings = BackupSettings(),
                archiveInterval: Duration = .seconds(1), archive: Bool = true, schedule: [BackupKind: Duration] = [:],
                maxBackupAge: Duration? = nil, verifyInterval: Duration? = nil) {
        self.target = target
        self.settings = settings
        self.archiveInterval = archiveInterval
        self.archive = archive
        self.schedule = schedule
        self.maxBackupAge = maxBackupAge
        self.verifyInterval = verifyInterval
    }

    /// Parses `full=24h,differential=6h,incremental=1h` (`d`, `h`, `m`, `s`, `ms`).
    public static func parseSchedule(_ text: String) throws(BackupError) -> [BackupKind: Duration] {
        var schedule: [BackupKind: Duration] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            let names = ["diff": "differential", "incr": "incremental"]
            guard parts.count == 2, let kind = BackupKind(rawValue: names[parts[0]] ?? parts[0]), kind != .archive,
                  let every = parseDuration(parts[1]) else {
                throw .invalidArgument("backup schedule: '\(item)' is not kind=duration (full=24h, differential=6h, incremental=1h)")
            }
            schedule[kind] = every
        }
        return schedule
    }

    /// Parses `7d`, `12h`, `30m`, `90s`, `500ms`.
    public static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 0.001), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)]
        for (suffix, seconds) in units where text.hasSuffix(suffix) {
            // Bounded (about 31 years): a larger value would not fit the conversion.
            guard let n = Double(text.dropLast(suffix.count)), n > 0, n * seconds <= 1e9 else { return nil }
            return .milliseconds(Int64(n * seconds * 1000))
        }
        return nil
    }
}

/// What the backup service reports (admin endpoint, metrics, health).
public struct BackupServiceStatus: Sendable, Codable {
    public var repository: String
    public var lastSuccessfulBackupID: String?
    public var lastSuccessfulBackupAt: UInt64?
    public var lastVerifiedBackupID: String?
    public var lastError: String?
    public var archive: ArchiveStatus?
    public var archiveError: String?
    public var bytesWritten: UInt64
}

/// Runs continuous WAL archiving and scheduled backups of this member's data
/// directory, and serves the backup admin endpoints (`BackupAdminExtension`).
public final class BackupService: Service, @unchecked Sendable {
    public let configuration: BackupServiceConfiguration
    public let dataDirectory: String
    private let logger: Logger
    private let lock = NSLock()
    private var state: BackupServiceStatus
    private var archiver: WALArchiver
    /// Serialises backups taken by the schedule and by the admin API.
    private let work = AsyncSerial()

    private let lastSuccessGauge = Gauge(label: "aegis_backup_last_success_timestamp_seconds")
    private let archiveLagEntries = Gauge(label: "aegis_backup_archive_lag_entries")
    private let archiveLagSeconds = Gauge(label: "aegis_backup_archive_lag_seconds")
    private let bytesCounter = Counter(label: "aegis_backup_bytes_written_total")
    private let failures = Counter(label: "aegis_backup_failures_total")

    public var repository: BackupRepository { BackupRepository(target: configuration.target, settings: configuration.settings) }

    public init(configuration: BackupServiceConfiguration, dataDirectory: String, logger: Logger) {
        self.configuration = configuration
        self.dataDirectory = dataDirectory
        self.logger = logger
        let repository = BackupRepository(target: configuration.target, settings: configuration.settings)
        archiver = WALArchiver(repository: repository, dataDirectory: dataDirectory)
        state = BackupServiceStatus(repository: configuration.target.location, bytesWritten: 0)
    }

    public var status: BackupServiceStatus {
        lock.lock()
        defer { lock.unlock() }
        return state
    }

    private func update(_ change: (inout BackupServiceStatus) -> Void) {
        lock.lock()
        change(&state)
        lock.unlock()
    }

    /// Archives every `archiveInterval` and takes scheduled backups, until shutdown.
    public func run() async throws {
        // When each kind was last taken: from the repository, so a restart does not take
        // a backup that is not due yet.
        var lastTaken = await loadLastBackups()
        var lastVerified = ContinuousClock.now
        let clock = ContinuousClock()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if configuration.archive { await archivePass() }
            let now = BackupRepository.wallClockMillis()
            for kind in [BackupKind.full, .differential, .incremental] {
                guard let every = configuration.schedule[kind] else { continue }
                let period = UInt64(every.components.seconds) * 1000 + UInt64(every.components.attoseconds / 1_000_000_000_000_000)
                if let last = lastTaken[kind], now < last + period { continue }
                lastTaken[kind] = now  // a failure is retried next period (and logged, counted, shown in /healthz)
                _ = try? await takeBackup(kind)
            }
            if let every = configuration.verifyInterval, clock.now - lastVerified >= every {
                lastVerified = clock.now
                await verifyNewest()
            }
            try? await Task.sleep(for: configuration.archiveInterval)
        }
        if configuration.archive { await archivePass() }  // ship what was committed before stopping
    }

    /// The newest backup of each kind (creation time), and the status of the newest one.
    private func loadLastBackups() async -> [BackupKind: UInt64] {
        guard let backups = try? await repository.listBackups().backups else { return [:] }
        var last: [BackupKind: UInt64] = [:]
        for backup in backups { last[backup.kind] = max(last[backup.kind] ?? 0, backup.createdAt) }
        if let newest = backups.last {
            update {
                $0.lastSuccessfulBackupID = newest.id
                $0.lastSuccessfulBackupAt = newest.createdAt
            }
            lastSuccessGauge.record(Double(newest.createdAt) / 1000)
        }
        return last
    }

    private func archivePass() async {
        do {
            let before = archiver.currentStatus.bytesWritten
            let status = try await archiver.archiveOnce()
            configuration.onArchived?(status.archived.index)
            bytesCounter.increment(by: Int64(status.bytesWritten - before))
            archiveLagEntries.record(Double(status.lagEntries))
            archiveLagSeconds.record(Double(status.lagMillis) / 1000)
            update {
                $0.archive = status
                $0.archiveError = nil
            }
        } catch {
            failures.increment()
            if case .archiveGap = error {
                // The entries are gone from this member: start a new stretch with a full backup.
                logger.warning("WAL archiving lost its place (the log was compacted first); taking a full backup",
                               metadata: ["error": "\(error)"])
                _ = try? await takeBackup(.full)
            }
            let lag = archiver.currentStatus
            archiveLagEntries.record(Double(lag.lagEntries))
            archiveLagSeconds.record(Double(lag.lagMillis) / 1000)
            logger.warning("WAL archiving failed", metadata: ["error": "\(error)"])
            update {
                $0.archive = lag
                $0.archiveError = "\(error)"
            }
        }
    }

    /// Takes a backup of `kind` now (one at a time).
    public func takeBackup(_ kind: BackupKind) async throws(BackupError) -> BackupManifest {
        let repository = self.repository
        let directory = dataDirectory
        let result: Result<BackupManifest, BackupError> = await work.run {
            do throws(BackupError) {
                let history = try CommittedHistory.read(dataDirectory: directory)
                return .success(try await repository.createBackup(kind, from: history))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let manifest):
            logger.info("backup taken", metadata: ["id": "\(manifest.id)", "kind": "\(kind.rawValue)",
                                                   "index": "\(manifest.end.index)", "bytes": "\(manifest.storedBytes)"])
            lastSuccessGauge.record(Double(manifest.createdAt) / 1000)
            bytesCounter.increment(by: Int64(manifest.storedBytes))
            update {
                $0.lastSuccessfulBackupID = manifest.id
                $0.lastSuccessfulBackupAt = manifest.createdAt
                $0.lastError = nil
                $0.bytesWritten += manifest.storedBytes
            }
            return manifest
        case .failure(let error):
            failures.increment()
            logger.warning("backup failed", metadata: ["kind": "\(kind.rawValue)", "error": "\(error)"])
            update { $0.lastError = "\(error)" }
            throw error
        }
    }

    private func verifyNewest() async {
        guard let newest = try? await repository.listBackups().backups.last else { return }
        do {
            _ = try await repository.verify(newest.id)
            update { $0.lastVerifiedBackupID = newest.id }
        } catch {
            failures.increment()
            logger.error("scheduled verification failed", metadata: ["id": "\(newest.id)", "error": "\(error)"])
            update { $0.lastError = "verify \(newest.id): \(error)" }
        }
    }

    /// The `/healthz` check: warns when the last good backup is older than `maxBackupAge`
    /// (or there is none), or archiving fails.
    public func healthCheck(nowMillis: UInt64 = BackupRepository.wallClockMillis()) -> HealthCheckResult {
        let status = self.status
        var warnings: [String] = []
        if let maxAge = configuration.maxBackupAge {
            let limit = UInt64(maxAge.components.seconds) * 1000
            if let at = status.lastSuccessfulBackupAt {
                let age = nowMillis > at ? nowMillis - at : 0
                if age > limit {
                    warnings.append("the last successful backup (\(status.lastSuccessfulBackupID ?? "?")) is \(age / 1000) s old, "
                        + "older than \(limit / 1000) s")
                }
            } else {
                warnings.append("no successful backup in \(status.repository)")
            }
        }
        if let error = status.archiveError { warnings.append("WAL archiving fails: \(error)") }
        return warnings.isEmpty ? .pass(status.lastSuccessfulBackupID.map { "last successful backup \($0)" })
            : .warn(warnings.joined(separator: "; "))
    }
}

/// Runs async jobs one at a time.
actor AsyncSerial {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func run<T: Sendable>(_ job: @Sendable () async -> T) async -> T {
        while busy { await withCheckedContinuation { waiting.append($0) } }
        busy = true
        defer {
            busy = false
            if !waiting.isEmpty { waiting.removeFirst().resume() }
        }
        return await job()
    }
}
