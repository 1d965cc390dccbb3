import AegisKV
import AegisServer
import AegisTLS
import Foundation
import Logging
import NIOCore
import Prometheus
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Testing

/// TLS on the RESP port, in process: a NIOSSL client that trusts the cluster CA is
/// served; a plaintext client on the TLS port gets no RESP reply and is closed; the
/// plaintext listener beside it serves loopback clients.
@Suite struct RESPTLSTests {
    let backend = FakeBackend()

    /// A CA and a certificate for node1 (127.0.0.1, localhost) in a temporary folder.
    func certificates() throws -> (store: CertificateStore, caPath: String, directory: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("aegis-tls-\(UUID().uuidString)").path
        let ca = try CertificateAuthority.create()
        try ca.write(to: directory)
        let files = try ca.issue(nodeID: "node1", hosts: ["127.0.0.1", "localhost"]).write(to: directory)
        return (try CertificateStore(files: files, requiredIdentity: "node1"), files.caPath, directory)
    }

    /// Runs a TLS RESP server with a plaintext listener for `body(tlsPort, plainPort)`.
    func withTLSServer(_ store: CertificateStore, _ body: @escaping @Sendable (Int, Int) async throws -> Void) async throws {
        let (ports, continuation) = AsyncStream.makeStream(of: (Int, Bool).self)
        let server = RESPServer(
            configuration: RESPServerConfiguration(host: "127.0.0.1", port: 0, plaintextHost: "127.0.0.1", plaintextPort: 0),
            backend: backend, tls: { try store.serverContext(clientAuthentication: .none) }, logger: Logger(label: "test"),
            metricsFactory: AegisMetrics.factory(recordingInto: PrometheusCollectorRegistry()),
            onListening: { continuation.yield(($0.port ?? 0, true)) },
            onPlaintextListening: { continuation.yield(($0.port ?? 0, false)) })
        let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var tlsPort = 0, plainPort = 0
            var iterator = ports.makeAsyncIterator()
            while tlsPort == 0 || plainPort == 0, let (port, isTLS) = await iterator.next() {
                if isTLS { tlsPort = port } else { plainPort = port }
            }
            do {
                try await body(tlsPort, plainPort)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// Sends `request` over a connection (TLS with `tls`) and returns everything the
    /// server sent until `expectedBytes` arrived or it closed.
    static func exchange(port: Int, tls: NIOSSLContext?, _ request: String, expectedBytes: Int) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil)) }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: request))
            var received = ByteBuffer()
            do {
                for try await var chunk in inbound {
                    received.writeBuffer(&chunk)
                    if received.readableBytes >= expectedBytes { break }
                }
            } catch {
                // A plaintext client on the TLS port: the server ends the connection.
            }
            return String(buffer: received)
        }
    }

    static func clientContext(trusting caPath: String) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caPath))
        return try NIOSSLContext(configuration: configuration)
    }

    @Test func test_tlsClient_served_plaintextOnTLSPort_closed_plaintextListener_served() async throws {
        let (store, caPath, directory) = try certificates()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tls = try Self.clientContext(trusting: caPath)
        try await withTLSServer(store) { tlsPort, plainPort in
            let set = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
            let reply = try await Self.exchange(port: tlsPort, tls: tls, set, expectedBytes: 13)
            #expect(reply == "+OK\r\n$2\r\nv1\r\n")
            // Plaintext RESP on the TLS port: no RESP reply, the connection is closed.
            let plain = try await Self.exchange(port: tlsPort, tls: nil, "PING\r\n", expectedBytes: 7)
            #expect(!plain.contains("PONG"))
            // The plaintext listener beside it.
            #expect(try await Self.exchange(port: plainPort, tls: nil, "PING\r\n", expectedBytes: 7) == "+PONG\r\n")
        }
    }
}
