import AegisBackup
import ArgumentParser
import Foundation

/// The target and destination of a restore.
struct RecoveryOptions: ParsableArguments {
    @Option(help: "Restore exactly the state after this log index.") var toIndex: UInt64?
    @Option(help: "Restore the state after the last entry proposed at or before this time (ISO 8601, e.g. 2026-11-30T10:15:00Z, or ms since 1970).")
    var toTime: String?
    @Flag(help: "Restore the newest entry the repository holds (the default).") var latest = false
    @Option(help: ArgumentHelp("The NEW data directory to create (must not exist or be empty).", valueName: "path"))
    var dataDir: String
    @Option(help: "The node ID of the restored cluster's first member.") var nodeId: String = "node1"
    @Option(help: "The restored cluster's ID (default: the backed-up cluster's).") var clusterId: String?
    @Option(help: "Restore backups of this cluster UUID (default: the newest full backup's cluster).") var sourceClusterUuid: String?
    @OptionGroup var options: RepositoryOptions

    func target() throws -> RecoveryTarget {
        let chosen = [toIndex != nil, toTime != nil, latest].filter { $0 }.count
        guard chosen <= 1 else { throw ValidationError("choose one of --to-index, --to-time and --latest") }
        if let toIndex { return .index(toIndex) }
        if let toTime {
            if let ms = UInt64(toTime) { return .time(ms) }
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            guard let date = formatter.date(from: toTime) ?? ISO8601DateFormatter().date(from: toTime) else {
                throw ValidationError("--to-time: '\(toTime)' is not ISO 8601 (2026-11-30T10:15:00Z) or ms since 1970")
            }
            return .time(UInt64(date.timeIntervalSince1970 * 1000))
        }
        return .latest
    }

    func recover(_ target: RecoveryTarget) async throws {
        let report = try await options.repository().restore(
            to: target, options: RestoreOptions(dataDirectory: dataDir, nodeID: nodeId, clusterID: clusterId),
            clusterUUID: sourceClusterUuid)
        options.emit(RecoverDocument(report),
                     """
                     restored \(report.target) into \(dataDir): index \(report.reached.index) (term \(report.reached.term)), \
                     \(report.keyCount) keys, \(report.entriesReplayed) entries replayed from \(report.chain.count) backups/pieces
                     chain: \(report.chain.joined(separator: " -> "))
                     newest recoverable entry: \(report.lastRecoverable.index); entries after the restored point: \(report.entriesAfterReached)
                     RTO (wall time): \(report.durationMillis) ms\(report.rpoMillis.map { "; RPO: \($0) ms since the restored entry was proposed" } ?? "")
                     new cluster: id \(report.clusterID), uuid \(report.clusterUUID)
                     start it: aegis serve --id \(nodeId) --data-dir \(dataDir) --cluster-id \(report.clusterID)
                     """)
    }
}

/// `aegis recover`: point-in-time recovery into a new cluster.
struct RecoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Point-in-time recovery: restore --latest, --to-index N or --to-time T into a new data directory.",
        discussion: """
            Picks the newest full backup at or before the target, its differential and \
            incrementals, then the archived log; checks every file (preflight) and replays \
            in memory before anything is written; writes a single-voter data directory under \
            a NEW cluster UUID (it never joins the old cluster). Reports the achieved RTO and RPO.
            """)
    @OptionGroup var recovery: RecoveryOptions

    func run() async throws {
        try await recovery.recover(try recovery.target())
    }
}

struct RecoverDocument: Encodable {
    var chain: [String], target: String, reachedIndex: UInt64, reachedTerm: UInt64, reachedTime: UInt64?
    var lastRecoverableIndex: UInt64, entriesReplayed: Int, keys: Int, digest: String, bytesRead: UInt64
    var clusterID: String, clusterUUID: String, rtoMillis: UInt64, rpoMillis: UInt64?, entriesAfterReached: UInt64
    init(_ r: RestoreReport) {
        chain = r.chain; target = r.target.description; reachedIndex = r.reached.index; reachedTerm = r.reached.term
        reachedTime = r.reachedTime; lastRecoverableIndex = r.lastRecoverable.index; entriesReplayed = r.entriesReplayed
        keys = r.keyCount; digest = r.digest; bytesRead = r.bytesRead; clusterID = r.clusterID
        clusterUUID = r.clusterUUID; rtoMillis = r.durationMillis; rpoMillis = r.rpoMillis
        entriesAfterReached = r.entriesAfterReached
    }
}
