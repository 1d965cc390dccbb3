import AegisTestKit
import AegisRaft
import AegisTLS
import AegisTransport
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("aegis-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(30), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return await condition()
}

/// A CA and certificates for `nodes`, written to `directory/<node>/`.
struct TestPKI {
    let directory: TemporaryDirectory
    let ca: CertificateAuthority

    init(nodes: [String] = ["node1", "node2", "node3"], commonName: String = "test CA") throws {
        directory = try TemporaryDirectory()
        ca = try CertificateAuthority.create(commonName: commonName)
        try ca.write(to: directory.file("ca"))
        for node in nodes {
            try ca.issue(nodeID: node, hosts: ["127.0.0.1", "localhost"]).write(to: directory.file(node))
        }
    }

    func files(_ node: String) -> TLSFiles { TLSFiles(directory: directory.file(node), name: node) }

    func store(_ node: String) throws -> CertificateStore {
        try CertificateStore(files: files(node), requiredIdentity: node)
    }
}

/// Everything a transport received, collected by a background task.
final class Inbox: Sendable {
    private let messages = NIOLockedValueBox<[Message]>([])
    private let task: Task<Void, Never>

    init(_ transport: TCPTransport) {
        let messages = self.messages
        task = Task {
            for await batch in transport.inbound { messages.withLockedValue { $0.append(contentsOf: batch) } }
        }
    }

    var received: [Message] { messages.withLockedValue { $0 } }

    deinit { task.cancel() }
}

/// A started transport and its inbox.
struct TestNode {
    var id: NodeID
    var transport: TCPTransport
    var address: PeerAddress
    var inbox: Inbox
}

/// Starts a transport for `id` on 127.0.0.1 and an ephemeral port.
func startNode(_ id: NodeID, tls: TCPTransport.TLSSettings?, clusterUUID: String? = nil, recorder: LogRecorder,
               configure: (inout TCPTransport.Configuration) -> Void = { _ in }) async throws -> TestNode {
    var configuration = TCPTransport.Configuration(nodeID: id, clusterID: "tls-test", host: "127.0.0.1", port: 0)
    configuration.backoff = Backoff(initial: .milliseconds(10), maximum: .milliseconds(100))
    configuration.jitterSeed = 1
    // A test's raw connection writes its handshake some time after connecting; on a
    // loaded machine (the whole suite on two cores) that can exceed the production 2 s,
    // and the node would close the connection first ("I/O on closed channel"). The
    // timeout itself is tested in TCPTransportTests.
    configuration.handshakeTimeout = .seconds(60)
    configuration.tls = tls
    configuration.clusterUUID = clusterUUID
    configure(&configuration)
    let transport = try TCPTransport(configuration: configuration, logger: recorder.logger(label: "\(id)"))
    let bound = try await transport.start()
    return TestNode(id: id, transport: transport, address: PeerAddress(host: "127.0.0.1", port: bound.port ?? 0),
                    inbox: Inbox(transport))
}

/// Puts each node in the others' address books.
func connect(_ nodes: [TestNode]) {
    for node in nodes {
        for peer in nodes where peer.id != node.id { node.transport.setPeer(peer.id, address: peer.address) }
    }
}

func heartbeat(from: NodeID, to: NodeID, term: Term = 1) -> Message {
    Message(RaftMessage(from: from, to: to, payload: .heartbeat(HeartbeatRequest(term: term, leaderID: from, commitIndex: 0))))
}

/// Records what a raw connection receives and whether it closed.
final class ByteCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let bytes = NIOLockedValueBox<[UInt8]>([])
    private let tlsErrors = NIOLockedValueBox<[String]>([])

    var received: [UInt8] { bytes.withLockedValue { $0 } }
    var errors: [String] { tlsErrors.withLockedValue { $0 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        bytes.withLockedValue { $0.append(contentsOf: buffer.readableBytesView) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        tlsErrors.withLockedValue { $0.append("\(error)") }
        context.close(promise: nil)
    }
}

/// Opens a connection to `address`, with TLS when `tls` is given (no server name, no
/// hostname check), and a `ByteCollector` after it.
func rawConnection(to address: PeerAddress, tls: TLSConfiguration?) async throws -> (any Channel, ByteCollector) {
    let collector = ByteCollector()
    let context = try tls.map { try NIOSSLContext(configuration: $0) }
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                if let context {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                }
                try channel.pipeline.syncOperations.addHandler(collector)
            }
        }
        .connect(host: address.host, port: address.port)
        .get()
    return (channel, collector)
}

/// Whether `channel` closes within `timeout`.
func closes(_ channel: any Channel, within timeout: Duration = .seconds(5)) async -> Bool {
    await eventually(timeout: timeout) { !channel.isActive }
}

/// A handshake frame.
func handshakeFrame(from: NodeID, to: NodeID, clusterID: String = "tls-test", clusterUUID: String = "") -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeHandshakeFrame(Handshake(clusterID: clusterID, clusterUUID: clusterUUID, from: from, to: to))
    return buffer
}

/// The refusal code in a `handshake refused` frame (length, version, kind 0x82, code), if `bytes` start with one.
func refusalCode(in bytes: [UInt8]) -> UInt16? {
    guard bytes.count >= 8, bytes[5] == 0x82 else { return nil }
    return UInt16(bytes[6]) << 8 | UInt16(bytes[7])
}

/// Whether `bytes` start with a `handshake accepted` frame.
func isAccepted(_ bytes: [UInt8]) -> Bool { bytes.count >= 6 && bytes[5] == 0x81 }
