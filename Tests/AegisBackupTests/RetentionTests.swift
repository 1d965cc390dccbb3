@testable import AegisBackup
import AegisKV
import AegisRaft
import AegisStorage
import Foundation
import Testing

@Suite struct RetentionTests {
    /// Three generations: full, incremental, differential, each followed by archived log.
    func populated(_ scratch: ScratchDirectory) async throws -> (FakeNode, BackupRepository, [[BackupManifest]]) {
        let node = try FakeNode(directory: scratch.sub("node"))
        let clock = TestClock()
        let repo = BackupRepository(target: LocalDirectoryTarget(root: scratch.sub("repo")),
                                    settings: BackupSettings(compression: .zstd, chunkSize: 4096), now: { clock.now() })
        var generations: [[BackupManifest]] = []
        var archiver = WALArchiver(repository: repo, dataDirectory: node.directory)
        for _ in 0..<3 {
            try node.write(20)
            let full = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
            try node.write(10)
            let incr = try await repo.createBackup(.incremental, from: try CommittedHistory.read(dataDirectory: node.directory))
            try node.write(10)
            let diff = try await repo.createBackup(.differential, from: try CommittedHistory.read(dataDirectory: node.directory))
            try node.write(5)
            try await archiver.archiveOnce()
            generations.append([full, incr, diff])
        }
        return (node, repo, generations)
    }

    @Test func test_prune_keepsTheNewestFullsWithEverythingTheyNeed() async throws {
        let scratch = ScratchDirectory()
        let (_, repo, generations) = try await populated(scratch)
        let dry = try await repo.prune(policy: RetentionPolicy(keepFull: 2), dryRun: true)
        #expect(dry.backups == generations[0].map(\.id))
        #expect(dry.kept == (generations[1] + generations[2]).map(\.id))
        #expect(dry.dryRun && dry.bytes > 0)
        // A dry run deletes nothing.
        #expect(try await repo.listBackups().backups.count == 9)
        let archivedBefore = try await repo.listArchive().pieces
        let report = try await repo.prune(policy: RetentionPolicy(keepFull: 2))
        #expect(report.backups == dry.backups && report.archivePieces == dry.archivePieces)
        let left = try await repo.listBackups().backups.map(\.id)
        #expect(left == (generations[1] + generations[2]).map(\.id))
        // Archive pieces from the oldest kept full on stay: PITR inside the window works.
        let oldestKept = generations[1][0].end.index
        let archivedAfter = try await repo.listArchive().pieces
        #expect(archivedAfter.allSatisfy { $0.end.index > oldestKept })
        #expect(archivedAfter.count == archivedBefore.filter { $0.end.index > oldestKept }.count)
        let restored = scratch.sub("restored")
        let result = try await repo.restore(to: .index(oldestKept + 3), options: RestoreOptions(dataDirectory: restored))
        #expect(result.reached.index == oldestKept + 3)
        // Every kept backup still verifies.
        for id in left { _ = try await repo.verify(id) }
    }

    @Test func test_prune_byAgeKeepsRecentFulls() async throws {
        let scratch = ScratchDirectory()
        let (_, repo, generations) = try await populated(scratch)
        // The clock advances 1 s per reading; a window of 1 hour keeps everything.
        let report = try await repo.prune(policy: RetentionPolicy(keepFull: 1, keepWithinMillis: 3_600_000), dryRun: true)
        #expect(report.backups.isEmpty)
        let strict = try await repo.prune(policy: RetentionPolicy(keepFull: 1, keepWithinMillis: 1), dryRun: true)
        #expect(strict.kept == generations[2].map(\.id))
    }

    @Test func test_prune_neverRunsWhileARestoreHoldsTheRepository() async throws {
        let scratch = ScratchDirectory()
        let (_, repo, _) = try await populated(scratch)
        let restoring = try await RepositoryLock.acquire(.restore, repository: repo)
        await #expect(throws: BackupError.self) { _ = try await repo.prune(policy: RetentionPolicy(keepFull: 1)) }
        #expect(try await repo.listBackups().backups.count == 9)
        await restoring.release()
        let pruning = try await RepositoryLock.acquire(.prune, repository: repo)
        await #expect(throws: BackupError.self) {
            _ = try await repo.restore(to: .latest, options: RestoreOptions(dataDirectory: scratch.sub("r")))
        }
        await pruning.release()
        _ = try await repo.prune(policy: RetentionPolicy(keepFull: 1))
        #expect(try await repo.listBackups().backups.count == 3)
        #expect(try await repo.target.list(prefix: "locks/").isEmpty)
    }
}

@Suite struct WALArchiverTests {
    @Test func test_archiver_resumesAfterARestartWithoutGapsOrDuplicates() async throws {
        let scratch = ScratchDirectory()
        let node = try FakeNode(directory: scratch.sub("node"))
        let clock = TestClock()
        let repo = BackupRepository(target: LocalDirectoryTarget(root: scratch.sub("repo")),
                                    settings: BackupSettings(compression: .gzip), now: { clock.now() })
        try node.write(40)
        _ = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        var first = WALArchiver(repository: repo, dataDirectory: node.directory)
        try node.write(7)
        var status = try await first.archiveOnce()
        #expect(status.archived.index == 47 && status.lagEntries == 0 && status.piecesWritten == 1)
        status = try await first.archiveOnce()  // nothing new: nothing written
        #expect(status.piecesWritten == 1)
        try node.write(5)
        // A new archiver (a restart, or another member) continues from the repository.
        var second = WALArchiver(repository: repo, dataDirectory: node.directory, maxPieceBytes: 4096)
        try node.write(200)
        status = try await second.archiveOnce()
        #expect(status.archived.index == 252)
        let pieces = try await repo.listArchive().pieces
        #expect(pieces.count >= 3)
        for (a, b) in zip(pieces, pieces.dropFirst()) { #expect(b.start == a.end) }
        #expect(pieces.first?.start.index == 40)
        let cursor = try String(contentsOfFile: node.directory + "/" + WALArchiver.cursorFileName, encoding: .utf8)
        #expect(cursor.hasPrefix("252 "))
        let report = try await repo.restore(to: .latest, options: RestoreOptions(dataDirectory: scratch.sub("restored")))
        #expect(report.reached.index == 252)
    }

    @Test func test_archiver_reportsAGapWhenTheLogWasCompactedAway() async throws {
        let scratch = ScratchDirectory()
        let node = try FakeNode(directory: scratch.sub("node"))
        let repo = BackupRepository(target: LocalDirectoryTarget(root: scratch.sub("repo")))
        try node.write(10)
        _ = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(10)
        try node.snapshotAndCompact()
        try node.write(3)
        var archiver = WALArchiver(repository: repo, dataDirectory: node.directory)
        await #expect(throws: BackupError.self) { try await archiver.archiveOnce() }
        #expect(try await repo.listArchive().pieces.isEmpty)
        // A new full backup starts a new stretch: archiving continues from it.
        _ = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(4)
        let status = try await archiver.archiveOnce()
        #expect(status.archived.index == 27)
        let report = try await repo.restore(to: .latest, options: RestoreOptions(dataDirectory: scratch.sub("restored")))
        #expect(report.reached.index == 27)
    }
}
