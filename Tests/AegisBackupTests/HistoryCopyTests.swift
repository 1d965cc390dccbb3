@testable import AegisBackup
import AegisKV
import AegisRaft
import AegisStorage
import Foundation
import Testing

/// `CommittedHistory.writeCopy`: the DR drill's copy of a live member.
@Suite struct HistoryCopyTests {
    @Test func test_writeCopy_writesTheStateAtTheCommitUnderANewUUID() throws {
        let scratch = ScratchDirectory()
        let node = try FakeNode(directory: scratch.sub("node"))
        try node.write(100)
        try node.snapshotAndCompact()
        try node.write(50)
        let target = scratch.sub("copy")
        let report = try CommittedHistory.read(dataDirectory: node.directory)
            .writeCopy(options: RestoreOptions(dataDirectory: target, nodeID: "drill", clusterID: "drill"))
        #expect(report.position.index == 150 && report.clusterID == "drill" && report.clusterUUID != node.uuid)
        let identity = try #require(try DataDirectoryIdentity.read(from: target))
        #expect(identity.clusterUUID == report.clusterUUID && identity.nodeID == "drill" && identity.clusterID == "drill")
        let storage = try DiskStorage(directory: target)
        defer { storage.close() }
        let snapshot = try storage.snapshot()
        #expect(snapshot.metadata.index == 150 && snapshot.metadata.confState.voters == ["drill"])
        var machine = StateMachine()
        try machine.restore(from: snapshot)
        #expect(machine.digest() == node.machine.digest())
        #expect(report.keyCount == machine.count)
    }

    @Test func test_writeCopy_refusesANonEmptyDirectoryAndTheSourceUUID() throws {
        let scratch = ScratchDirectory()
        let node = try FakeNode(directory: scratch.sub("node"))
        try node.write(10)
        let history = try CommittedHistory.read(dataDirectory: node.directory)
        #expect(throws: BackupError.self) {
            try history.writeCopy(options: RestoreOptions(dataDirectory: node.directory))
        }
        let target = scratch.sub("copy")
        #expect(throws: BackupError.self) {
            try history.writeCopy(options: RestoreOptions(dataDirectory: target, clusterUUID: node.uuid))
        }
        #expect((try? FileManager.default.contentsOfDirectory(atPath: target))?.isEmpty ?? true)
    }
}
