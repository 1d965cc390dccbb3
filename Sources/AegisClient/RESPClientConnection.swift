import AegisHTTP
import AegisRESP

import NIOCore
import NIOPosix
import NIOSSL

/// One RESP connection: commands written in order, replies matched to them in order
/// (pipelining), a bounded number in flight, and a reply deadline after which the
/// connection is closed (the replies can no longer be matched).
final class RESPClientConnection: Sendable {
    let channel: any Channel
    let endpoint: AegisEndpoint

    private init(channel: any Channel, endpoint: AegisEndpoint) {
        self.channel = channel
        self.endpoint = endpoint
    }

    /// Adds TLS (when configured) and the RESP decoder to a new channel's pipeline.
    static func addDecoding(_ channel: any Channel, endpoint: AegisEndpoint, sslContext: NIOSSLContext?) throws {
        if let sslContext {
            try channel.pipeline.syncOperations.addTLSClientHandler(context: sslContext, host: endpoint.host)
        }
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPValueDecoder()))
    }

    static func bootstrap(_ configuration: AegisClientConfiguration, group: any EventLoopGroup) -> ClientBootstrap {
        ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
    }

    /// Connects a streaming connection (for a watch): every value the server sends is
    /// read in order, with back-pressure; nothing is matched to requests.
    static func connectStream(to endpoint: AegisEndpoint, configuration: AegisClientConfiguration, sslContext: NIOSSLContext?,
                              group: any EventLoopGroup) async throws -> NIOAsyncChannel<RESPValue, ByteBuffer> {
        try await bootstrap(configuration, group: group).connect(host: endpoint.host, port: endpoint.port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try addDecoding(channel, endpoint: endpoint, sslContext: sslContext)
                return try NIOAsyncChannel<RESPValue, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    }

    /// One command as RESP bytes.
    static func encode(_ arguments: [String]) -> ByteBuffer { encode(arguments.map { Array($0.utf8) }) }

    /// One command as RESP bytes.
    static func encode(_ arguments: [[UInt8]]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeRESPHeader(UInt8(ascii: "*"), Int64(arguments.count))
        for argument in arguments { buffer.writeRESPBulk(argument) }
        return buffer
    }

    /// Connects, sets up TLS and authenticates.
    static func connect(to endpoint: AegisEndpoint, configuration: AegisClientConfiguration,
                        sslContext: NIOSSLContext?, group: any EventLoopGroup) async throws(ConnectionFailure) -> RESPClientConnection {
        let maxPending = configuration.maxPendingPerConnection
        let timeout = TimeAmount(configuration.requestTimeout)
        let channel: any Channel
        do {
            channel = try await bootstrap(configuration, group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try addDecoding(channel, endpoint: endpoint, sslContext: sslContext)
                        try channel.pipeline.syncOperations.addHandler(
                            RESPClientHandler(maxPending: maxPending, timeout: timeout))
                    }
                }
                .connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            throw ConnectionFailure(maybeSent: false, reason: "cannot connect to \(endpoint): \(error)")
        }
        let connection = RESPClientConnection(channel: channel, endpoint: endpoint)
        if let password = configuration.password {
            let command = ["AUTH"] + (configuration.username.map { [$0] } ?? []) + [password]
            let reply = try await connection.send([command.map { Array($0.utf8) }])
            if case .error(let text)? = reply.first {
                connection.close()
                throw ConnectionFailure(maybeSent: false, reason: "authentication with \(endpoint) failed: \(text)")
            }
        }
        return connection
    }

    /// `true` while the connection can take commands.
    var isActive: Bool { channel.isActive }

    /// Sends `commands` in one write and returns their replies, in order.
    func send(_ commands: [[[UInt8]]]) async throws(ConnectionFailure) -> [RESPValue] {
        var buffer = channel.allocator.buffer(capacity: commands.reduce(16) { $0 + $1.reduce(16) { $0 + $1.count + 16 } })
        for command in commands {
            buffer.writeRESPHeader(UInt8(ascii: "*"), Int64(command.count))
            for argument in command { buffer.writeRESPBulk(argument) }
        }
        let promise = channel.eventLoop.makePromise(of: [RESPValue].self)
        channel.writeAndFlush(RESPClientRequest(bytes: buffer, replies: commands.count, promise: promise), promise: nil)
        do {
            return try await promise.futureResult.get()
        } catch let failure as ConnectionFailure {
            throw failure
        } catch {
            throw ConnectionFailure(maybeSent: true, reason: "\(error)")
        }
    }

    /// Closes the connection; commands in flight fail with an unknown outcome.
    func close() {
        channel.close(promise: nil)
    }
}

/// Commands written together and the promise of their replies.
struct RESPClientRequest: Sendable {
    var bytes: ByteBuffer
    var replies: Int
    var promise: EventLoopPromise<[RESPValue]>
}

/// Matches replies to requests in order; fails everything in flight when the
/// connection closes or a reply is late.
final class RESPClientHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RESPClientRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var request: RESPClientRequest
        var received: [RESPValue] = []
        var deadline: Scheduled<Void?>?
    }

    private var pending = CircularBuffer<Pending>()
    private var pendingReplies = 0
    private let maxPending: Int
    private let timeout: TimeAmount
    private var failure: ConnectionFailure?

    init(maxPending: Int, timeout: TimeAmount) {
        self.maxPending = maxPending
        self.timeout = timeout
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failure {
            request.promise.fail(ConnectionFailure(maybeSent: false, reason: failure.reason))
            return
        }
        guard pendingReplies + request.replies <= maxPending else {
            request.promise.fail(AegisClientError.tooManyPendingRequests(maxPending))
            return
        }
        pendingReplies += request.replies
        let milliseconds = timeout.nanoseconds / 1_000_000
        let deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            self?.fail(context: context, ConnectionFailure(maybeSent: true, reason: "no reply within \(milliseconds) ms"))
        }
        pending.append(Pending(request: request, deadline: deadline))
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        guard !pending.isEmpty else {
            fail(context: context, ConnectionFailure(maybeSent: true, reason: "a reply arrived for no command"))
            return
        }
        pending[pending.startIndex].received.append(value)
        pendingReplies -= 1
        if pending[pending.startIndex].received.count == pending[pending.startIndex].request.replies {
            let done = pending.removeFirst()
            done.deadline?.cancel()
            done.request.promise.succeed(done.received)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(context: context, ConnectionFailure(maybeSent: true, reason: "the connection closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, ConnectionFailure(maybeSent: true, reason: "connection error: \(error)"))
    }

    /// Fails every command in flight and closes the connection.
    private func fail(context: ChannelHandlerContext, _ error: ConnectionFailure) {
        if failure == nil { failure = error }
        let failed = pending
        pending.removeAll()
        pendingReplies = 0
        for entry in failed {
            entry.deadline?.cancel()
            entry.request.promise.fail(error)
        }
        context.close(promise: nil)
    }
}
