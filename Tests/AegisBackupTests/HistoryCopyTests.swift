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
        // A configuration change after the snapshot: the copy must not take it.
        try node.storage.save(hardState: RaftState(term: 1, votedFor: nil, commitIndex: 151), entries: [
            LogEntry(index: 151, term: 1, type: .configChange,
                     data: ConfChange([ConfChangeSingle(.addVoter, "n9")]).encoded(), timestamp: FakeNode.time(151)),
        ])
        node.index = 151
        try node.write(10)
        let report = try CommittedHistory.read(dataDirectory: node.directory)
            .writeCopy(options: RestoreOptions(dataDirectory: target, nodeID: "drill", clusterID: "drill"))
        #expect(report.position.index == 161 && report.entriesToReplay == 61)
        #expect(report.clusterID == "drill" && report.clusterUUID != node.uuid)
        let identity = try #require(try DataDirectoryIdentity.read(from: target))
        #expect(identity.clusterUUID == report.clusterUUID && identity.nodeID == "drill" && identity.clusterID == "drill")
        let storage = try DiskStorage(directory: target)
        defer { storage.close() }
        let snapshot = try storage.snapshot()
        #expect(snapshot.metadata.index == 100 && snapshot.metadata.confState.voters == ["drill"])
        #expect(storage.storedHardState.commitIndex == 161)
        // The state after replaying the copy's log is the source's at its commit.
        var machine = StateMachine()
        try machine.restore(from: snapshot)
        let log = try storage.entries(from: 101, to: 162, maxBytes: .max)
        #expect(log.count == 61 && !log.contains { $0.type == .configChange })
        for entry in log { machine.apply(entry) }
        #expect(machine.digest() == node.machine.digest())
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
