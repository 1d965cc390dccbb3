internal import AegisRaft
internal import Logging
internal import NIOConcurrencyHelpers
internal import NIOCore

/// The connecting side of a peer connection: sends the handshake, waits for the answer,
/// then reports the connection ready to its `PeerConnection`. It never receives messages.
final class OutboundPeerHandler: ChannelInboundHandler {
    typealias InboundIn = ReceivedFrame
    typealias OutboundOut = ByteBuffer

    private let peer: PeerConnection
    private let generation: UInt64
    private let handshake: Handshake
    private var handshakeTimeout: Scheduled<Void>?
    private var accepted = false

    init(peer: PeerConnection, generation: UInt64, handshake: Handshake) {
        self.peer = peer
        self.generation = generation
        self.handshake = handshake
    }

    func channelActive(context: ChannelHandlerContext) {
        peer.channelActive(generation: generation, channel: context.channel)
        var buffer = context.channel.allocator.buffer(capacity: 64)
        buffer.writeHandshakeFrame(handshake)
        context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
        let channel = context.channel
        handshakeTimeout = context.eventLoop.scheduleTask(in: .nanoseconds(peer.settings.handshakeTimeout.nanoseconds)) {
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let received = Self.unwrapInboundIn(data)
        switch received.frame {
        case .handshakeAccepted where !accepted:
            accepted = true
            handshakeTimeout?.cancel()
            peer.handshakeAccepted(generation: generation, channel: context.channel)
        case .handshakeRefused(let error):
            peer.settings.logger.info("peer refused the handshake", metadata: [
                "peer": "\(handshake.to)", "code": "\(error.code.rawValue)", "reason": "\(error.message)",
            ])
            context.close(promise: nil)
        default:
            peer.settings.logger.info("peer broke the protocol: unexpected frame on an outbound connection",
                                      metadata: ["peer": "\(handshake.to)"])
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && accepted { peer.writable() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimeout?.cancel()
        peer.connectionLost(generation: generation, reason: accepted ? "connection closed" : "closed during handshake")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        peer.settings.logger.debug("outbound connection error", metadata: ["peer": "\(handshake.to)", "error": "\(error)"])
        context.close(promise: nil)
    }
}

/// What the accepting side of a transport shares between its connections.
final class InboundContext: Sendable {
    let localID: NodeID
    let clusterID: String
    let clusterUUID: ClusterUUIDCell
    let maximumFrameSize: Int
    let handshakeTimeout: Duration
    let logger: Logger
    let pool: ConnectionPool
    let continuation: AsyncStream<[Message]>.Continuation
    let stats = NIOLockedValueBox(TransportStats())
    /// Accepted connections, closed at shutdown; `nil` once shut down.
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]?>([:])

    init(localID: NodeID, clusterID: String, clusterUUID: ClusterUUIDCell, maximumFrameSize: Int, handshakeTimeout: Duration, logger: Logger,
         pool: ConnectionPool, continuation: AsyncStream<[Message]>.Continuation) {
        self.localID = localID
        self.clusterID = clusterID
        self.clusterUUID = clusterUUID
        self.maximumFrameSize = maximumFrameSize
        self.handshakeTimeout = handshakeTimeout
        self.logger = logger
        self.pool = pool
        self.continuation = continuation
    }

    /// Why `handshake` must be refused, or `nil` to accept it.
    func refusal(of handshake: Handshake) -> TransportError? {
        if handshake.protocolVersion != WireFormat.protocolVersion {
            return TransportError(.unsupportedProtocol,
                                  "protocol version \(handshake.protocolVersion) is not supported (expected \(WireFormat.protocolVersion))")
        }
        if handshake.clusterID != clusterID {
            return TransportError(.clusterMismatch, "cluster '\(handshake.clusterID)' is not this node's cluster '\(clusterID)'")
        }
        if handshake.to != localID {
            return TransportError(.wrongDestination, "this is node '\(localID)', not '\(handshake.to)'")
        }
        if !pool.contains(handshake.from) {
            return TransportError(.unknownPeer, "node '\(handshake.from)' is not in the address book of '\(localID)'")
        }
        if let refusal = clusterUUID.admit(handshake.clusterUUID) {
            return TransportError(.clusterMismatch, refusal)
        }
        return nil
    }

    /// Hands a batch to the consumer of `inbound`.
    func deliver(_ batch: [Message], bytes: Int) {
        // Counted before the yield, so the consumer never sees more than was counted.
        stats.withLockedValue { stats in
            stats.bytesReceived += UInt64(bytes)
            stats.messagesReceived += UInt64(batch.count)
        }
        if case .enqueued = continuation.yield(batch) {} else {
            stats.withLockedValue { stats in
                stats.messagesReceived -= UInt64(batch.count)
                stats.inboundDropped += UInt64(batch.count)
            }
        }
    }

    func count(_ update: (inout TransportStats) -> Void) {
        stats.withLockedValue { update(&$0) }
    }

    /// Records an accepted connection; returns `false` (and the caller closes it) after shutdown.
    func register(_ channel: any Channel) -> Bool {
        channels.withLockedValue { channels in
            guard channels != nil else { return false }
            channels?[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func unregister(_ channel: any Channel) {
        _ = channels.withLockedValue { $0?.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Stops accepting and returns the open connections to be closed.
    func closeAll() -> [any Channel] {
        channels.withLockedValue { channels in
            defer { channels = nil }
            return channels.map { Array($0.values) } ?? []
        }
    }
}

/// The accepting side of a peer connection: validates the handshake, then checks and
/// batches the messages of each read and delivers them once per read.
final class InboundPeerHandler: ChannelInboundHandler {
    typealias InboundIn = ReceivedFrame
    typealias OutboundOut = ByteBuffer

    private enum State {
        case awaitingHandshake
        case established(peer: NodeID)
        case closing
    }

    private let shared: InboundContext
    private var state = State.awaitingHandshake
    private var batch: [Message] = []
    private var batchBytes = 0
    private var handshakeTimeout: Scheduled<Void>?

    init(context: InboundContext) {
        self.shared = context
    }

    func channelActive(context: ChannelHandlerContext) {
        guard shared.register(context.channel) else {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        let logger = shared.logger
        handshakeTimeout = context.eventLoop.scheduleTask(in: .nanoseconds(shared.handshakeTimeout.nanoseconds)) {
            logger.info("closed a connection that sent no handshake in time",
                        metadata: ["remote": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"])
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let received = Self.unwrapInboundIn(data)
        switch (state, received.frame) {
        case (.established(let peer), .message(let message)):
            guard message.from == peer, message.to == shared.localID else {
                fail(context: context, "message from '\(message.from)' to '\(message.to)' on the connection of '\(peer)'")
                return
            }
            batch.append(message)
            batchBytes += received.size
        case (.awaitingHandshake, .handshake(let handshake)):
            handshakeTimeout?.cancel()
            var buffer = context.channel.allocator.buffer(capacity: 64)
            if let refusal = shared.refusal(of: handshake) {
                state = .closing
                shared.count { $0.handshakesRefused += 1 }
                shared.logger.info("refused a peer connection", metadata: [
                    "peer": "\(handshake.from)", "cluster": "\(handshake.clusterID)",
                    "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(refusal.message)",
                ])
                buffer.writeHandshakeRefusedFrame(refusal)
                context.writeAndFlush(Self.wrapOutboundOut(buffer)).whenComplete { [channel = context.channel] _ in
                    channel.close(promise: nil)
                }
            } else {
                state = .established(peer: handshake.from)
                shared.logger.debug("accepted a peer connection", metadata: ["peer": "\(handshake.from)"])
                buffer.writeHandshakeAcceptedFrame()
                context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
            }
        case (.closing, _):
            return
        default:
            fail(context: context, "unexpected \(received.frame.name) frame")
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushBatch()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimeout?.cancel()
        flushBatch()
        shared.unregister(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let codecError = error as? CodecError {
            fail(context: context, "malformed frame: \(codecError)")
        } else {
            shared.logger.debug("inbound connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    private func flushBatch() {
        guard !batch.isEmpty else { return }
        shared.deliver(batch, bytes: batchBytes)
        batch = []
        batchBytes = 0
    }

    /// Closes the connection for a protocol violation; messages already checked are delivered.
    private func fail(context: ChannelHandlerContext, _ reason: String) {
        if case .closing = state { return }
        let peer: String
        if case .established(let id) = state { peer = id.rawValue } else { peer = "?" }
        state = .closing
        handshakeTimeout?.cancel()
        flushBatch()
        shared.count { $0.protocolErrors += 1 }
        shared.logger.info("closed a peer connection that broke the protocol", metadata: [
            "peer": "\(peer)", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(reason)",
        ])
        context.close(promise: nil)
    }
}

extension Frame {
    /// A short name for logs.
    var name: String {
        switch self {
        case .message(let message): return "\(message.type)"
        case .handshake: return "handshake"
        case .handshakeAccepted: return "handshake-accepted"
        case .handshakeRefused: return "handshake-refused"
        }
    }
}
