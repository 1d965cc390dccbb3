import AegisOperations
import AegisServer
import Foundation
import Testing

@Suite struct RollingRestartTests {
    static func view(role: String = "leader", members: [(String, String?, UInt64?)]) throws -> ClusterStatusDocument {
        let list = members.map { id, status, lag in
            """
            {"id":"\(id)","role":"voter","peerAddress":"127.0.0.1:1","clientAddress":"127.0.0.1:2",\
            \(status.map { "\"status\":\"\($0)\"," } ?? "")\(lag.map { "\"lag\":\($0)," } ?? "")"reachable":true}
            """
        }.joined(separator: ",")
        let json = """
        {"nodeID":"n1","role":"\(role)","leader":"n1","term":3,"commitIndex":10,"appliedIndex":10,"members":[\(list)]}
        """
        return try JSONDecoder().decode(ClusterStatusDocument.self, from: Data(json.utf8))
    }

    @Test func test_order_followersFirst_leaderLast() {
        #expect(RollingRestart.order(["n1", "n2", "n3"], leader: "n1") == ["n2", "n3", "n1"])
        #expect(RollingRestart.order(["n1", "n2", "n3"], leader: "n3") == ["n1", "n2", "n3"])
        #expect(RollingRestart.order(["n1", "n2"], leader: nil) == ["n1", "n2"])
    }

    @Test func test_notCaughtUp_needsEveryMemberHealthyWithinTheLag() throws {
        #expect(RollingRestart.notCaughtUp(try Self.view(members: [("n1", "healthy", 0), ("n2", "healthy", 0)]), maxLag: 0) == nil)
        #expect(RollingRestart.notCaughtUp(try Self.view(members: [("n1", "healthy", 0), ("n2", "healthy", 5)]), maxLag: 0)
            == "n2 is 5 entries behind")
        #expect(RollingRestart.notCaughtUp(try Self.view(members: [("n1", "healthy", 0), ("n2", "healthy", 5)]), maxLag: 5) == nil)
        #expect(RollingRestart.notCaughtUp(try Self.view(members: [("n1", "healthy", 0), ("n2", "healthy", 6)]), maxLag: 5) != nil)
        #expect(RollingRestart.notCaughtUp(try Self.view(members: [("n1", "healthy", 0), ("n2", "suspect", 0)]), maxLag: 9)
            == "n2 is suspect")
        #expect(RollingRestart.notCaughtUp(try Self.view(members: [("n1", "healthy", 0), ("n2", "healthy", nil)]), maxLag: 9)
            == "n2 has no known lag")
        // A member that left does not hold the restart back.
        #expect(RollingRestart.notCaughtUp(try Self.view(members: [("n1", "healthy", 0), ("n4", "left", nil)]), maxLag: 0) == nil)
        #expect(RollingRestart.notCaughtUp(try Self.view(role: "follower", members: [("n1", "healthy", 0)]), maxLag: 0)
            == "n1 is follower, not the leader")
    }

    @Test func test_nodesFile_readsAegisDevsFormat_refusesBadOnes() throws {
        let dev = """
        {"nodes":[{"id":"node1","pid":42,"resp":"127.0.0.1:7001","admin":"127.0.0.1:8001","peer":"127.0.0.1:9001",\
        "log":"/tmp/node1.log","command":["/bin/aegis","serve","--id","node1"]},\
        {"id":"node2","admin":"127.0.0.1:8002"}]}
        """
        let nodes = try RollingRestartNodes.decode(Data(dev.utf8))
        #expect(nodes.nodes.map(\.id) == ["node1", "node2"])
        #expect(nodes.nodes[0].pid == 42)
        #expect(nodes.nodes[0].command == ["/bin/aegis", "serve", "--id", "node1"])
        #expect(nodes.nodes[1].command == nil)
        for bad in ["{}", "{\"nodes\":[]}", "[1]",
                    "{\"nodes\":[{\"id\":\"a\",\"admin\":\"x:1\"},{\"id\":\"a\",\"admin\":\"x:2\"}]}",
                    "{\"nodes\":[{\"id\":\"a\",\"admin\":\"x:1\",\"command\":[]}]}"] {
            #expect(throws: RunbookError.self, "\(bad)") { try RollingRestartNodes.decode(Data(bad.utf8)) }
        }
        #expect(throws: RunbookError.self) {
            try RollingRestartNodes.decode(Data(repeating: 32, count: RollingRestartNodes.maxFileBytes + 1))
        }
    }
}
