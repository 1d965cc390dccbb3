public import AegisRESP
import NIOConcurrencyHelpers
public import NIOCore
public import NIOPosix
import NIOSSL

/// A client for an Aegis cluster over RESP: connects to any of its nodes, follows the
/// leader, pools and pipelines connections, retries what is safe to retry, and makes
/// writes exactly-once across retries with a client session.
///
/// ```swift
/// let client = try AegisClient(configuration: AegisClientConfiguration(
///     endpoints: [AegisEndpoint(host: "127.0.0.1", port: 7001)]))
/// try await client.set("greeting", "hello")
/// let count = try await client.incr("visits")   // applied once, even if retried
/// await client.shutdown()
/// ```
///
/// Retries: a command refused before it ran (no leader yet, `TRYAGAIN`, a refused
/// connection) is retried on any command, with backoff, within
/// `AegisClientConfiguration.retryWindow`. A command whose outcome is unknown (the
/// connection closed or timed out after it was sent, or `TIMEOUT`) is retried only
/// when that cannot apply it twice: reads, and writes sent through the client
/// session (`exactlyOnceWrites`, the default), which the state machine de-duplicates
/// by session and sequence number (Raft thesis §6.3). Other writes then throw
/// `AegisClientError.unknownOutcome`.
public final class AegisClient: Sendable {
    /// The configuration in force.
    public let configuration: AegisClientConfiguration
    let group: any EventLoopGroup
    let sslContext: NIOSSLContext?
    let state: NIOLockedValueBox<ClientState>

    /// Creates a client; connections are opened on first use.
    ///
    /// - Throws: `AegisClientError.invalidConfiguration` for an empty endpoint list or a
    ///   setting out of range; a TLS configuration NIOSSL refuses.
    public init(configuration: AegisClientConfiguration,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        guard !configuration.endpoints.isEmpty else { throw AegisClientError.invalidConfiguration("no endpoints") }
        guard configuration.connectionsPerNode >= 1, configuration.maxPendingPerConnection >= 1 else {
            throw AegisClientError.invalidConfiguration("connectionsPerNode and maxPendingPerConnection must be at least 1")
        }
        self.configuration = configuration
        self.group = eventLoopGroup
        self.sslContext = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        self.state = NIOLockedValueBox(ClientState())
    }

    /// Closes every connection. Commands in flight fail; later ones throw `.shutDown`.
    public func shutdown() async {
        let connections = state.withLockedValue { state in
            state.isShutDown = true
            defer { state.pools.removeAll() }
            return state.pools.values.flatMap { $0 }
        }
        for connection in connections {
            connection.close()
            try? await connection.channel.closeFuture.get()
        }
    }

    /// What the client has done so far (retries, sessions, connections).
    public var statistics: AegisClientStatistics { state.withLockedValue { $0.statistics } }

    // MARK: Running commands

    /// What a command is, for routing and retries.
    public enum CommandKind: Sendable {
        /// Reads nothing from or changes nothing in the keyspace, or only reads: safe
        /// to retry whatever happened.
        case read
        /// Changes the keyspace: sent through the client session when
        /// `exactlyOnceWrites` is on, otherwise not retried after an unknown outcome.
        case write
    }

    /// Runs one command (name first) and returns the server's reply, error replies
    /// included (`RESPValue.error`); throws only when no reply could be had.
    public func send(_ arguments: [String], kind: CommandKind) async throws(AegisClientError) -> RESPValue {
        try await send(arguments.map { Array($0.utf8) }, kind: kind)
    }

    /// Runs one command given as raw arguments (name first).
    public func send(_ arguments: [[UInt8]], kind: CommandKind) async throws(AegisClientError) -> RESPValue {
        guard !arguments.isEmpty else { throw .invalidConfiguration("an empty command") }
        if kind == .write && configuration.exactlyOnceWrites { return try await sendExactlyOnce(arguments) }
        return try await withRetries(retryUnknownOutcome: kind == .read) { () throws(ConnectionFailure) in
            try await self.connection(preferLeader: true).send([arguments])
        }.first ?? .null
    }

    /// Sends `commands` on one connection in one write (a pipeline) and returns their
    /// replies in order. The pipeline is retried only when it was not sent; it does
    /// not go through the client session (use `send(_:kind:)` for exactly-once writes).
    public func pipeline(_ commands: [[String]]) async throws(AegisClientError) -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        let raw = commands.map { $0.map { Array($0.utf8) } }
        return try await withRetries(retryUnknownOutcome: false) { () throws(ConnectionFailure) in
            try await self.connection(preferLeader: true).send(raw)
        }
    }

    /// Runs a write through the client session: opens one if needed, numbers the
    /// write, and retries it with the same number until it has a reply.
    func sendExactlyOnce(_ arguments: [[UInt8]]) async throws(AegisClientError) -> RESPValue {
        var session = try await openSessionIfNeeded()
        var sequence = state.withLockedValue { $0.nextSequence(in: session) }
        defer { state.withLockedValue { $0.finish(sequence, in: session) } }
        var attempts = 0
        while true {
            let acknowledged = state.withLockedValue { $0.acknowledged(in: session) }
            let command = [Array("AEGIS.EXACTLY".utf8), Array(String(session).utf8), Array(String(sequence).utf8),
                           Array(String(acknowledged).utf8)] + arguments
            let reply = try await withRetries(retryUnknownOutcome: true) { () throws(ConnectionFailure) in
                attempts += 1
                return try await self.connection(preferLeader: true).send([command])
            }.first ?? .null
            guard case .error(let text) = reply, text.hasPrefix("SESSIONEXPIRED") else { return reply }
            // The session is gone. If an earlier attempt may have been applied, a new
            // session could apply it again: the outcome is unknown.
            if attempts > 1 {
                throw .unknownOutcome("the client session expired while the write was being retried: \(text)")
            }
            state.withLockedValue { state in
                state.finish(sequence, in: session)
                state.forgetSession(session)
            }
            session = try await openSessionIfNeeded()
            sequence = state.withLockedValue { $0.nextSequence(in: session) }
            attempts = 0
        }
    }

    /// The session ID, opening a session (`AEGIS.SESSION`) if there is none.
    func openSessionIfNeeded() async throws(AegisClientError) -> UInt64 {
        if let session = state.withLockedValue({ $0.session }) { return session }
        let reply = try await withRetries(retryUnknownOutcome: true) { () throws(ConnectionFailure) in
            try await self.connection(preferLeader: true).send([[Array("AEGIS.SESSION".utf8)]])
        }.first
        guard case .integer(let id)? = reply, id > 0 else {
            if case .error(let text)? = reply { throw .server(text) }
            throw .unexpectedReply("AEGIS.SESSION answered \(String(describing: reply))")
        }
        return state.withLockedValue { state in
            state.statistics.sessionsOpened += 1
            return state.adopt(session: UInt64(id))
        }
    }

    /// Runs `attempt` until it returns replies that are not "try again" errors, within
    /// the retry window. Connection failures are retried when nothing was sent, or
    /// when `retryUnknownOutcome`.
    func withRetries(retryUnknownOutcome: Bool,
                     _ attempt: () async throws(ConnectionFailure) -> [RESPValue]) async throws(AegisClientError) -> [RESPValue] {
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.retryWindow
        var delay = configuration.retryDelay
        var lastError = "no attempt"
        while true {
            if state.withLockedValue({ $0.isShutDown }) { throw .shutDown }
            do {
                let replies = try await attempt()
                if let text = replies.lazy.compactMap(Self.unknownOutcomeError).first, !retryUnknownOutcome {
                    throw AegisClientError.unknownOutcome(text)
                }
                if let text = replies.lazy.compactMap({ Self.retryableError($0, unknownOutcomeToo: retryUnknownOutcome) }).first {
                    lastError = text
                    state.withLockedValue { $0.leader = nil }  // a leader change: rediscover
                } else {
                    return replies
                }
            } catch let error as AegisClientError {
                throw error
            } catch let error as ConnectionFailure {
                lastError = error.reason
                state.withLockedValue { $0.leader = nil }
                if error.maybeSent && !retryUnknownOutcome { throw .unknownOutcome(error.reason) }
            } catch {
                throw .unexpectedReply("\(error)")
            }
            guard clock.now + delay < deadline else {
                throw lastError.hasPrefix("cannot connect") ? .unreachable(lastError) : .server(lastError)
            }
            state.withLockedValue { $0.statistics.retries += 1 }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, configuration.maxRetryDelay)
        }
    }

    /// The text of an error reply that means "nothing was done, try again" (no
    /// leader, leader changing, a full session window), or `nil`.
    static func retryableError(_ reply: RESPValue, unknownOutcomeToo: Bool) -> String? {
        guard case .error(let text) = reply else { return nil }
        for prefix in ["CLUSTERDOWN", "TRYAGAIN", "SESSIONWINDOW", "LOADING", "MASTERDOWN"] where text.hasPrefix(prefix) {
            return text
        }
        return unknownOutcomeToo ? unknownOutcomeError(reply) : nil
    }

    /// The text of an error reply that means "the command may or may not have been
    /// applied" (`TIMEOUT`), or `nil`.
    static func unknownOutcomeError(_ reply: RESPValue) -> String? {
        guard case .error(let text) = reply, text.hasPrefix("TIMEOUT") else { return nil }
        return text
    }
}
