public import AegisRaft
internal import AegisTLS
public import Logging
internal import NIOConcurrencyHelpers
public import NIOCore
public import NIOPosix

/// The peer transport over TCP (SwiftNIO).
///
/// Each node listens on its own address (for tests, its own loopback address:
/// 127.0.0.1, 127.0.0.2, …) and opens one outbound connection per peer, which starts
/// with a handshake carrying the cluster ID and both node IDs. A connection from
/// another cluster, from a node missing from the address book, or meant for another
/// node is refused with a logged reason. Messages travel in length-prefixed frames
/// (see ``WireFormat``); malformed frames close the connection, never the process.
///
/// With ``Configuration/tls`` set, every connection runs mutual TLS and a peer is
/// accepted only with a certificate of the cluster CA that names the node ID it
/// claims; see ``TLSSettings``. Client requests forwarded between members are accepted
/// only from such authenticated peers (or, on a plaintext transport, when
/// ``Configuration/allowUnauthenticatedClientRequests`` says so).
///
/// Call ``start()`` to listen and ``shutdown()`` to close everything. Outbound
/// connections work without `start()`: they open on the first message to a peer.
public final class TCPTransport: Transport {
    /// How a transport is set up.
    public struct Configuration: Sendable {
        /// This node.
        public var nodeID: NodeID
        /// The cluster this node belongs to; peers of other clusters are refused.
        public var clusterID: String
        /// The UUID of this cluster's incarnation (recorded in the data directory), or
        /// `nil` while unknown (a node joining with an empty data directory adopts the
        /// first UUID a peer of its cluster presents). Peers with another UUID are refused.
        public var clusterUUID: String?
        /// Called once when the node learns the cluster UUID from a peer (to persist it).
        public var onClusterUUIDLearned: (@Sendable (String) -> Void)?
        /// The address to listen on; outbound connections leave from it too when
        /// `bindOutboundConnections` is set.
        public var host: String
        /// The port to listen on; 0 picks a free port (see ``TCPTransport/localAddress``).
        public var port: Int
        /// The address book: every peer this node talks to and accepts.
        public var peers: [NodeID: PeerAddress]
        /// The largest frame sent or accepted, length prefix excluded.
        public var maximumFrameSize: Int
        /// Messages waiting per peer; more are dropped and counted.
        public var sendQueueLimit: Int
        /// Received batches waiting for the consumer of `inbound`; more are dropped and counted.
        public var inboundBatchLimit: Int
        /// Delays between reconnection attempts.
        public var backoff: Backoff
        /// How long a connection attempt may take.
        public var connectTimeout: Duration
        /// How long either side waits for the handshake.
        public var handshakeTimeout: Duration
        /// Whether outbound sockets bind to `host` (port 0), so that a node's traffic
        /// leaves from its own address; needed to cut links between loopback nodes.
        public var bindOutboundConnections: Bool
        /// Seeds the backoff jitter; `nil` draws a seed from the system generator.
        public var jitterSeed: UInt64?
        /// Mutual TLS between peers, or `nil` for plaintext (the default, for tests and
        /// in-process clusters; servers should use TLS).
        public var tls: TLSSettings?
        /// Whether a plaintext transport accepts client requests (and their answers)
        /// forwarded by other members. **Insecure:** on a plaintext connection the
        /// sender is whoever knows the cluster ID and a member's name, so anyone who can
        /// reach the peer port can then write any key. `true` by default so that
        /// plaintext test clusters keep forwarding; set it to `false` on a plaintext
        /// transport that must not take client traffic. Ignored with ``tls``: mutually
        /// authenticated peers may always forward.
        public var allowUnauthenticatedClientRequests: Bool

        /// Creates a configuration with defaults suited to a LAN.
        public init(nodeID: NodeID, clusterID: String, host: String = "127.0.0.1", port: Int = 0,
                    peers: [NodeID: PeerAddress] = [:]) {
            self.nodeID = nodeID
            self.clusterID = clusterID
            self.host = host
            self.port = port
            self.peers = peers
            self.maximumFrameSize = WireFormat.defaultMaximumFrameSize
            self.sendQueueLimit = 4096
            self.inboundBatchLimit = 4096
            self.backoff = Backoff()
            self.connectTimeout = .seconds(1)
            self.handshakeTimeout = .seconds(2)
            self.bindOutboundConnections = true
            self.jitterSeed = nil
            self.clusterUUID = nil
            self.onClusterUUIDLearned = nil
            self.tls = nil
            self.allowUnauthenticatedClientRequests = true
        }

        func validate() throws(TransportError) {
            guard maximumFrameSize >= 64, maximumFrameSize <= Int(UInt32.max) else {
                throw TransportError(.invalidConfiguration, "maximumFrameSize must be between 64 bytes and 4 GiB, got \(maximumFrameSize)")
            }
            guard sendQueueLimit > 0, inboundBatchLimit > 0 else {
                throw TransportError(.invalidConfiguration, "sendQueueLimit and inboundBatchLimit must be positive")
            }
            guard (0...65535).contains(port) else {
                throw TransportError(.invalidConfiguration, "port \(port) is not a TCP port")
            }
            if let tls {
                let names = tls.certificates.material.identities
                guard names.contains(nodeID.rawValue) else {
                    throw TransportError(.invalidConfiguration,
                                         "the TLS certificate \(tls.certificates.files.certificatePath) names \(names), not this node '\(nodeID)'; peers would refuse it")
                }
            }
        }
    }

    private enum Lifecycle {
        case idle
        case starting
        case running(any Channel)
        case shutDown
    }

    /// This node.
    public let localID: NodeID
    /// Messages received from peers, one array per socket read.
    public let inbound: AsyncStream<[Message]>
    /// The outbound connections and the address book.
    public let connections: ConnectionPool

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let shared: InboundContext
    private let lifecycle = NIOLockedValueBox(Lifecycle.idle)

    /// Creates a transport. Nothing happens on the network until `start()` or the
    /// first message.
    ///
    /// - Throws: `TransportError` with code `.invalidConfiguration`.
    public init(configuration: Configuration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger) throws(TransportError) {
        try configuration.validate()
        var logger = logger
        logger[metadataKey: "aegis.node"] = "\(configuration.nodeID)"
        self.localID = configuration.nodeID
        self.configuration = configuration
        self.group = eventLoopGroup
        self.logger = logger
        let uuid = ClusterUUIDCell(configuration.clusterUUID, onLearned: configuration.onClusterUUIDLearned)
        let settings = OutboundSettings(
            localID: configuration.nodeID, clusterID: configuration.clusterID, clusterUUID: uuid,
            bindAddress: configuration.bindOutboundConnections ? try? SocketAddress(ipAddress: configuration.host, port: 0) : nil,
            maximumFrameSize: configuration.maximumFrameSize, sendQueueLimit: configuration.sendQueueLimit,
            backoff: configuration.backoff, connectTimeout: configuration.connectTimeout,
            handshakeTimeout: configuration.handshakeTimeout, tls: configuration.tls?.certificates, logger: logger)
        var system = SystemRandomNumberGenerator()
        self.connections = ConnectionPool(settings: settings, group: eventLoopGroup, peers: configuration.peers,
                                          seed: configuration.jitterSeed ?? system.next())
        let (stream, continuation) = AsyncStream.makeStream(
            of: [Message].self, bufferingPolicy: .bufferingOldest(configuration.inboundBatchLimit))
        self.inbound = stream
        self.shared = InboundContext(
            localID: configuration.nodeID, clusterID: configuration.clusterID, clusterUUID: uuid,
            maximumFrameSize: configuration.maximumFrameSize, handshakeTimeout: configuration.handshakeTimeout,
            tls: configuration.tls?.certificates,
            acceptsUnauthenticatedClientRequests: configuration.tls == nil && configuration.allowUnauthenticatedClientRequests,
            logger: logger, pool: connections, continuation: continuation)
    }

    /// Starts listening on the configured host and port. Returns the bound address
    /// (useful with port 0).
    ///
    /// - Throws: `TransportError(.notRunning)` when already started or shut down, or
    ///   the socket error when the address cannot be bound.
    @discardableResult
    public func start() async throws -> SocketAddress {
        let canStart = lifecycle.withLockedValue { state -> Bool in
            guard case .idle = state else { return false }
            state = .starting
            return true
        }
        guard canStart else { throw TransportError(.notRunning, "start() may be called once, before shutdown()") }
        let shared = self.shared
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let store = shared.tls { try PeerTLS.addServerHandler(to: channel, store: store) }
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(FrameDecoder(maximumFrameSize: shared.maximumFrameSize)))
                        try channel.pipeline.syncOperations.addHandler(InboundPeerHandler(context: shared))
                    }
                }
                .bind(host: configuration.host, port: configuration.port)
                .get()
        } catch {
            lifecycle.withLockedValue { $0 = .idle }
            throw error
        }
        let stillWanted = lifecycle.withLockedValue { state -> Bool in
            guard case .starting = state else { return false }
            state = .running(channel)
            return true
        }
        guard stillWanted else {
            try? await channel.close()
            throw TransportError(.notRunning, "the transport was shut down while starting")
        }
        let address = channel.localAddress
        logger.info("transport listening", metadata: ["address": "\(address.map { "\($0)" } ?? "?")"])
        guard let address else { return try SocketAddress(ipAddress: configuration.host, port: configuration.port) }
        return address
    }

    /// The address the transport listens on, once started.
    public var localAddress: SocketAddress? {
        lifecycle.withLockedValue { state in
            if case .running(let channel) = state { return channel.localAddress }
            return nil
        }
    }

    /// Hands received batches to `sink` from now on (see `Transport.deliverInbound(to:)`).
    @discardableResult
    public func deliverInbound(to sink: @escaping @Sendable ([Message]) -> Bool) -> Bool {
        shared.sink.withLockedValue { $0 = InboundSink(deliver: sink) }
        return true
    }

    /// Stops listening, closes every connection and finishes `inbound`. Messages still
    /// queued are dropped. Idempotent.
    public func shutdown() async {
        let server = lifecycle.withLockedValue { state -> (any Channel)? in
            defer { state = .shutDown }
            if case .running(let channel) = state { return channel }
            return nil
        }
        if let server { try? await server.close() }
        connections.closeAll()
        for channel in shared.closeAll() { try? await channel.close() }
        shared.sink.withLockedValue { $0 = nil }
        shared.continuation.finish()
    }

    // MARK: Transport

    /// The peers in the address book.
    public var peers: [NodeID] { connections.peerIDs }

    /// Queues messages on their peers' connections.
    public func send(_ messages: [Message]) {
        connections.send(messages)
    }

    /// Counters of both directions.
    public var stats: TransportStats {
        var stats = shared.stats.withLockedValue { $0 }
        connections.addStats(to: &stats)
        return stats
    }

    /// Adds `peer` at `address` to the address book, or moves it there.
    public func setPeer(_ peer: NodeID, address: PeerAddress) {
        connections.setPeer(peer, address: address)
    }

    /// Removes `peer` from the address book: its connection closes and it is refused.
    public func removePeer(_ peer: NodeID) {
        connections.removePeer(peer)
    }
}
