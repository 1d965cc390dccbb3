@testable import AegisBackup
import AegisKV
import AegisRaft
import AegisStorage
import Foundation
import Testing

@Suite struct BackupRepositoryTests {
    /// A node with history: 100 writes, a node snapshot, 50 more.
    func makeNode(_ scratch: ScratchDirectory) throws -> FakeNode {
        let node = try FakeNode(directory: scratch.sub("node"))
        try node.write(100)
        try node.snapshotAndCompact()
        try node.write(50)
        return node
    }

    func repository(_ scratch: ScratchDirectory, _ codec: BackupCompression = .zstd) -> BackupRepository {
        let clock = TestClock()
        return BackupRepository(target: LocalDirectoryTarget(root: scratch.sub("repo")),
                                settings: BackupSettings(compression: codec, chunkSize: 4096),
                                now: { clock.now() })
    }

    @Test(arguments: BackupCompression.allCases)
    func test_fullBackup_recordsTheStateAtTheCommitIndexAndVerifies(_ codec: BackupCompression) async throws {
        let scratch = ScratchDirectory()
        let node = try makeNode(scratch)
        let repo = repository(scratch, codec)
        let full = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        #expect(full.kind == .full)
        #expect(full.end.index == 150 && full.snapshot?.index == 150)
        #expect(full.digest == node.machine.digestHex())
        #expect(full.clusterUUID == node.uuid && full.clusterID == "test" && full.nodeID == "n1")
        #expect(full.files.count == 1 && full.files[0].name == "state.akvs" + codec.fileExtension)
        #expect(full.leaderTimeLast == FakeNode.time(150))
        let report = try await repo.verify(full.id)
        #expect(report.digest == node.machine.digestHex())
        #expect(try await repo.listBackups().backups.map(\.id) == [full.id])
    }

    @Test func test_incrementalAndDifferential_coverTheLogSinceTheirParents() async throws {
        let scratch = ScratchDirectory()
        let node = try makeNode(scratch)
        let repo = repository(scratch)
        let full = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(30)
        let incr1 = try await repo.createBackup(.incremental, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(20)
        let incr2 = try await repo.createBackup(.incremental, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(10)
        let diff = try await repo.createBackup(.differential, from: try CommittedHistory.read(dataDirectory: node.directory))
        #expect(incr1.parent == full.id && incr1.logFirst == 151 && incr1.logLast == 180)
        #expect(incr2.parent == incr1.id && incr2.start == incr1.end && incr2.logLast == 200)
        #expect(diff.parent == full.id && diff.logFirst == 151 && diff.logLast == 210)
        #expect(diff.digest == node.machine.digestHex())
        for backup in [incr1, incr2, diff] {
            let report = try await repo.verify(backup.id)
            #expect(report.position == backup.end)
            #expect(report.digest == backup.digest)
        }
        #expect(try await repo.verify(incr2.id).chain == [full.id, incr1.id, incr2.id])
        #expect(try await repo.verify(diff.id).chain == [full.id, diff.id])
    }

    @Test func test_incremental_whoseLogWasCompactedAwayIsRefused() async throws {
        let scratch = ScratchDirectory()
        let node = try makeNode(scratch)
        let repo = repository(scratch)
        _ = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(40)
        try node.snapshotAndCompact()
        try node.write(5)
        await #expect(throws: BackupError.self) {
            _ = try await repo.createBackup(.incremental, from: try CommittedHistory.read(dataDirectory: node.directory))
        }
        #expect(try await repo.listBackups().backups.count == 1)
    }

    /// A flipped byte in each kind of file is caught by verify (checksums-only too),
    /// naming the file with the expected and actual checksum.
    @Test(arguments: ["state", "log", "manifest"])
    func test_verify_catchesAFlippedByteInEachKindOfFile(_ kind: String) async throws {
        let scratch = ScratchDirectory()
        let node = try makeNode(scratch)
        let repo = repository(scratch)
        let full = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(30)
        let incr = try await repo.createBackup(.incremental, from: try CommittedHistory.read(dataDirectory: node.directory))
        let fullFolder = scratch.sub("repo/backups/\(full.id)")
        let incrFolder = scratch.sub("repo/backups/\(incr.id)")
        let victim: String
        switch kind {
        case "state": victim = fullFolder + "/" + full.files[0].name
        case "log": victim = incrFolder + "/" + incr.files[0].name
        default: victim = incrFolder + "/manifest.json"
        }
        try flipByte(victim)
        for checksumsOnly in [false, true] {
            do {
                _ = try await repo.verify(incr.id, checksumsOnly: checksumsOnly)
                Issue.record("verify accepted a damaged \(kind) file")
            } catch {
                let text = "\(error)"
                #expect(text.contains((victim as NSString).lastPathComponent), "\(text)")
                if kind != "manifest" {
                    guard case .checksumMismatch(_, let expected, let actual) = error else {
                        Issue.record("expected a checksum mismatch, got \(error)")
                        continue
                    }
                    #expect(expected != actual && expected.contains("sha256:"))
                }
            }
        }
    }

    @Test func test_verify_comparesTheRecordedDigest() async throws {
        let scratch = ScratchDirectory()
        let node = try makeNode(scratch)
        let repo = repository(scratch)
        _ = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(10)
        let incr = try await repo.createBackup(.incremental, from: try CommittedHistory.read(dataDirectory: node.directory))
        // Rewrite the manifest with another digest (consistent file checksums): only the
        // recovery test notices.
        var forged = incr
        forged.digest = String(repeating: "0", count: 64)
        try await repo.target.write("backups/\(incr.id)/manifest.json", try forged.encoded())
        await #expect(throws: BackupError.digestMismatch(backup: incr.id, atIndex: incr.end.index,
                                                         expected: forged.digest, actual: incr.digest)) {
            _ = try await repo.verify(incr.id)
        }
        _ = try await repo.verify(incr.id, checksumsOnly: true)  // the cheap mode cannot see it
    }

    @Test func test_foreignManifestFormat_isRefusedNamingTheFile() throws {
        let bytes = Array(#"{"format": 99}"#.utf8)
        #expect(throws: BackupError.foreign(file: "x/manifest.json",
                                            detail: "manifest format 99 is not supported (this build reads 1)")) {
            _ = try BackupManifest.decode(bytes, file: "x/manifest.json")
        }
        #expect(throws: BackupError.self) { _ = try BackupManifest.decode(Array("{not json".utf8), file: "m") }
    }
}

@Suite struct DigestTests {
    @Test func test_stateDigest_isStateMachineDigest() throws {
        let scratch = ScratchDirectory()
        let node = try FakeNode(directory: scratch.sub("node"))
        try node.write(3000, keySpace: 2000)
        #expect(stateDigest(node.machine) == node.machine.digestHex())
        #expect(stateDigest(StateMachine()) == StateMachine().digestHex())
    }
}

@Suite struct SnapshotAtCommitTests {
    /// A full backup taken right at the node's snapshot stores its bytes as they are; the
    /// result is the same as rebuilding the state (same digest, key count, and it verifies).
    @Test func test_fullBackupAtTheNodesSnapshot_equalsTheRebuiltState() async throws {
        let scratch = ScratchDirectory()
        let node = try FakeNode(directory: scratch.sub("node"))
        try node.write(300, keySpace: 120)
        try node.snapshotAndCompact()
        let history = try CommittedHistory.read(dataDirectory: node.directory)
        #expect(history.snapshotAtCommit == 120)
        let repo = BackupRepository(target: LocalDirectoryTarget(root: scratch.sub("repo")))
        let full = try await repo.createBackup(.full, from: history)
        #expect(full.digest == node.machine.digestHex() && full.keyCount == 120 && full.end.index == 300)
        #expect(try await repo.verify(full.id).digest == full.digest)
        try node.write(1)
        #expect(try CommittedHistory.read(dataDirectory: node.directory).snapshotAtCommit == nil)
    }
}
