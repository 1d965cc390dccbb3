import AegisHTTP
import AegisOperations
import AegisServer
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// Errors of the command-line tools, printed as they are.
struct ToolError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// No reply within a request's timeout (the connection was closed).
struct RESPRequestTimeout: Error, CustomStringConvertible {
    var after: TimeAmount
    var description: String { "no reply within \(after.nanoseconds / 1_000_000) ms" }
}

/// Splits `host:port` (IPv6 as `[::1]:7001`).
func parseAddress(_ text: String) throws -> (host: String, port: Int) {
    guard let address = HostPort(text) else {
        throw ToolError("'\(text)' is not an address: use host:port, for example 127.0.0.1:7001")
    }
    return (address.host, address.port)
}

/// One RESP connection for the tools: send a command, read its reply.
struct RESPConnection {
    private var replies: NIOAsyncChannelInboundStream<RESPValue>.AsyncIterator
    private let writer: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let channel: any Channel

    /// Connects to `address` (over TLS with `tls`, checking the server's certificate
    /// names the address), authenticates with `password` (as `user` when given) if
    /// given, runs `body` and closes the connection.
    static func with<Result: Sendable>(_ address: String, password: String?, user: String? = nil, tls: NIOSSLContext? = nil,
                                       connectTimeout: TimeAmount = .seconds(5),
                                       _ body: (inout RESPConnection) async throws -> Result) async throws -> Result {
        let (host, port) = try parseAddress(address)
        let channel: NIOAsyncChannel<RESPValue, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(connectTimeout)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls { try channel.pipeline.syncOperations.addTLSClientHandler(context: tls, host: host) }
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPValueDecoder()))
                        return try NIOAsyncChannel<RESPValue, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw ToolError("cannot connect to \(address): \(error). Is the node running (aegis dev starts one on \(DevDefaults.respAddress))?")
        }
        let underlying = channel.channel
        return try await channel.executeThenClose { inbound, outbound in
            var connection = RESPConnection(replies: inbound.makeAsyncIterator(), writer: outbound, channel: underlying)
            if let password {
                let reply = try await connection.call(["AUTH"] + (user.map { [$0] } ?? []) + [password])
                if case .error(let text) = reply { throw ToolError("authentication failed: \(text)") }
            }
            return try await body(&connection)
        }
    }

    /// Sends one command and returns its reply.
    mutating func call(_ arguments: [String]) async throws -> RESPValue {
        var buffer = ByteBuffer()
        buffer.writeRESPHeader(UInt8(ascii: "*"), Int64(arguments.count))
        for argument in arguments { buffer.writeRESPBulk(Array(argument.utf8)) }
        try await writer.write(buffer)
        return try await next()
    }

    /// Sends one command and returns its reply; when no reply came within `timeout`
    /// the connection is closed (a reply cannot be matched to its request after that)
    /// and `RESPRequestTimeout` is thrown.
    mutating func call(_ arguments: [String], timeout: TimeAmount) async throws -> RESPValue {
        let fired = NIOLockedValueBox(false)
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            fired.withLockedValue { $0 = true }
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            return try await call(arguments)
        } catch {
            if fired.withLockedValue({ $0 }) { throw RESPRequestTimeout(after: timeout) }
            throw error
        }
    }

    /// The next value the server sends (a reply, or a pushed message).
    mutating func next() async throws -> RESPValue {
        guard let reply = try await replies.next() else { throw ToolError("the server closed the connection") }
        return reply
    }
}

/// A reply as redis-cli would print it.
func render(_ value: RESPValue, indent: String = "") -> String {
    switch value {
    case .simpleString(let text): return text
    case .error(let text): return "(error) \(text)"
    case .integer(let number): return "(integer) \(number)"
    case .bulkString, .verbatimString: return value.text ?? ""
    case .null: return "(nil)"
    case .boolean(let flag): return flag ? "(true)" : "(false)"
    case .double(let number): return "(double) \(number)"
    case .bigNumber(let digits): return "(big number) \(digits)"
    case .array(let elements), .set(let elements), .push(let elements):
        if elements.isEmpty { return "(empty array)" }
        return elements.enumerated().map { "\(indent)\($0.offset + 1)) \(render($0.element, indent: indent + "   "))" }.joined(separator: "\n")
    case .map(let entries):
        return entries.enumerated().map { "\(indent)\($0.offset + 1)# \(render($0.element.key)) => \(render($0.element.value, indent: indent + "   "))" }
            .joined(separator: "\n")
    }
}
