import AegisCluster
import AegisRaft
import Testing

@Suite struct ClusterTests {
    /// The seed's "Cluster Management Example", Swift-cased, with the figures it prints
    /// checked at each step.
    @Test func test_seedClusterManagementExample_runsAsWritten() throws {
        let time = ManualTime()

        // Create cluster
        let localNode = NodeInfo(id: "node1", address: "127.0.0.1", port: 5000)
        let config = ClusterConfig(name: "my-cluster")
            .withReplicationFactor(3)
            .withHeartbeatInterval(.seconds(1))
        var cluster = try Cluster(localNode: localNode, config: config, clock: time.clock)
        #expect(cluster.state == .initializing)

        // Add nodes
        try cluster.addNode(NodeInfo(id: "node2", address: "127.0.0.1", port: 5001))
        try cluster.addNode(NodeInfo(id: "node3", address: "127.0.0.1", port: 5002))

        // Check cluster health
        var stats = cluster.stats()
        print("Healthy: \(stats.healthyNodes), Has quorum: \(stats.hasQuorum)")
        #expect(stats.healthyNodes == 1 && !stats.hasQuorum && stats.totalNodes == 3)
        #expect(stats.state == .forming)

        // Handle heartbeats
        time.advance(by: .milliseconds(500))
        cluster.heartbeat(from: NodeID("node2"))
        stats = cluster.stats()
        #expect(stats.healthyNodes == 2 && stats.hasQuorum && stats.state == .degraded)

        // Check for failures
        let failed = cluster.checkFailures()
        #expect(failed.isEmpty)  // nobody has been silent long

        // node3 never speaks: suspect, then down at the failure timeout.
        time.advance(by: .seconds(3))
        cluster.heartbeat(from: "node2")
        #expect(cluster.checkFailures() == [NodeStatusChange(node: "node3", from: .starting, to: .suspect)])
        time.advance(by: .seconds(2))
        cluster.heartbeat(from: "node2")
        #expect(cluster.checkFailures() == [NodeStatusChange(node: "node3", from: .suspect, to: .down)])
        stats = cluster.stats()
        #expect(stats.healthyNodes == 2 && stats.downNodes == 1 && stats.hasQuorum && stats.state == .degraded)
    }

    @Test func test_state_movesThroughEveryClusterState() throws {
        let time = ManualTime()
        var cluster = try Cluster(localNode: NodeInfo(id: "a", address: "10.0.0.1", port: 7000),
                                  config: ClusterConfig(name: "c"), clock: time.clock)
        #expect(cluster.state == .initializing)
        try cluster.addNode(NodeInfo(id: "b", address: "10.0.0.2", port: 7000))
        #expect(cluster.state == .forming)  // 2 of minNodes 3
        try cluster.addNode(NodeInfo(id: "c", address: "10.0.0.3", port: 7000))
        #expect(cluster.state == .forming)  // 3 members, but b and c are still starting
        cluster.heartbeat(from: "b")
        #expect(cluster.state == .degraded)  // quorum, c still starting
        cluster.heartbeat(from: "c")
        #expect(cluster.state == .healthy)
        for _ in 0 ..< 10 {
            time.advance(by: .seconds(1))
            cluster.heartbeat(from: "b")
            cluster.heartbeat(from: "c")
            #expect(cluster.checkFailures().isEmpty)
        }
        time.advance(by: .seconds(6))
        let changes = cluster.checkFailures()
        #expect(changes.map(\.to) == [.down, .down])
        #expect(cluster.state == .noQuorum && !cluster.stats().hasQuorum)
        cluster.heartbeat(from: "c")
        #expect(cluster.state == .degraded && cluster.node("c")?.status == .healthy)
        cluster.heartbeat(from: "b")
        #expect(cluster.state == .healthy)
    }

    @Test func test_singleNodeCluster_isHealthyAlone() throws {
        let cluster = try Cluster(localNode: NodeInfo(id: "solo", address: "localhost", port: 1),
                                  config: ClusterConfig(name: "dev").withMinNodes(1).withReplicationFactor(1))
        #expect(cluster.state == .healthy)
        #expect(cluster.stats() == ClusterStats(totalNodes: 1, healthyNodes: 1, suspectNodes: 0, downNodes: 0,
                                                votingNodes: 1, quorumSize: 1, hasQuorum: true, leader: nil,
                                                term: 0, state: .healthy))
    }

    @Test func test_membership_returnsRaftOperations() throws {
        var cluster = try Cluster(localNode: NodeInfo(id: "n1", address: "h1", port: 1), config: ClusterConfig(name: "c"))
        let voter = try cluster.addNode(NodeInfo(id: "n2", address: "h2", port: 1))
        #expect(voter.raftOperation == .addVoter("n2"))
        let learner = try cluster.addNode(NodeInfo(id: "n3", address: "h3", port: 1, role: .learner))
        #expect(learner.raftOperation == .addLearner("n3"))
        #expect(cluster.stats().votingNodes == 2)

        var promoted = try #require(cluster.node("n3"))
        promoted.role = .follower
        let promotion = try cluster.updateNode(promoted)
        #expect(promotion.raftOperation == .addVoter("n3"))
        var moved = promoted
        moved.metadata = NodeMetadata(datacenter: "eu-west", rack: "r1", zone: "a", tags: ["disk": "ssd"],
                                      capacity: NodeCapacity(cpuCores: 8, memoryBytes: 1 << 34, storageBytes: 1 << 40))
        moved.port = 2
        let move = try cluster.updateNode(moved)
        #expect(move.raftOperation == nil)
        #expect(cluster.node("n3")?.metadata.datacenter == "eu-west" && cluster.node("n3")?.endpoint == "h3:2")

        let removal = try cluster.removeNode("n2")
        #expect(removal.raftOperation == .removeNode("n2"))
        if case .remove(let node) = removal { #expect(node.status == .left) } else { Issue.record("not a removal") }
        #expect(cluster.node("n2") == nil && cluster.members.map(\.id) == ["n1", "n3"])
    }

    @Test func test_membership_refusesInvalidChanges() throws {
        var cluster = try Cluster(localNode: NodeInfo(id: "n1", address: "h", port: 1),
                                  config: ClusterConfig(name: "c").withMaxNodes(3))
        try cluster.addNode(NodeInfo(id: "n2", address: "h", port: 2))
        let attempts: [(ClusterError, () throws(ClusterError) -> Void)] = [
            (.nodeAlreadyExists("n2"), { () throws(ClusterError) in try cluster.addNode(NodeInfo(id: "n2", address: "x", port: 9)) }),
            (.invalidNode("h:2 is already the address of node n2"),
             { () throws(ClusterError) in try cluster.addNode(NodeInfo(id: "n3", address: "h", port: 2)) }),
            (.invalidNode("node n3 has port 0; ports are 1...65535"),
             { () throws(ClusterError) in try cluster.addNode(NodeInfo(id: "n3", address: "h", port: 0)) }),
            (.invalidNode("node n3 has an empty address"),
             { () throws(ClusterError) in try cluster.addNode(NodeInfo(id: "n3", address: "", port: 3)) }),
            (.invalidNode("the node identity is empty"),
             { () throws(ClusterError) in try cluster.addNode(NodeInfo(id: "", address: "h", port: 3)) }),
            (.nodeNotFound("zz"), { () throws(ClusterError) in try cluster.removeNode("zz") }),
            (.nodeNotFound("zz"), { () throws(ClusterError) in try cluster.updateNode(NodeInfo(id: "zz", address: "q", port: 1)) }),
            (.cannotRemoveLocalNode("n1"), { () throws(ClusterError) in try cluster.removeNode("n1") }),
        ]
        for (expected, attempt) in attempts {
            #expect(throws: expected) { try attempt() }
        }
        #expect(cluster.members.count == 2)
        try cluster.addNode(NodeInfo(id: "n3", address: "h", port: 3))
        #expect(throws: ClusterError.clusterFull(maxNodes: 3)) { try cluster.addNode(NodeInfo(id: "n4", address: "h", port: 4)) }
        #expect(ClusterError.clusterFull(maxNodes: 3).description.contains("raise maxNodes"))
    }

    @Test func test_leaderTracking_followsTerms() throws {
        var cluster = try Cluster(localNode: NodeInfo(id: "n1", address: "h", port: 1), config: ClusterConfig(name: "c"))
        try cluster.addNode(NodeInfo(id: "n2", address: "h", port: 2))
        let elected = cluster.setLeader("n2", term: 3)
        #expect(elected)
        #expect(cluster.node("n2")?.role == .leader && cluster.stats().leader == "n2" && cluster.stats().term == 3)
        let stale = cluster.setLeader("n1", term: 2)
        #expect(!stale)
        #expect(cluster.leader == "n2")
        let electing = cluster.setLeader(nil, term: 4)  // election in progress
        #expect(electing)
        #expect(cluster.node("n2")?.role == .follower && cluster.leader == nil)
        let local = cluster.setLeader("n1", term: 4)
        #expect(local)
        #expect(cluster.localNode?.role == .leader && cluster.term == 4)
        try cluster.removeNode("n2")
        #expect(cluster.leader == "n1")
    }

    @Test func test_heartbeat_ignoresUnknownNodesAndKeepsLeavingNodes() throws {
        let time = ManualTime()
        var cluster = try Cluster(localNode: NodeInfo(id: "n1", address: "h", port: 1),
                                  config: ClusterConfig(name: "c"), clock: time.clock)
        let fromStranger = cluster.heartbeat(from: "stranger")
        let fromSelf = cluster.heartbeat(from: "n1")
        #expect(!fromStranger && fromSelf)
        try cluster.addNode(NodeInfo(id: "n2", address: "h", port: 2))
        var leaving = try #require(cluster.node("n2"))
        leaving.status = .leaving
        try cluster.updateNode(leaving)
        cluster.heartbeat(from: "n2")
        time.advance(by: .seconds(60))
        #expect(cluster.checkFailures().isEmpty)
        #expect(cluster.node("n2")?.status == .leaving && cluster.state == .forming)
    }

    @Test func test_recordHealth_failedCheckMakesANodeSuspect() throws {
        var cluster = try Cluster(localNode: NodeInfo(id: "n1", address: "h", port: 1), config: ClusterConfig(name: "c"))
        try cluster.addNode(NodeInfo(id: "n2", address: "h", port: 2))
        cluster.heartbeat(from: "n2")
        let passing = NodeHealth(node: "n2", isHealthy: true, checkedAt: .zero, responseTime: .milliseconds(3),
                                 cpuUsage: 0.2, memoryUsage: 0.5, diskUsage: 0.1, replicationLag: 0)
        #expect(cluster.recordHealth(passing) == nil)
        let failing = NodeHealth(node: "n2", isHealthy: false, checkedAt: .zero, detail: "disk full")
        #expect(cluster.recordHealth(failing) == NodeStatusChange(node: "n2", from: .healthy, to: .suspect))
        #expect(cluster.healthChecks["n2"]?.detail == "disk full" && cluster.stats().suspectNodes == 1)
        #expect(cluster.recordHealth(NodeHealth(node: "ghost", isHealthy: false, checkedAt: .zero)) == nil)
    }
}
