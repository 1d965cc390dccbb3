import AegisKV
@testable import AegisServer
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Prometheus
import ServiceLifecycle
import Testing

/// A tiny RESP client for tests: sends raw bytes, reads raw bytes.
struct RawClient {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    static func connect(port: Int) async throws -> RawClient {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return RawClient(channel: channel)
    }

    /// Sends `text` in one write, reads until `expected.utf8.count` bytes arrived and
    /// returns them; also reports whether the server closed the connection afterwards
    /// when `expectClose`.
    func exchange(_ text: String, expectedBytes: Int, expectClose: Bool = false) async throws -> (String, closed: Bool) {
        try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: text))
            var received = ByteBuffer()
            var iterator = inbound.makeAsyncIterator()
            while received.readableBytes < expectedBytes, var chunk = try await iterator.next() {
                received.writeBuffer(&chunk)
            }
            var closed = false
            if expectClose {
                closed = try await iterator.next() == nil
            }
            return (String(buffer: received), closed)
        }
    }
}

/// Runs a RESP server on 127.0.0.1 with an ephemeral port for the duration of `body`,
/// then shuts it down gracefully.
func withRESPServer(backend: FakeBackend, configuration: RESPServerConfiguration = RESPServerConfiguration(port: 0),
                    registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
                    _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
    var configuration = configuration
    configuration.host = "127.0.0.1"
    configuration.port = 0
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let server = RESPServer(configuration: configuration, backend: backend, logger: Logger(label: "test"),
                            metricsFactory: AegisMetrics.factory(recordingInto: registry),
                            onListening: { address in continuation.yield(address.port ?? 0) })
    let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else { throw TestFailure("the server did not report its port") }
        do {
            try await body(port)
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}

@Suite struct RESPServerTests {
    let backend = FakeBackend()

    @Test func test_pipelinedCommands_answeredInOrder() async throws {
        let registry = PrometheusCollectorRegistry()
        try await withRESPServer(backend: backend, registry: registry) { port in
            let client = try await RawClient.connect(port: port)
            let request = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n" + "PING\r\n" + "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
                + "*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n" + "*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n"
            let expected = "+OK\r\n+PONG\r\n$2\r\nv1\r\n-ERR value is not an integer or out of range\r\n$-1\r\n"
            let (reply, _) = try await client.exchange(request, expectedBytes: expected.utf8.count)
            #expect(reply == expected)
        }
        let metrics = registry.emitToString()
        #expect(metrics.contains(#"aegis_resp_commands_total{command="set"} 1"#))
        #expect(metrics.contains(#"aegis_resp_commands_total{command="get"} 2"#))
        #expect(metrics.contains(#"aegis_resp_errors_total{code="ERR"} 1"#))
        #expect(metrics.contains("aegis_resp_connections_total 1"))
    }

    @Test func test_malformedInput_errorReplyThenClose_afterEarlierCommands() async throws {
        try await withRESPServer(backend: backend) { port in
            let client = try await RawClient.connect(port: port)
            let expected = "+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n"
            let (reply, closed) = try await client.exchange("PING\r\n*1\r\n:5\r\n", expectedBytes: expected.utf8.count, expectClose: true)
            #expect(reply == expected)
            #expect(closed)
        }
    }

    @Test func test_bulkOverLimit_isRefusedAndNothingChanges() async throws {
        let configuration = RESPServerConfiguration(limits: RESPLimits(maxBulkLength: 8))
        try await withRESPServer(backend: backend, configuration: configuration) { port in
            let client = try await RawClient.connect(port: port)
            let expected = "-ERR Protocol error: an argument of 9 bytes is over the limit of 8 bytes\r\n"
            let (reply, closed) = try await client.exchange("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$9\r\n123456789\r\n",
                                                            expectedBytes: expected.utf8.count, expectClose: true)
            #expect(reply == expected)
            #expect(closed)
        }
        #expect(await backend.machine.count == 0)
    }

    @Test func test_quit_closesTheConnection() async throws {
        try await withRESPServer(backend: backend) { port in
            let client = try await RawClient.connect(port: port)
            let (reply, closed) = try await client.exchange("QUIT\r\n", expectedBytes: 5, expectClose: true)
            #expect(reply == "+OK\r\n")
            #expect(closed)
        }
    }

    /// Counts the reads that reach the socket.
    final class ReadCounter: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    @Test func test_batchHandler_pendingCommandsLimit_stopsReadingUntilRepliesGoOut() throws {
        let channel = EmbeddedChannel()
        let counter = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPRequestDecoder()))
        try channel.pipeline.syncOperations.addHandler(RESPBatchHandler(maxPendingCommands: 4, maxPendingBytes: 1 << 20))
        try channel.writeInbound(ByteBuffer(string: String(repeating: "PING\r\n", count: 10)))
        let batch = try #require(try channel.readInbound(as: RESPBatch.self))
        #expect(batch.requests.count == 10 && batch.protocolError == nil)  // nothing is dropped or failed
        channel.read()
        #expect(counter.reads == 0)  // held: 10 commands unanswered
        try channel.writeOutbound(RESPReplies(buffer: ByteBuffer(string: "+PONG\r\n"), count: 6))
        #expect(counter.reads == 0)  // still 4 unanswered
        try channel.writeOutbound(RESPReplies(buffer: ByteBuffer(string: "+PONG\r\n"), count: 1))
        #expect(counter.reads == 1)  // under the limit: the held read goes out
        _ = try? channel.finish()
    }

    @Test func test_batchHandler_pendingBytesLimit_stopsReading() throws {
        let channel = EmbeddedChannel()
        let counter = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPRequestDecoder()))
        try channel.pipeline.syncOperations.addHandler(RESPBatchHandler(maxPendingCommands: 100, maxPendingBytes: 10))
        try channel.writeInbound(ByteBuffer(string: "*2\r\n$4\r\nECHO\r\n$8\r\n12345678\r\n"))
        _ = try #require(try channel.readInbound(as: RESPBatch.self))
        channel.read()
        #expect(counter.reads == 0)
        try channel.writeOutbound(RESPReplies(buffer: ByteBuffer(string: "$8\r\n12345678\r\n"), count: 1))
        #expect(counter.reads == 1)
        _ = try? channel.finish()
    }

    @Test func test_batchHandler_groupsOneReadIntoOneBatch() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPRequestDecoder()))
        try channel.pipeline.syncOperations.addHandler(RESPBatchHandler(maxPendingCommands: 100, maxPendingBytes: 1 << 20))
        try channel.writeInbound(ByteBuffer(string: "PING\r\nPING\r\n*1\r\n$4\r\nPI"))
        let batch = try #require(try channel.readInbound(as: RESPBatch.self))
        #expect(batch.requests.count == 2)
        #expect(batch.protocolError == nil)
        try channel.writeInbound(ByteBuffer(string: "NG\r\n"))
        #expect(try channel.readInbound(as: RESPBatch.self)?.requests.count == 1)
        _ = try? channel.finish()
    }

    @Test func test_loopbackDetection_forProtectedMode() throws {
        #expect(try SocketAddress(ipAddress: "127.0.0.1", port: 1).isLoopback)
        #expect(try SocketAddress(ipAddress: "127.8.9.10", port: 1).isLoopback)
        #expect(try SocketAddress(ipAddress: "::1", port: 1).isLoopback)
        #expect(try !SocketAddress(ipAddress: "10.0.0.1", port: 1).isLoopback)
        #expect(try !SocketAddress(ipAddress: "2001:db8::1", port: 1).isLoopback)
    }

    static let redisCLI: String? = ["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: redisCLI != nil, "redis-cli is not installed (apt-get install -y redis-tools); skipping the real-client test"))
    func test_redisCLI_talksToTheServer() async throws {
        let cli = try #require(Self.redisCLI)
        try await withRESPServer(backend: backend) { port in
            func run(_ arguments: String...) -> String {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: cli)
                process.arguments = ["-h", "127.0.0.1", "-p", String(port)] + arguments
                let pipe = Pipe()
                process.standardOutput = pipe
                process.standardError = pipe
                do { try process.run() } catch { return "cannot run redis-cli: \(error)" }
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            #expect(run("PING") == "PONG")
            #expect(run("SET", "greeting", "hello") == "OK")
            #expect(run("GET", "greeting") == "hello")
            #expect(run("SET", "greeting", "bye", "IFEQ", "hello") == "OK")
            #expect(run("INCR", "greeting") == "ERR value is not an integer or out of range")
            #expect(run("--no-raw", "-3", "MGET", "greeting", "nope") == "1) \"bye\"\n2) (nil)")
            #expect(run("DBSIZE") == "1")
            #expect(run("INFO", "replication").contains("aegis_role:leader"))
            #expect(run("INFO", "cluster").contains("# Cluster"))
        }
    }
}
