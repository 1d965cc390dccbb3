public import AegisRaft
internal import NIOConcurrencyHelpers
internal import NIOCore

/// Where a peer accepts connections.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    /// A host name or IP address, for example `"127.0.0.2"`.
    public var host: String
    /// The TCP port.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// The outbound connections of a `TCPTransport`, one per peer, and the address book
/// that says which peers exist.
///
/// A peer's connection opens on the first message for it, re-opens with jittered
/// exponential backoff after a failure, and has a bounded send queue: messages beyond
/// the bound are dropped and counted, never buffered without limit. Peers can be added,
/// moved and removed at runtime.
public final class ConnectionPool: Sendable {
    private let settings: OutboundSettings
    private let group: any EventLoopGroup
    private let connections: NIOLockedValueBox<Pool>

    struct Pool {
        var peers: [NodeID: PeerConnection] = [:]
        /// Messages to nodes that are not in the address book.
        var droppedUnknown: UInt64 = 0
        var isClosed = false
        var seed: UInt64
    }

    init(settings: OutboundSettings, group: any EventLoopGroup, peers: [NodeID: PeerAddress], seed: UInt64) {
        self.settings = settings
        self.group = group
        self.connections = NIOLockedValueBox(Pool(seed: seed))
        for (id, address) in peers { setPeer(id, address: address) }
    }

    /// The peers in the address book.
    public var peerIDs: [NodeID] {
        connections.withLockedValue { Array($0.peers.keys) }.sorted()
    }

    /// The address of `peer`, if it is in the address book.
    public func address(of peer: NodeID) -> PeerAddress? {
        connections.withLockedValue { $0.peers[peer] }?.address
    }

    /// Whether `peer` is in the address book.
    public func contains(_ peer: NodeID) -> Bool {
        connections.withLockedValue { $0.peers[peer] != nil }
    }

    /// Adds `peer` at `address`, or moves it there (its connection is re-opened).
    /// Ignored for this node itself and after shutdown.
    public func setPeer(_ peer: NodeID, address: PeerAddress) {
        guard peer != settings.localID else { return }
        let existing = connections.withLockedValue { pool -> PeerConnection? in
            if pool.isClosed { return nil }
            if let existing = pool.peers[peer] { return existing }
            pool.seed = pool.seed &+ 0x9E37_79B9_7F4A_7C15
            pool.peers[peer] = PeerConnection(peerID: peer, address: address, eventLoop: group.next(),
                                              settings: settings, seed: pool.seed)
            return nil
        }
        existing?.update(address: address)
    }

    /// Removes `peer`: its connection closes and its queued messages are dropped.
    public func removePeer(_ peer: NodeID) {
        connections.withLockedValue { $0.peers.removeValue(forKey: peer) }?.close()
    }

    /// The counters of the link to `peer`.
    public func stats(for peer: NodeID) -> PeerStats? {
        connections.withLockedValue { $0.peers[peer] }?.stats
    }

    /// Queues messages, grouped per receiver (order kept per receiver).
    func send(_ messages: [Message]) {
        guard let first = messages.first else { return }
        // Fast path: a batch for one peer.
        if messages.allSatisfy({ $0.to == first.to }) {
            enqueue(messages, for: first.to)
            return
        }
        var byPeer: [NodeID: [Message]] = [:]
        for message in messages { byPeer[message.to, default: []].append(message) }
        for (peer, batch) in byPeer { enqueue(batch, for: peer) }
    }

    private func enqueue(_ messages: [Message], for peer: NodeID) {
        let connection = connections.withLockedValue { pool -> PeerConnection? in
            guard let connection = pool.peers[peer] else {
                pool.droppedUnknown += UInt64(messages.count)
                return nil
            }
            return connection
        }
        connection?.enqueue(messages)
    }

    /// Closes every connection; later messages are dropped.
    func closeAll() {
        let all = connections.withLockedValue { pool -> [PeerConnection] in
            pool.isClosed = true
            defer { pool.peers = [:] }
            return Array(pool.peers.values)
        }
        for connection in all { connection.close() }
    }

    /// Adds the send-side counters to `stats`.
    func addStats(to stats: inout TransportStats) {
        let (all, droppedUnknown) = connections.withLockedValue { pool in
            (pool.peers.map { ($0.key, $0.value) }, pool.droppedUnknown)
        }
        stats.messagesDropped += droppedUnknown
        for (peer, connection) in all {
            let peerStats = connection.stats
            stats.peers[peer] = peerStats
            stats.messagesSent += peerStats.messagesSent
            stats.bytesSent += peerStats.bytesSent
            stats.messagesDropped += peerStats.messagesDropped
            stats.reconnects += peerStats.reconnects
        }
    }
}
