public import AegisRaft

/// Moves messages between the nodes of a cluster.
///
/// Delivery is best effort, as Raft expects: a message may be lost (a peer is down, a
/// queue is full, a link is cut) but is never corrupted, and messages from one sender
/// to one receiver arrive in the order they were sent. Sending never blocks and never
/// throws; what cannot be delivered is dropped and counted in `stats`.
public protocol Transport: Sendable {
    /// The node this transport belongs to.
    var localID: NodeID { get }

    /// The receive side: messages from peers, one array per batch that arrived
    /// together. Meant for a single consumer (the node runtime), which should drain it
    /// continuously; batches beyond the transport's inbound limit are dropped and
    /// counted. The stream finishes when the transport shuts down.
    var inbound: AsyncStream<[Message]> { get }

    /// The peers this transport can address (excluding `localID`).
    var peers: [NodeID] { get }

    /// Queues each message for its `to` node. Messages to the same peer keep their
    /// order and are written together (one flush per batch).
    func send(_ messages: [Message])

    /// A snapshot of the transport's counters.
    var stats: TransportStats { get }

    /// Asks the transport to hand every batch it receives from now on to `sink`, on
    /// the thread that received it, instead of yielding it to `inbound`: the consumer
    /// then takes batches without a task of its own in between (one thread wake less
    /// per batch). `sink` returns `false` when it dropped the batch (its queue is
    /// full), which is counted as `inboundDropped`. Batches received before the call
    /// stay in `inbound`, so a consumer keeps draining it too, and those may reach it
    /// after batches given to `sink` (Raft tolerates reordering; only a node that
    /// received messages before its consumer existed sees it).
    ///
    /// - Returns: `false` when this transport delivers only through `inbound` (the
    ///   default); `sink` is then never called.
    @discardableResult
    func deliverInbound(to sink: @escaping @Sendable ([Message]) -> Bool) -> Bool
}

extension Transport {
    /// Delivers only through `inbound`.
    @discardableResult
    public func deliverInbound(to sink: @escaping @Sendable ([Message]) -> Bool) -> Bool { false }
}

extension Transport {
    /// Queues one message for its `to` node.
    public func send(_ message: Message) {
        send([message])
    }

    /// Queues `payload` for `peer`, from this node.
    public func send(_ payload: MessagePayload, to peer: NodeID) {
        send([Message(from: localID, to: peer, payload: payload)])
    }

    /// Queues one Raft message for its `to` node.
    public func send(_ message: RaftMessage) {
        send([Message(message)])
    }

    /// Queues Raft messages (for example `Ready.messages`), each for its `to` node.
    public func send(_ messages: [RaftMessage]) {
        send(messages.map(Message.init))
    }

    /// Queues `payload` for every peer. Returns the number of peers addressed.
    @discardableResult
    public func broadcast(_ payload: MessagePayload) -> Int {
        let targets = peers
        send(targets.map { Message(from: localID, to: $0, payload: payload) })
        return targets.count
    }
}

/// Counters of one peer link (outbound side).
public struct PeerStats: Sendable, Hashable {
    /// Messages handed to the network for this peer.
    public var messagesSent: UInt64 = 0
    /// Bytes handed to the network for this peer (frames, length prefixes included).
    public var bytesSent: UInt64 = 0
    /// Messages for this peer that were dropped (queue full, link cut, oversized, closed).
    public var messagesDropped: UInt64 = 0
    /// Messages waiting in the send queue.
    public var queued: Int = 0
    /// Connection attempts after the first one.
    public var reconnects: UInt64 = 0
    /// Whether a connection is established (handshake accepted).
    public var isConnected: Bool = false
    /// Outbound TLS handshakes that failed, or whose certificate did not name this peer.
    public var tlsFailures: UInt64 = 0

    /// Creates zeroed counters.
    public init() {}
}

/// Counters of a transport. Totals cover every peer.
public struct TransportStats: Sendable, Hashable {
    /// Messages handed to the network.
    public var messagesSent: UInt64 = 0
    /// Bytes handed to the network.
    public var bytesSent: UInt64 = 0
    /// Messages dropped on the send side (queue full, unknown peer, link cut, oversized).
    public var messagesDropped: UInt64 = 0
    /// Messages received and delivered to `inbound` (or to the sink, see `deliverInbound(to:)`).
    public var messagesReceived: UInt64 = 0
    /// Bytes received in frames.
    public var bytesReceived: UInt64 = 0
    /// Received messages dropped because the consumer of `inbound` fell behind (or the
    /// sink refused them).
    public var inboundDropped: UInt64 = 0
    /// Connection attempts after the first one, summed over peers.
    public var reconnects: UInt64 = 0
    /// Inbound handshakes refused (other cluster, unknown node, wrong destination,
    /// a TLS certificate that does not name the claimed node).
    public var handshakesRefused: UInt64 = 0
    /// Inbound connections whose TLS handshake failed (no or untrusted client
    /// certificate, a client that speaks no TLS).
    public var tlsHandshakesFailed: UInt64 = 0
    /// Client requests and responses dropped because they arrived on a connection whose
    /// peer is not authenticated (see `TCPTransport.Configuration.allowUnauthenticatedClientRequests`).
    public var clientRequestsRefused: UInt64 = 0
    /// Inbound connections closed for malformed frames or protocol violations.
    public var protocolErrors: UInt64 = 0
    /// Per-peer counters of the send side.
    public var peers: [NodeID: PeerStats] = [:]

    /// Creates zeroed counters.
    public init() {}
}
