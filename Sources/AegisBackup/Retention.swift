import Foundation

/// How many backups to keep. Counts and ages apply to full backups; everything a kept
/// full backup's chain needs (its differentials and incrementals, and the archived log
/// from it on) is kept with it.
public struct RetentionPolicy: Sendable, Hashable {
    /// Keep at least this many newest full backups (default 2).
    public var keepFull: Int
    /// Also keep every full backup taken within this many milliseconds (`nil`: no age rule).
    public var keepWithinMillis: UInt64?

    public init(keepFull: Int = 2, keepWithinMillis: UInt64? = nil) {
        self.keepFull = max(1, keepFull)
        self.keepWithinMillis = keepWithinMillis
    }
}

/// What a prune deletes (or would delete, with `dryRun`).
public struct PruneReport: Sendable {
    /// Backups deleted (or to delete), oldest first.
    public var backups: [String]
    /// Archive pieces deleted (or to delete).
    public var archivePieces: [String]
    /// Backups kept.
    public var kept: [String]
    /// Stored bytes freed.
    public var bytes: UInt64
    public var dryRun: Bool
}

extension BackupRepository {
    /// Deletes what `policy` no longer keeps. Never deletes a backup a kept one depends
    /// on, nor archived log at or after the oldest kept full backup (PITR inside the
    /// window). The manifest of a backup is deleted first, so an interrupted prune leaves
    /// an incomplete backup that nothing reads, never a manifest without its files.
    /// Takes the prune lock: it fails while a restore holds the repository.
    public func prune(policy: RetentionPolicy, dryRun: Bool = false) async throws(BackupError) -> PruneReport {
        let lock = try await RepositoryLock.acquire(.prune, repository: self)
        do {
            let report = try await pruneLocked(policy: policy, dryRun: dryRun)
            await lock.release()
            return report
        } catch {
            await lock.release()
            throw error
        }
    }

    private func pruneLocked(policy: RetentionPolicy, dryRun: Bool) async throws(BackupError) -> PruneReport {
        let backups = try await listBackups().backups
        let archive = try await listArchive().pieces
        let fulls = backups.filter { $0.kind == .full }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        var keptFulls = Set(fulls.suffix(policy.keepFull).map(\.id))
        if let window = policy.keepWithinMillis {
            let nowMs = now()
            for full in fulls where nowMs < full.createdAt || nowMs - full.createdAt <= window { keptFulls.insert(full.id) }
        }
        // Keep every backup whose chain reaches a kept full.
        let byID = Dictionary(backups.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        func root(_ b: BackupManifest) -> String? {
            var current = b
            var steps = 0
            while let parent = current.parent, steps <= backups.count {
                guard let p = byID[parent] else { return nil }
                current = p
                steps += 1
            }
            return current.kind == .full ? current.id : nil
        }
        let oldestKept = fulls.filter { keptFulls.contains($0.id) }.map(\.end.index).min() ?? 0
        var kept: [String] = [], deleted: [BackupManifest] = []
        for backup in backups {
            if let r = root(backup), keptFulls.contains(r) { kept.append(backup.id) } else if root(backup) == nil,
               backup.end.index >= oldestKept {
                kept.append(backup.id)  // a broken chain newer than the window: left for an operator to look at
            } else { deleted.append(backup) }
        }
        let deletedPieces = archive.filter { $0.end.index <= oldestKept }
        let report = PruneReport(backups: deleted.map(\.id), archivePieces: deletedPieces.map(\.id), kept: kept,
                                 bytes: (deleted + deletedPieces).reduce(0) { $0 &+ $1.storedBytes }, dryRun: dryRun)
        if dryRun { return report }
        for manifest in deleted + deletedPieces {
            let folder = Self.folder(of: manifest)
            try await target.delete(folder + "/" + BackupManifest.fileName)
            for file in manifest.files { try await target.delete(folder + "/" + file.name) }
        }
        return report
    }
}
