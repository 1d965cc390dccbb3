internal import AegisRaft
internal import AegisTLS
internal import Logging
internal import NIOConcurrencyHelpers
internal import NIOCore
internal import NIOSSL
internal import NIOTLS

/// The connecting side of a peer connection: sends the handshake, waits for the answer,
/// then reports the connection ready to its `PeerConnection`. It never receives messages.
///
/// With TLS, the handshake is sent only after the TLS handshake, once the peer's
/// certificate (already verified against the cluster CA) is seen to name the node dialled.
final class OutboundPeerHandler: ChannelInboundHandler {
    typealias InboundIn = ReceivedFrame
    typealias OutboundOut = ByteBuffer

    private let peer: PeerConnection
    private let generation: UInt64
    private let handshake: Handshake
    private let awaitsTLS: Bool
    private var handshakeTimeout: Scheduled<Void>?
    private var tlsEstablished = false
    private var accepted = false

    init(peer: PeerConnection, generation: UInt64, handshake: Handshake, awaitsTLS: Bool) {
        self.peer = peer
        self.generation = generation
        self.handshake = handshake
        self.awaitsTLS = awaitsTLS
    }

    func channelActive(context: ChannelHandlerContext) {
        peer.channelActive(generation: generation, channel: context.channel)
        if !awaitsTLS { sendHandshake(context: context) }
        let channel = context.channel
        handshakeTimeout = context.eventLoop.scheduleTask(in: .nanoseconds(peer.settings.handshakeTimeout.nanoseconds)) {
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if awaitsTLS, !tlsEstablished, case TLSUserEvent.handshakeCompleted = event {
            tlsEstablished = true
            let names = PeerTLS.peerNames(context) ?? []
            if names.contains(handshake.to.rawValue) {
                sendHandshake(context: context)
            } else {
                peer.settings.logger.info("refused a peer: its TLS certificate does not name the node dialled", metadata: [
                    "peer": "\(handshake.to)", "certificateNames": "\(names)",
                    "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")",
                    "code": "\(TransportError.Code.identityMismatch.rawValue)",
                ])
                peer.recordTLSFailure()
                context.close(promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func sendHandshake(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        buffer.writeHandshakeFrame(handshake)
        context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
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
        // Before the Aegis handshake is accepted: with TLS 1.3 the server checks the client
        // certificate after the client considers the TLS handshake done, so a refused
        // certificate shows up here as an alert.
        if awaitsTLS, !accepted, PeerTLS.isTLSError(error) {
            peer.settings.logger.info("TLS handshake with peer failed", metadata: [
                "peer": "\(handshake.to)", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)",
            ])
            peer.recordTLSFailure()
        } else {
            peer.settings.logger.debug("outbound connection error", metadata: ["peer": "\(handshake.to)", "error": "\(error)"])
        }
        context.close(promise: nil)
    }
}

/// A consumer's sink for received batches, wrapped so that the lock's generic box
/// stores it as it is: a bare closure in a generic `inout` is re-wrapped in a
/// conversion thunk on every access, and the thunks pile up (one pair per batch,
/// measured: the receive path slowed threefold within seconds).
struct InboundSink: Sendable {
    let deliver: @Sendable ([Message]) -> Bool
}

/// What the accepting side of a transport shares between its connections.
final class InboundContext: Sendable {
    let localID: NodeID
    let clusterID: String
    let clusterUUID: ClusterUUIDCell
    let maximumFrameSize: Int
    let handshakeTimeout: Duration
    /// The node's certificates when peers must use mutual TLS; `nil` for plaintext.
    let tls: CertificateStore?
    /// Whether client requests and responses are taken from unauthenticated (plaintext)
    /// connections.
    let acceptsUnauthenticatedClientRequests: Bool
    let logger: Logger
    let pool: ConnectionPool
    let continuation: AsyncStream<[Message]>.Continuation
    /// Where received batches go instead of `continuation` (`Transport.deliverInbound(to:)`).
    let sink = NIOLockedValueBox<InboundSink?>(nil)
    let stats = NIOLockedValueBox(TransportStats())
    /// Accepted connections, closed at shutdown; `nil` once shut down.
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]?>([:])

    init(localID: NodeID, clusterID: String, clusterUUID: ClusterUUIDCell, maximumFrameSize: Int, handshakeTimeout: Duration,
         tls: CertificateStore?, acceptsUnauthenticatedClientRequests: Bool, logger: Logger,
         pool: ConnectionPool, continuation: AsyncStream<[Message]>.Continuation) {
        self.localID = localID
        self.clusterID = clusterID
        self.clusterUUID = clusterUUID
        self.maximumFrameSize = maximumFrameSize
        self.handshakeTimeout = handshakeTimeout
        self.tls = tls
        self.acceptsUnauthenticatedClientRequests = acceptsUnauthenticatedClientRequests
        self.logger = logger
        self.pool = pool
        self.continuation = continuation
    }

    /// Why `handshake` must be refused, or `nil` to accept it.
    ///
    /// - Parameter certificateNames: with TLS, the names in the peer's CA-verified
    ///   certificate (`nil` when it presented none); ignored without TLS.
    func refusal(of handshake: Handshake, certificateNames: [String]?) -> TransportError? {
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
        // Before the UUID check, which may adopt the peer's UUID.
        if tls != nil {
            guard let certificateNames else {
                return TransportError(.identityMismatch, "the connection of '\(handshake.from)' presented no TLS certificate")
            }
            guard certificateNames.contains(handshake.from.rawValue) else {
                return TransportError(.identityMismatch,
                                      "the TLS certificate names \(certificateNames), not '\(handshake.from)' that the handshake claims")
            }
        }
        if let refusal = clusterUUID.admit(handshake.clusterUUID) {
            return TransportError(.clusterMismatch, refusal)
        }
        return nil
    }

    /// Hands a batch to the sink (`Transport.deliverInbound(to:)`) or else to the
    /// consumer of `inbound`; a batch either refuses is counted as dropped.
    func deliver(_ batch: [Message], bytes: Int) {
        // Counted before the yield, so the consumer never sees more than was counted.
        stats.withLockedValue { stats in
            stats.bytesReceived += UInt64(bytes)
            stats.messagesReceived += UInt64(batch.count)
        }
        let taken: Bool
        if let sink = sink.withLockedValue({ $0 }) {
            taken = sink.deliver(batch)
        } else if case .enqueued = continuation.yield(batch) {
            taken = true
        } else {
            taken = false
        }
        if !taken {
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
///
/// With TLS, the TLS handler in front of it has verified the peer's certificate against
/// the cluster CA before any frame arrives; the handshake is accepted only when that
/// certificate names the handshake's `from`, and the connection is then authenticated.
final class InboundPeerHandler: ChannelInboundHandler {
    typealias InboundIn = ReceivedFrame
    typealias OutboundOut = ByteBuffer

    private enum State {
        case awaitingHandshake
        /// `authenticated`: the peer proved its node ID with a CA-signed certificate.
        case established(peer: NodeID, authenticated: Bool)
        case closing
    }

    private let shared: InboundContext
    private var state = State.awaitingHandshake
    private var batch: [Message] = []
    private var batchBytes = 0
    private var handshakeTimeout: Scheduled<Void>?
    private var tlsEstablished = false
    /// Client messages dropped on this connection (the first one is logged).
    private var clientMessagesRefused = 0

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
        case (.established(let peer, let authenticated), .message(let message)):
            guard message.from == peer, message.to == shared.localID else {
                fail(context: context, "message from '\(message.from)' to '\(message.to)' on the connection of '\(peer)'")
                return
            }
            guard authenticated || shared.acceptsUnauthenticatedClientRequests || !message.isClientTraffic else {
                refuseClientMessage(message, context: context)
                return
            }
            batch.append(message)
            batchBytes += received.size
        case (.awaitingHandshake, .handshake(let handshake)):
            handshakeTimeout?.cancel()
            var buffer = context.channel.allocator.buffer(capacity: 64)
            let certificateNames = shared.tls == nil ? nil : PeerTLS.peerNames(context)
            if let refusal = shared.refusal(of: handshake, certificateNames: certificateNames) {
                state = .closing
                // Logged before counted, so whoever sees the count finds the log line.
                shared.logger.info("refused a peer connection", metadata: [
                    "peer": "\(handshake.from)", "cluster": "\(handshake.clusterID)",
                    "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(refusal.message)",
                    "code": "\(refusal.code.rawValue)",
                ])
                shared.count { $0.handshakesRefused += 1 }
                buffer.writeHandshakeRefusedFrame(refusal)
                context.writeAndFlush(Self.wrapOutboundOut(buffer)).whenComplete { [channel = context.channel] _ in
                    channel.close(promise: nil)
                }
            } else {
                state = .established(peer: handshake.from, authenticated: shared.tls != nil)
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

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { tlsEstablished = true }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let codecError = error as? CodecError {
            fail(context: context, "malformed frame: \(codecError)")
        } else if shared.tls != nil, !tlsEstablished, PeerTLS.isTLSError(error) {
            // No client certificate, one from another CA, or no TLS at all.
            state = .closing
            handshakeTimeout?.cancel()
            shared.logger.info("refused a peer connection: TLS handshake failed", metadata: [
                "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)",
            ])
            shared.count { $0.tlsHandshakesFailed += 1 }
            context.close(promise: nil)
        } else {
            shared.logger.debug("inbound connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    /// Drops a client request or response from a peer that is not authenticated.
    private func refuseClientMessage(_ message: Message, context: ChannelHandlerContext) {
        clientMessagesRefused += 1
        if clientMessagesRefused == 1 {
            shared.logger.info("dropped a client request from an unauthenticated peer connection (use TLS between peers)", metadata: [
                "peer": "\(message.from)", "kind": "\(message.type)",
                "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")",
            ])
        }
        shared.count { $0.clientRequestsRefused += 1 }
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
        if case .established(let id, _) = state { peer = id.rawValue } else { peer = "?" }
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

extension Message {
    /// Whether this is client traffic forwarded between members (a request or its answer),
    /// which only authenticated peers may send.
    var isClientTraffic: Bool {
        switch payload {
        case .clientRequest, .clientResponse: return true
        default: return false
        }
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
