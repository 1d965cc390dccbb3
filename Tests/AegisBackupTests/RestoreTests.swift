@testable import AegisBackup
import AegisKV
import AegisRaft
import AegisStorage
import Foundation
import Testing

@Suite struct RestoreTests {
    /// full (150) → +30 incremental (180) → +20 differential (200) → +25 archived (225).
    struct Fixture {
        let scratch: ScratchDirectory
        let node: FakeNode
        let repo: BackupRepository
    }

    func fixture() async throws -> Fixture {
        let scratch = ScratchDirectory()
        let node = try FakeNode(directory: scratch.sub("node"))
        try node.write(100)
        try node.snapshotAndCompact()
        try node.write(50)
        let clock = TestClock()
        let repo = BackupRepository(target: LocalDirectoryTarget(root: scratch.sub("repo")),
                                    settings: BackupSettings(compression: .lz4, chunkSize: 4096),
                                    now: { clock.now() })
        _ = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(30)
        _ = try await repo.createBackup(.incremental, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(20)
        _ = try await repo.createBackup(.differential, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(25)
        var archiver = WALArchiver(repository: repo, dataDirectory: node.directory)
        _ = try await archiver.archiveOnce()
        return Fixture(scratch: scratch, node: node, repo: repo)
    }

    func expectState(_ directory: String, equals model: [String: String], at index: LogIndex, uuid old: String) throws {
        let identity = try #require(try DataDirectoryIdentity.read(from: directory))
        #expect(identity.clusterUUID != nil && identity.clusterUUID != old)
        #expect(identity.nodeID == "n1" && identity.membership == .member)
        let storage = try DiskStorage(directory: directory)
        defer { storage.close() }
        let snapshot = try storage.snapshot()
        #expect(snapshot.metadata.index == index)
        #expect(snapshot.metadata.confState.voters == ["n1"])
        var machine = StateMachine()
        try machine.restore(from: snapshot)
        #expect(contents(machine, keys: (0..<50).map { "k\($0)" }) == model)
        #expect(storage.storedHardState.commitIndex == index)
    }

    @Test func test_restore_keepsExpiryDeadlines_fromTheSnapshotAndTheReplayedLog() async throws {
        let scratch = ScratchDirectory()
        let node = try FakeNode(directory: scratch.sub("node"))
        try node.write(20)
        try node.commit([.expire("k1", .after(milliseconds: 60_000), .always),
                         .expire("k2", .at(milliseconds: 9_000_000), .always)])
        try node.snapshotAndCompact()
        let clock = TestClock()
        let repo = BackupRepository(target: LocalDirectoryTarget(root: scratch.sub("repo")),
                                    settings: BackupSettings(compression: .zstd, chunkSize: 4096), now: { clock.now() })
        _ = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        // After the full backup: a deadline set by a replayed entry, and one removed.
        try node.commit([.setWith("k3", Array("v".utf8), condition: .always, returnPrevious: false,
                                  expiry: .set(.after(milliseconds: 30_000))), .persist("k2")])
        _ = try await repo.createBackup(.incremental, from: try CommittedHistory.read(dataDirectory: node.directory))
        let target = scratch.sub("restored")
        _ = try await repo.restore(to: .latest, options: RestoreOptions(dataDirectory: target))
        let storage = try DiskStorage(directory: target)
        defer { storage.close() }
        var restored = StateMachine()
        try restored.restore(from: try storage.snapshot())
        #expect(restored.deadline(of: "k1") == FakeNode.time(21) + 60_000)
        #expect(restored.deadline(of: "k2") == nil)
        #expect(restored.deadline(of: "k3") == FakeNode.time(23) + 30_000)
        #expect(restored.expiringKeyCount == 2 && restored.digest() == node.machine.digest())
    }

    @Test func test_recoverLatest_reachesTheLastArchivedEntry() async throws {
        let f = try await fixture()
        let target = f.scratch.sub("restored")
        let report = try await f.repo.restore(to: .latest, options: RestoreOptions(dataDirectory: target))
        #expect(report.reached.index == 225)
        #expect(report.lastRecoverable.index == 225)
        #expect(report.entriesReplayed == 75)
        #expect(report.chain.count == 3)  // full, differential, archive piece
        try expectState(target, equals: f.node.model, at: 225, uuid: f.node.uuid)
    }

    @Test(arguments: [150, 151, 170, 180, 199, 200, 201, 224, 225])
    func test_recoverToIndex_givesExactlyTheStateThere(_ index: Int) async throws {
        let f = try await fixture()
        let target = f.scratch.sub("restored")
        let report = try await f.repo.restore(to: .index(LogIndex(index)), options: RestoreOptions(dataDirectory: target))
        #expect(report.reached.index == LogIndex(index))
        try expectState(target, equals: try #require(f.node.history[LogIndex(index)]), at: LogIndex(index),
                        uuid: f.node.uuid)
    }

    @Test func test_recoverToTime_stopsBeforeTheFirstLaterEntry() async throws {
        let f = try await fixture()
        let target = f.scratch.sub("restored")
        // Entry i is stamped 1_000_000 + 10 i: a time between 187 and 188 restores 187.
        let report = try await f.repo.restore(to: .time(FakeNode.time(187) + 5), options: RestoreOptions(dataDirectory: target))
        #expect(report.reached.index == 187)
        try expectState(target, equals: try #require(f.node.history[187]), at: 187, uuid: f.node.uuid)
    }

    @Test func test_recoverBeyondTheArchive_isRefusedAndWritesNothing() async throws {
        let f = try await fixture()
        let target = f.scratch.sub("restored")
        await #expect(throws: BackupError.self) {
            _ = try await f.repo.restore(to: .index(226), options: RestoreOptions(dataDirectory: target))
        }
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    /// recover's preflight names the damaged file and nothing is written to the target.
    @Test(arguments: ["state", "differential-log", "archive-log", "manifest"])
    func test_recoverPreflight_refusesADamagedFileAndWritesNothing(_ kind: String) async throws {
        let f = try await fixture()
        let backups = try await f.repo.listBackups().backups
        let archive = try await f.repo.listArchive().pieces
        let full = try #require(backups.first { $0.kind == .full })
        let diff = try #require(backups.first { $0.kind == .differential })
        let piece = try #require(archive.first)
        let victim: String
        switch kind {
        case "state": victim = f.scratch.sub("repo/backups/\(full.id)/\(full.files[0].name)")
        case "differential-log": victim = f.scratch.sub("repo/backups/\(diff.id)/\(diff.files[0].name)")
        case "archive-log": victim = f.scratch.sub("repo/archive/\(piece.id)/\(piece.files[0].name)")
        default: victim = f.scratch.sub("repo/backups/\(diff.id)/manifest.json")
        }
        try flipByte(victim)
        let target = f.scratch.sub("restored")
        do {
            _ = try await f.repo.restore(to: .latest, options: RestoreOptions(dataDirectory: target))
            Issue.record("restored from a damaged \(kind)")
        } catch {
            #expect("\(error)".contains((victim as NSString).lastPathComponent), "\(error)")
            if kind != "manifest" { #expect("\(error)".contains("expected") && "\(error)".contains("actual")) }
        }
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    @Test func test_restore_refusesANonEmptyDirectory() async throws {
        let f = try await fixture()
        await #expect(throws: BackupError.self) {
            _ = try await f.repo.restore(to: .latest, options: RestoreOptions(dataDirectory: f.node.directory))
        }
    }

    /// The seed's "Point-in-Time Recovery" example, in Swift.
    @Test func test_seedExample_pitrManagerRecoversLatest() async throws {
        let f = try await fixture()
        let config = RecoveryConfig(repository: LocalDirectoryTarget(root: f.scratch.sub("repo")))
        let dataDir = f.scratch.sub("data")
        let manager = PitrManager(config: config, dataDirectory: dataDir)
        // Recover to latest state
        let result = try await manager.recover(.latest)
        print("Recovery complete: \(result.transactionsReplayed) transactions replayed in \(result.durationMs)ms")
        #expect(result.transactionsReplayed == 75)
        try expectState(dataDir, equals: f.node.model, at: 225, uuid: f.node.uuid)
    }
}

/// Collects progress reports.
final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [BackupProgress] = []
    func add(_ p: BackupProgress) { lock.lock(); items.append(p); lock.unlock() }
    var all: [BackupProgress] { lock.lock(); defer { lock.unlock() }; return items }
}

@Suite struct ProgressTests {
    @Test func test_progress_reportsEveryByteOfARestoreAgainstItsTotal() async throws {
        let scratch = ScratchDirectory()
        let node = try FakeNode(directory: scratch.sub("node"))
        try node.write(500)
        let log = ProgressLog()
        var repo = BackupRepository(target: LocalDirectoryTarget(root: scratch.sub("repo")),
                                    settings: BackupSettings(chunkSize: 4096))
        repo.progress = { log.add($0) }
        let full = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        #expect(log.all.last?.operation == "backup" && log.all.last?.bytes == full.files[0].rawSize)
        _ = try await repo.restore(to: .latest, options: RestoreOptions(dataDirectory: scratch.sub("restored")))
        let restore = log.all.filter { $0.operation == "restore" }
        #expect(restore.last?.bytes == full.storedBytes && restore.last?.totalBytes == full.storedBytes)
        #expect(log.all.contains { $0.operation == "preflight" })
    }
}
