import AegisCluster
import AegisKV
import AegisRaft
import AegisReplication
import AegisTransport
import Testing

@Suite struct SeedExampleTests {
    // The seed's "Usage Example", Swift-cased.
    @Test func test_seedEngineExample_runsAsWritten() throws {
        // Create replication engine
        let node = NodeInfo(id: "node1", address: "127.0.0.1", port: 5000)
        let engine = try ReplicationEngine(node: node, config: ReplicationConfig())
        // Add peers
        let peer = NodeInfo(id: "node2", address: "127.0.0.1", port: 5001)
        try engine.addPeer(peer)
        // Become leader (after election)
        let request = try engine.startElection()
        #expect(request.term == 1)
        // ... handle votes from peers ...
        try engine.handleMessage(Message(RaftMessage(from: "node2", to: "node1", payload: .voteResponse(
            VoteResponse(term: 1, voteGranted: true, voterID: "node2")))))
        #expect(engine.isLeader)
        // If leader, propose commands
        var results: [CommandResult] = []
        if engine.isLeader {
            let index = try engine.set("key1", Array("value1".utf8))
            #expect(index == 2)  // 1 is the new leader's no-op
            // node2 acknowledges, so the entry commits.
            try engine.handleMessage(Message(RaftMessage(from: "node2", to: "node1", payload: .appendEntriesResponse(
                AppendEntriesResponse(term: 1, success: true, followerID: "node2", matchIndex: index)))))
            // Apply committed entries
            results = try engine.applyCommitted()
        }
        #expect(results.last?.isSuccess == true)
        // Read values
        let value = engine.get("key1")
        #expect(value == Array("value1".utf8))
        #expect(engine.cluster.stats().totalNodes == 2)
    }

    // The seed's "Raft Node Example" with the key-value state machine.
    @Test func test_seedRaftNodeExample_withKeyValueCommands() throws {
        let node = try RaftNode(id: "node1", config: RaftConfig())
        try node.addPeer(NodeID("node2"))
        try node.addPeer(NodeID("node3"))
        let voteRequest = try node.startElection()
        #expect(voteRequest.candidateID == "node1")
        let voteResponse = VoteResponse(term: 1, voteGranted: true, voterID: NodeID("node2"))
        let becameLeader = try node.handleVoteResponse(voteResponse)
        #expect(becameLeader)
        if node.isLeader {
            let command = Command.set("key", Array("value".utf8))
            let index = try node.propose(command)
            try node.step(RaftMessage(from: "node2", to: "node1", payload: .appendEntriesResponse(
                AppendEntriesResponse(term: 1, success: true, followerID: "node2", matchIndex: index))))
        }
        let results = try node.applyCommitted()
        #expect(results.contains { $0.isSuccess && $0.index == 2 })
        #expect(node.stateMachine.get("key")?.value == Array("value".utf8))
    }
}
