import AegisRaft
import Testing

/// A state machine that records what it applied.
struct RecordingMachine: ReplicatedStateMachine {
    var appliedIndex: LogIndex = 0
    var commands: [String] = []

    mutating func apply(_ entry: LogEntry) -> String? {
        appliedIndex = entry.index
        guard entry.type == .command else { return nil }
        let text = String(decoding: entry.data, as: UTF8.self)
        commands.append(text)
        return text
    }

    func snapshotData() throws -> [UInt8] { Array(commands.joined(separator: "\n").utf8) }

    mutating func restore(from snapshot: Snapshot) throws {
        commands = snapshot.data.isEmpty ? [] : String(decoding: snapshot.data, as: UTF8.self).split(separator: "\n").map(String.init)
        appliedIndex = snapshot.metadata.index
    }
}

@Suite struct RaftNodeTests {
    // The seed's "Raft Node Example", Swift-cased, with a test state machine.
    @Test func test_seedRaftNodeExample_runsAsWritten() throws {
        // Create Raft node
        let node = try RaftNode(id: "node1", config: RaftConfig(), stateMachine: RecordingMachine())
        try node.addPeer(NodeID("node2"))
        try node.addPeer(NodeID("node3"))
        // Start election
        let voteRequest = try node.startElection()
        #expect(voteRequest.term == 1)
        #expect(voteRequest.candidateID == "node1")
        // Handle vote response
        let voteResponse = VoteResponse(term: 1, voteGranted: true, voterID: NodeID("node2"))
        let becameLeader = try node.handleVoteResponse(voteResponse)
        #expect(becameLeader)
        // If leader, propose commands
        var index: LogIndex = 0
        if node.isLeader {
            index = try node.propose(Array("set key value".utf8))
        }
        #expect(index == 2)
        // Nothing is committed before a follower acknowledges.
        #expect(try node.applyCommitted().isEmpty)
        try node.step(RaftMessage(from: "node2", to: "node1", payload: .appendEntriesResponse(
            AppendEntriesResponse(term: 1, success: true, followerID: "node2", matchIndex: 2))))
        // Apply committed entries
        let results = try node.applyCommitted()
        #expect(results == [nil, "set key value"])
        #expect(node.stateMachine.commands == ["set key value"])
    }

    // Two RaftNodes exchanging messages by hand replicate a command.
    @Test func test_raftNode_twoNodesReplicateByHand() throws {
        let a = try RaftNode(id: "a", config: RaftConfig(), stateMachine: RecordingMachine())
        let b = try RaftNode(id: "b", config: RaftConfig(), stateMachine: RecordingMachine())
        try a.addPeer("b")
        try b.addPeer("a")
        func pump() throws {
            for _ in 0..<10 {
                let fromA = a.takeMessages(), fromB = b.takeMessages()
                if fromA.isEmpty && fromB.isEmpty { return }
                for m in fromA { try b.step(m) }
                for m in fromB { try a.step(m) }
            }
        }
        try a.startElection()
        try pump()
        #expect(a.isLeader)
        try a.propose(Array("x".utf8))
        try pump()
        _ = try b.applyCommitted()
        #expect(b.stateMachine.commands == ["x"])
    }
}
