import AegisKV
import AegisRaft
import AegisReplication
import AegisStorage
import AegisTransport
import Logging
import Testing

/// A transport that keeps what the node sends.
private final class CapturingTransport: Transport, PeerDirectory, @unchecked Sendable {
    let localID: NodeID
    var peers: [NodeID]
    var sent: [Message] = []
    let inbound = AsyncStream<[Message]> { $0.finish() }
    init(localID: NodeID, peers: [NodeID]) {
        self.localID = localID
        self.peers = peers
    }
    func send(_ messages: [Message]) { sent += messages }
    var stats: TransportStats { TransportStats() }
    func setPeer(_ peer: NodeID, address: PeerAddress) {}
    func removePeer(_ peer: NodeID) {}
}

@Suite struct ReplicaNodeTests {
    /// A one-voter node over DiskStorage on a simulated disk, elected.
    private func leader() throws -> (ReplicaNode, CapturingTransport) {
        var options = DiskStorageOptions(segmentSize: 4096)
        options.preallocateSegments = false
        options.writerThread = false
        let storage = try DiskStorage(directory: "/data", fileSystem: SimulatedFileSystem(), options: options)
        let config = NodeConfiguration(nodeID: "n1", bootstrapVoters: ["n1"], raft: RaftConfig(electionTimeout: 10, heartbeatInterval: 2))
        let transport = CapturingTransport(localID: "n1", peers: ["n2"])
        let node = try ReplicaNode(configuration: config, storage: storage, transport: transport,
                                   logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                                   clock: { 0 }, randomSeed: 1, snapshotRunner: { $0() })
        for _ in 0..<50 where node.core.role != .leader { node.tick() }
        return (node, transport)
    }

    /// Regression (node simulator): a forwarded write that reached the leader twice (a
    /// duplicated or re-sent message) was appended twice, and the follower answered its
    /// client from the second copy. The leader answers a request id it has seen with the
    /// position it gave the first time.
    @Test func test_forwardedRequestSeenTwiceIsAppendedOnce() throws {
        let (node, transport) = try leader()
        #expect(node.core.role == .leader)
        let before = try node.core.log.lastIndex()
        let request = Message(from: "n2", to: "n1", payload: .clientRequest(
            ClientRequest(requestID: 42, command: Command.set("k", [1]).encoded())))
        node.deliver([request])
        node.deliver([request])
        #expect(try node.core.log.lastIndex() == before + 1)
        let answers = transport.sent.compactMap { message -> ClientResponse.Outcome? in
            if case .clientResponse(let response) = message.payload { return response.outcome }
            return nil
        }
        #expect(answers.count == 2)
        #expect(answers.first == answers.last)
        // Another request id is a new write.
        node.deliver([Message(from: "n2", to: "n1", payload: .clientRequest(
            ClientRequest(requestID: 43, command: Command.set("k", [2]).encoded())))])
        #expect(try node.core.log.lastIndex() == before + 2)
    }
}
