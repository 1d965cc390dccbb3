import AegisRaft
import AegisReplication
import AegisTransport

/// A transport that keeps what the node sends (for tests that drive `ReplicaNode`s and
/// deliver their messages themselves).
final class CapturingTransport: Transport, PeerDirectory, @unchecked Sendable {
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
