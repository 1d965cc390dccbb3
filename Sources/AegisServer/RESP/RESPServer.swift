public import CoreMetrics
public import Logging
import NIOConcurrencyHelpers
public import NIOCore
public import NIOPosix
public import NIOSSL
public import ServiceLifecycle

/// The RESP (Redis protocol) server: accepts client connections and runs their
/// commands against a `KVBackend`.
///
/// Run it in a `ServiceGroup`. On graceful shutdown it stops accepting connections,
/// stops reading from open ones, answers the commands already received and closes.
///
/// ```swift
/// let server = RESPServer(configuration: .init(port: 7001), backend: node, logger: logger)
/// let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
public struct RESPServer: Service {
    private let context: RESPServerContext
    private let tls: (@Sendable () throws -> NIOSSLContext)?
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let onListening: @Sendable (SocketAddress) async -> Void
    private let onPlaintextListening: @Sendable (SocketAddress) async -> Void

    /// Creates a server.
    ///
    /// - Parameters:
    ///   - configuration: where to listen, the password and the limits.
    ///   - backend: what runs the commands.
    ///   - acl: the users (`ACL SETUSER`, `AUTH user password`); by default only
    ///     `default`, with `configuration.password`.
    ///   - tls: with TLS, the server context for each new connection (called per
    ///     connection, so certificates reloaded on SIGHUP apply to the next one);
    ///     `configuration.plaintextHost` then adds a plaintext listener.
    ///   - eventLoopGroup: the event loops for the connections.
    ///   - logger: where the server logs (connections at debug, failures at info,
    ///     failed authentications at notice, rate-limited).
    ///   - metricsFactory: where the RESP metrics go; the global `MetricsSystem` by default.
    ///   - onListening: called with the bound address once the server listens (useful
    ///     with port 0).
    ///   - onPlaintextListening: the same for the plaintext listener.
    ///   - pubsub: the subscriptions hub; give the one fed by the node's applied log
    ///     (`PubSubHub.observer` as `NodeConfiguration.onApplied`) so that messages reach
    ///     every node's subscribers. `nil`: a hub local to this server.
    public init(configuration: RESPServerConfiguration, backend: any KVBackend, acl: ACLStore? = nil,
                tls: (@Sendable () throws -> NIOSSLContext)? = nil,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger, metricsFactory: (any MetricsFactory)? = nil,
                onListening: @escaping @Sendable (SocketAddress) async -> Void = { _ in },
                onPlaintextListening: @escaping @Sendable (SocketAddress) async -> Void = { _ in },
                pubsub: PubSubHub? = nil) {
        self.context = RESPServerContext(configuration: configuration, backend: backend,
                                         metrics: RESPMetrics(factory: metricsFactory ?? MetricsSystem.factory),
                                         acl: acl, logger: logger, pubsub: pubsub)
        self.tls = tls
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.onListening = onListening
        self.onPlaintextListening = onPlaintextListening
    }

    /// Listens and serves until graceful shutdown or cancellation.
    public func run() async throws {
        let configuration = context.configuration
        var bound = [try await listenOrExplain(host: configuration.host, port: configuration.port, tls: tls)]
        if tls != nil, let plainHost = configuration.plaintextHost {
            bound.append(try await listenOrExplain(host: plainHost, port: configuration.plaintextPort, tls: nil))
        }
        let listeners = bound
        for (index, listener) in listeners.enumerated() {
            let address = listener.channel.localAddress
            logger.info(index == 0 ? "RESP server listening" : "RESP server listening (plaintext)", metadata: [
                "address": "\(address.map { "\($0)" } ?? "?")", "tls": "\(index == 0 && tls != nil)"])
            if let address { await index == 0 ? onListening(address) : onPlaintextListening(address) }
        }
        let nextClientID = NIOLockedValueBox<Int64>(1)
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                for listener in listeners {
                    group.addTask {
                        try await withThrowingDiscardingTaskGroup { connectionsGroup in
                            try await listener.executeThenClose { connections in
                                for try await connection in connections {
                                    let clientID = nextClientID.withLockedValue { id in
                                        defer { id += 1 }
                                        return id
                                    }
                                    let executor = EventLoopTaskExecutor(connection.channel.eventLoop)
                                    connectionsGroup.addTask(executorPreference: executor) {
                                        await serve(connection, clientID: clientID)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            logger.info("RESP server stopping: no new connections; each answers what it read, then closes", metadata: [
                "connections": "\(context.connectedClients.withLockedValue { $0 })"])
            for listener in listeners { listener.channel.close(promise: nil) }
        }
        logger.info("RESP server stopped")
    }

    /// `listen`, with a failure that names the address (a port in use, a host not on this machine).
    private func listenOrExplain(host: String, port: Int, tls: (@Sendable () throws -> NIOSSLContext)?) async throws
        -> NIOAsyncChannel<RESPConnection, Never> {
        do {
            return try await listen(host: host, port: port, tls: tls)
        } catch {
            throw ListenError(what: "clients (RESP)", host: host, port: port, underlying: "\(error)")
        }
    }

    /// Binds one listener; with `tls`, every connection starts with a TLS handshake.
    private func listen(host: String, port: Int, tls: (@Sendable () throws -> NIOSSLContext)?) async throws
        -> NIOAsyncChannel<RESPConnection, Never> {
        let limits = context.configuration.limits
        let budget = context.partialRequests
        return try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: context.configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: try tls()))
                    }
                    let meter = RESPOutputMeter()
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(RESPRequestDecoder(limits: limits, budget: budget)))
                    try channel.pipeline.syncOperations.addHandler(
                        RESPBatchHandler(maxPendingCommands: limits.maxPendingCommands, maxPendingBytes: limits.maxPendingBytes,
                                         meter: meter))
                    let inbox = RESPInbox()
                    try channel.pipeline.syncOperations.addHandler(RESPInboxHandler(inbox: inbox))
                    return RESPConnection(channel: channel, inbox: inbox, meter: meter)
                }
            }
    }

    /// Serves one connection until the client leaves, a protocol error, QUIT, a
    /// limit, or graceful shutdown.
    private func serve(_ connection: RESPConnection, clientID: Int64) async {
        let channel = connection.channel
        defer { channel.close(promise: nil) }
        var logger = self.logger
        logger[metadataKey: "client"] = "\(clientID)"
        logger[metadataKey: "remote"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
        context.metrics.connectionsAccepted.increment()
        let maxClients = context.configuration.limits.maxClients
        let open = context.connectedClients.withLockedValue { count -> Int? in
            guard count < maxClients else { return nil }
            count += 1
            return count
        }
        guard let open else {
            context.metrics.recordLimitClose("max_clients")
            logger.info("refused a client: max number of clients reached", metadata: ["limit": "\(maxClients)"])
            await refuse(channel, with: .error("ERR max number of clients reached"))
            return
        }
        context.metrics.connectionsActive.record(open)
        defer {
            let open = context.connectedClients.withLockedValue { count in
                count -= 1
                return count
            }
            context.metrics.connectionsActive.record(open)
            context.pubsub.remove(clientID)
            context.pubsub.watches.cancel(clientID)
        }
        logger.debug("client connected")
        if let denial = protectedModeDenial(for: channel.remoteAddress) {
            await refuse(channel, with: denial)
            return
        }
        await withGracefulShutdownHandler {
            var session = RESPSession(server: context, clientID: clientID)
            let (meter, hardLimit) = (connection.meter, context.configuration.limits.outputBufferHardLimit)
            session.pushTarget = { value in
                // A subscriber that does not read is disconnected, as Redis does.
                guard meter.queuedBytes <= hardLimit else {
                    channel.close(promise: nil)
                    return
                }
                var buffer = channel.allocator.buffer(capacity: 64)
                buffer.writeRESPValue(value, version: .resp3)  // already shaped for the connection's version
                channel.writeAndFlush(RESPReplies(buffer: buffer, count: 0), promise: nil)
            }
            session.watchTarget = { values in
                // Waits until the kernel took the bytes: a watch reads no more log
                // than its client keeps up with.
                guard channel.isActive, meter.queuedBytes <= hardLimit else { return false }
                var buffer = channel.allocator.buffer(capacity: 256)
                for value in values { buffer.writeRESPValue(value, version: .resp3) }
                do {
                    try await channel.writeAndFlush(RESPReplies(buffer: buffer, count: 0))
                    return true
                } catch {
                    return false
                }
            }
            session.remote = channel.remoteAddress.map { "\($0)" } ?? "?"
            session.remoteHost = channel.remoteAddress?.ipAddress
            var writer = RESPConnectionWriter(channel: channel, meter: connection.meter, limits: context.configuration.limits,
                                              metrics: context.metrics, logger: logger)
            while let batch = await connection.inbox.next() {
                var buffer = channel.allocator.buffer(capacity: 64 * max(1, min(batch.requests.count, 1024)))
                var keepOpen = await session.handle(batch.requests, into: &buffer, output: &writer)
                if let error = batch.protocolError, keepOpen {
                    context.metrics.recordProtocolError()
                    if error.message.hasPrefix("unfinished commands of all clients") {
                        context.metrics.recordLimitClose("partial_requests")
                    }
                    logger.debug("closing connection after a protocol error", metadata: ["error": "\(error)"])
                    session.write(.error("ERR \(error)"), into: &buffer)
                    keepOpen = false
                }
                let sent = await writer.send(&buffer, replies: &session.unsentReplies)
                if !keepOpen || !sent { return }
            }
        } onGracefulShutdown: {
            // Stop reading: the commands already received are answered, then the
            // inbox ends and the connection closes.
            let promise = channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenFailure { _ in channel.close(promise: nil) }
            channel.close(mode: .input, promise: promise)
        }
        logger.debug("client disconnected")
    }

    /// Answers a connection that is not served with one error (the caller closes it).
    private func refuse(_ channel: any Channel, with error: RESPValue) async {
        var buffer = channel.allocator.buffer(capacity: 64)
        buffer.writeRESPValue(error, version: .resp2)
        do {
            try await channel.writeAndFlush(RESPReplies(buffer: buffer, count: 0))
        } catch {
            logger.debug("could not answer a refused client", metadata: ["error": "\(error)"])
        }
    }

    /// Redis's protected mode: while the default user needs no password, only loopback
    /// clients are served.
    private func protectedModeDenial(for remote: SocketAddress?) -> RESPValue? {
        let configuration = context.configuration
        guard configuration.protectedMode, let remote else { return nil }
        guard let defaultUser = context.acl.user(named: "default"), defaultUser.enabled, defaultUser.noPassword else {
            return nil
        }
        if remote.isLoopback { return nil }
        return .error("DENIED Aegis is running in protected mode: no password is configured, so only loopback clients are served. "
            + "Configure a password (clients then send AUTH), or turn protected mode off if the network is trusted.")
    }
}

/// A connection as the server's accept loop receives it.
struct RESPConnection: Sendable {
    let channel: any Channel
    /// Its batches, as the pipeline decodes them.
    let inbox: RESPInbox
    /// The connection's unread reply bytes, counted by its `RESPBatchHandler`.
    let meter: RESPOutputMeter
}

extension SocketAddress {
    /// `true` for 127.0.0.0/8, ::1 and Unix domain sockets.
    var isLoopback: Bool {
        switch self {
        case .v4(let address):
            return UInt32(bigEndian: address.address.sin_addr.s_addr) >> 24 == 127
        case .v6:
            let text = ipAddress ?? ""
            return text == "::1" || text.hasPrefix("::ffff:127.")
        case .unixDomainSocket:
            return true
        }
    }
}
