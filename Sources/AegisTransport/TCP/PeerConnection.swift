internal import AegisRaft
internal import AegisTLS
internal import Logging
internal import NIOConcurrencyHelpers
internal import NIOCore
internal import NIOPosix

/// Settings shared by the outbound connections of one transport.
struct OutboundSettings: Sendable {
    var localID: NodeID
    var clusterID: String
    var clusterUUID: ClusterUUIDCell
    /// The local address outbound sockets bind to (port 0), so that a node's traffic
    /// leaves from its own loopback address; `nil` lets the system choose.
    var bindAddress: SocketAddress?
    var maximumFrameSize: Int
    var sendQueueLimit: Int
    var backoff: Backoff
    var connectTimeout: Duration
    var handshakeTimeout: Duration
    /// The node's certificates for mutual TLS, or `nil` for plaintext.
    var tls: CertificateStore?
    var logger: Logger

    /// A write is issued once this many bytes are encoded; the flush comes at the end
    /// of the batch.
    static let writeChunkSize = 1 << 20
}

/// The outbound connection to one peer: a bounded queue of messages and a connection
/// that is opened lazily, handshaken, and re-opened with jittered exponential backoff.
///
/// All mutable state sits behind one lock; senders on any thread append to the queue
/// and, at most once per batch, schedule a drain on the connection's event loop, which
/// encodes the whole queue into one buffer and flushes once.
final class PeerConnection: Sendable {
    enum Connection {
        case idle
        case connecting(generation: UInt64, channel: (any Channel)?)
        case ready(generation: UInt64, channel: any Channel)
        case backingOff(Scheduled<Void>)
        case closed
    }

    struct State {
        var address: PeerAddress
        var queue = CircularBuffer<Message>(initialCapacity: 64)
        var connection = Connection.idle
        /// Identifies the current connection attempt; events of older attempts are ignored.
        var generation: UInt64 = 0
        /// Invariant: `true` while a drain task is scheduled on the event loop.
        var drainScheduled = false
        /// Consecutive failed attempts; reset when a handshake is accepted.
        var failures = 0
        var attempts: UInt64 = 0
        var generator: SplitMix64
        var stats = PeerStats()
    }

    enum Action {
        case none
        case connect(PeerAddress, generation: UInt64)
        case drain(any Channel)
        case close(any Channel)
    }

    let peerID: NodeID
    let eventLoop: any EventLoop
    let settings: OutboundSettings
    private let state: NIOLockedValueBox<State>

    init(peerID: NodeID, address: PeerAddress, eventLoop: any EventLoop, settings: OutboundSettings, seed: UInt64) {
        self.peerID = peerID
        self.eventLoop = eventLoop
        self.settings = settings
        self.state = NIOLockedValueBox(State(address: address, generator: SplitMix64(seed: seed)))
    }

    // MARK: Senders (any thread)

    /// Appends messages to the queue; those beyond the bound are dropped and counted.
    func enqueue(_ messages: some Sequence<Message>) {
        let action = state.withLockedValue { state -> Action in
            if case .closed = state.connection {
                for _ in messages { state.stats.messagesDropped += 1 }
                return .none
            }
            for message in messages {
                if state.queue.count >= settings.sendQueueLimit {
                    state.stats.messagesDropped += 1
                } else {
                    state.queue.append(message)
                }
            }
            return Self.nextAction(&state)
        }
        perform(action)
    }

    /// A snapshot of this link's counters.
    var stats: PeerStats {
        state.withLockedValue { state in
            var stats = state.stats
            stats.queued = state.queue.count
            return stats
        }
    }

    /// The address the peer is reached at.
    var address: PeerAddress {
        state.withLockedValue { $0.address }
    }

    /// Points the link at a new address; an open connection is closed and re-opened.
    func update(address: PeerAddress) {
        let toClose = state.withLockedValue { state -> (any Channel)? in
            guard state.address != address else { return nil }
            state.address = address
            let channel = Self.abandonConnection(&state)
            if case .closed = state.connection { return channel }
            state.connection = .idle
            return channel
        }
        toClose?.close(promise: nil)
        perform(state.withLockedValue { Self.nextAction(&$0) })
    }

    /// Closes the link for good: the queue is dropped and no reconnection happens.
    func close() {
        let toClose = state.withLockedValue { state -> (any Channel)? in
            let channel = Self.abandonConnection(&state)
            state.connection = .closed
            state.stats.messagesDropped += UInt64(state.queue.count)
            state.stats.isConnected = false
            state.queue.removeAll()
            return channel
        }
        toClose?.close(promise: nil)
    }

    // MARK: Connection events (event loop)

    /// The socket of attempt `generation` is connected; the handshake is being sent.
    func channelActive(generation: UInt64, channel: any Channel) {
        let stale = state.withLockedValue { state -> Bool in
            guard case .connecting(let current, _) = state.connection, current == generation else { return true }
            state.connection = .connecting(generation: generation, channel: channel)
            return false
        }
        if stale { channel.close(promise: nil) }
    }

    /// The peer accepted the handshake of attempt `generation`: messages may flow.
    func handshakeAccepted(generation: UInt64, channel: any Channel) {
        let action = state.withLockedValue { state -> Action in
            guard case .connecting(let current, _) = state.connection, current == generation else { return .close(channel) }
            state.connection = .ready(generation: generation, channel: channel)
            state.failures = 0
            state.stats.isConnected = true
            return Self.nextAction(&state)
        }
        settings.logger.debug("connected to peer", metadata: ["peer": "\(peerID)"])
        perform(action)
    }

    /// Attempt `generation` failed or its connection closed: retry after a backoff.
    func connectionLost(generation: UInt64, reason: String) {
        let logged = state.withLockedValue { state -> Bool in
            switch state.connection {
            case .connecting(let current, _) where current == generation, .ready(let current, _) where current == generation:
                state.stats.isConnected = false
                state.failures += 1
                let delay = settings.backoff.delay(afterFailures: state.failures, using: &state.generator)
                let scheduled = eventLoop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) { [self] in
                    retry()
                }
                state.connection = .backingOff(scheduled)
                return true
            default:
                return false
            }
        }
        if logged {
            settings.logger.debug("connection to peer lost", metadata: ["peer": "\(peerID)", "reason": "\(reason)"])
        }
    }

    /// The TLS handshake failed, or the peer's certificate does not name this peer.
    func recordTLSFailure() {
        state.withLockedValue { $0.stats.tlsFailures += 1 }
    }

    /// The channel can take more bytes again.
    func writable() {
        perform(state.withLockedValue { Self.nextAction(&$0) })
    }

    private func retry() {
        let action = state.withLockedValue { state -> Action in
            guard case .backingOff = state.connection else { return .none }
            state.connection = .idle
            return Self.nextAction(&state)
        }
        perform(action)
    }

    // MARK: State transitions

    /// What to do next: connect when idle with messages waiting, drain when connected.
    private static func nextAction(_ state: inout State) -> Action {
        guard !state.queue.isEmpty else { return .none }
        switch state.connection {
        case .idle:
            state.generation += 1
            if state.attempts > 0 { state.stats.reconnects += 1 }
            state.attempts += 1
            state.connection = .connecting(generation: state.generation, channel: nil)
            return .connect(state.address, generation: state.generation)
        case .ready(_, let channel) where !state.drainScheduled:
            state.drainScheduled = true
            return .drain(channel)
        case .ready, .connecting, .backingOff, .closed:
            return .none
        }
    }

    /// Leaves the current connection (bumping the generation so its events are
    /// ignored) and returns its channel, if any, to be closed.
    private static func abandonConnection(_ state: inout State) -> (any Channel)? {
        state.generation += 1
        state.drainScheduled = false
        state.stats.isConnected = false
        switch state.connection {
        case .ready(_, let channel): return channel
        case .connecting(_, let channel): return channel
        case .backingOff(let scheduled):
            scheduled.cancel()
            return nil
        case .idle, .closed: return nil
        }
    }

    private func perform(_ action: Action) {
        switch action {
        case .none: return
        case .connect(let address, let generation): connect(to: address, generation: generation)
        case .drain(let channel): channel.eventLoop.execute { [self] in drain(channel) }
        case .close(let channel): channel.close(promise: nil)
        }
    }

    // MARK: I/O

    private func connect(to address: PeerAddress, generation: UInt64) {
        let handshake = Handshake(clusterID: settings.clusterID, clusterUUID: settings.clusterUUID.current,
                                  from: settings.localID, to: peerID)
        let settings = self.settings
        var bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(settings.connectTimeout.nanoseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: 256 << 10, high: 1 << 20))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let store = settings.tls { try PeerTLS.addClientHandler(to: channel, store: store) }
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(FrameDecoder(maximumFrameSize: settings.maximumFrameSize)))
                    try channel.pipeline.syncOperations.addHandler(
                        OutboundPeerHandler(peer: self, generation: generation, handshake: handshake,
                                            awaitsTLS: settings.tls != nil))
                }
            }
        if let bindAddress = settings.bindAddress {
            bootstrap = bootstrap.bind(to: bindAddress)
        }
        bootstrap.connect(host: address.host, port: address.port).whenFailure { [self] error in
            connectionLost(generation: generation, reason: "connect to \(address) failed: \(error)")
        }
    }

    /// Encodes every queued message into as few buffers as possible, writes them and
    /// flushes once. Runs on the channel's event loop.
    private func drain(_ channel: any Channel) {
        let batch = state.withLockedValue { state -> CircularBuffer<Message>? in
            state.drainScheduled = false
            guard case .ready(_, let current) = state.connection, current === channel,
                  channel.isWritable, !state.queue.isEmpty else { return nil }
            var taken = CircularBuffer<Message>(initialCapacity: 64)
            swap(&taken, &state.queue)
            return taken
        }
        guard let batch else { return }
        var buffer = channel.allocator.buffer(capacity: 4096)
        var sent: UInt64 = 0
        var bytes: UInt64 = 0
        var oversized: UInt64 = 0
        for message in batch {
            let start = buffer.writerIndex
            let size = buffer.writeMessageFrame(message)
            if size - WireFormat.lengthPrefixSize > settings.maximumFrameSize {
                buffer.moveWriterIndex(to: start)
                oversized += 1
                settings.logger.info("dropped a message larger than the maximum frame size", metadata: [
                    "peer": "\(peerID)", "kind": "\(message.type)", "size": "\(size)",
                    "maximumFrameSize": "\(settings.maximumFrameSize)",
                ])
                continue
            }
            sent += 1
            bytes += UInt64(size)
            if buffer.readableBytes >= OutboundSettings.writeChunkSize {
                channel.write(buffer, promise: nil)
                buffer = channel.allocator.buffer(capacity: 4096)
            }
        }
        if buffer.readableBytes > 0 { channel.write(buffer, promise: nil) }
        // Counted before the flush, so a peer never sees more messages than were counted.
        state.withLockedValue { state in
            state.stats.messagesSent += sent
            state.stats.bytesSent += bytes
            state.stats.messagesDropped += oversized
        }
        channel.flush()
    }
}
