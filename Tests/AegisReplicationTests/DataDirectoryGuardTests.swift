import AegisReplication
import AegisStorage
import Foundation
import Testing

/// The start-up rules for a data directory (see `DataDirectoryGuard`).
@Suite struct DataDirectoryGuardTests {
    let founders = ["n1=127.0.0.1:9001", "n2=127.0.0.1:9002", "n3=127.0.0.1:9003"]

    func plan(_ dir: String, node: String = "n1", cluster: String = "c", state: DataDirectoryGuard.InitialClusterState,
              join: Bool = false) throws -> DataDirectoryGuard.Plan {
        try DataDirectoryGuard.plan(directory: dir, clusterID: cluster, nodeID: node, state: state, join: join,
                                    clusterUUID: nil, founders: founders)
    }

    @Test func test_emptyDirectory_existingState_isRefusedAndNothingWritten() throws {
        let dir = temporaryDirectory("guard-empty")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: DataDirectoryGuard.Refusal.self) { try plan(dir, state: .existing) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        // A missing directory is empty too, and is not created.
        #expect(throws: DataDirectoryGuard.Refusal.self) { try plan(dir + "/missing", state: .existing) }
        #expect(!FileManager.default.fileExists(atPath: dir + "/missing"))
    }

    @Test func test_emptyDirectory_newState_bootstrapsWithAgreedUUID() throws {
        let dir = temporaryDirectory("guard-new")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard case .bootstrap(let identity) = try plan(dir, state: .new) else {
            Issue.record("expected a bootstrap")
            return
        }
        #expect(identity.membership == .member)
        // Every founding member derives the same UUID; another membership another one.
        let again = DataDirectoryGuard.derivedUUID(clusterID: "c", founders: founders.reversed())
        #expect(identity.clusterUUID == again)
        #expect(DataDirectoryGuard.derivedUUID(clusterID: "c", founders: Array(founders.prefix(2))) != again)
        #expect(UUID(uuidString: again) != nil)
    }

    @Test func test_emptyDirectory_join_waitsToBeAdded() throws {
        let dir = temporaryDirectory("guard-join")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard case .start(let identity, let write) = try plan(dir, state: .existing, join: true) else {
            Issue.record("expected a start")
            return
        }
        #expect(write)
        #expect(identity.membership == .awaitingAdd)
        #expect(identity.clusterUUID == nil)
    }

    @Test func test_identityOfAnotherNodeOrCluster_isRefused() throws {
        let dir = temporaryDirectory("guard-foreign")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try DataDirectoryIdentity(clusterID: "c", clusterUUID: "U", nodeID: "n2", membership: .member).write(to: dir)
        FileManager.default.createFile(atPath: dir + "/wal-1", contents: Data([1]))
        #expect(throws: DataDirectoryGuard.Refusal.self) { try plan(dir, node: "n1", state: .new) }
        #expect(throws: DataDirectoryGuard.Refusal.self) { try plan(dir, node: "n2", cluster: "other", state: .new) }
        guard case .start(let identity, let write) = try plan(dir, node: "n2", state: .existing) else {
            Issue.record("expected a start")
            return
        }
        #expect(!write)
        #expect(identity.clusterUUID == "U")
    }

    @Test func test_identityWithoutLog_isRefusedEvenWithNewState() throws {
        let dir = temporaryDirectory("guard-lostlog")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try DataDirectoryIdentity(clusterID: "c", clusterUUID: "U", nodeID: "n1", membership: .member).write(to: dir)
        #expect(throws: DataDirectoryGuard.Refusal.self) { try plan(dir, state: .new) }
    }

    @Test func test_logWithoutIdentity_isAdopted() throws {
        let dir = temporaryDirectory("guard-adopt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: dir + "/wal-1", contents: Data([1]))
        guard case .start(let identity, let write) = try plan(dir, state: .existing) else {
            Issue.record("expected a start")
            return
        }
        #expect(write && identity.membership == .member && identity.nodeID == "n1")
    }

    @Test func test_identityFile_roundTripsAndRejectsDamage() throws {
        let dir = temporaryDirectory("guard-file")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let identity = DataDirectoryIdentity(clusterID: "prod", clusterUUID: "3F2A", nodeID: "n7", membership: .awaitingAdd)
        try identity.write(to: dir)
        #expect(try DataDirectoryIdentity.read(from: dir) == identity)
        try Data("format = 9\n".utf8).write(to: URL(fileURLWithPath: DataDirectoryIdentity.path(in: dir)))
        #expect(throws: StorageError.self) { try DataDirectoryIdentity.read(from: dir) }
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: DataDirectoryIdentity.path(in: dir)))
        #expect(throws: StorageError.self) { try DataDirectoryIdentity.read(from: dir) }
    }
}
