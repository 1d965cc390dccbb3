import AegisTestKit
import AegisRaft
import AegisTLS
import AegisTransport
import Foundation
import NIOCore
import NIOSSL
import Testing

/// Mutual TLS on the peer port of `TCPTransport`.
@Suite struct PeerMutualTLSTests {
    @Test func test_mtls_twoNodesExchangeMessages() async throws {
        let pki = try TestPKI()
        defer { pki.directory.remove() }
        let recorder = LogRecorder()
        let node1 = try await startNode("node1", tls: .init(certificates: pki.store("node1")), recorder: recorder)
        let node2 = try await startNode("node2", tls: .init(files: pki.files("node2"), nodeID: "node2"), recorder: recorder)
        defer { Task { await node1.transport.shutdown(); await node2.transport.shutdown() } }
        connect([node1, node2])
        node1.transport.send([heartbeat(from: "node1", to: "node2", term: 3)])
        node2.transport.send([heartbeat(from: "node2", to: "node1", term: 4)])
        #expect(await eventually { node1.inbox.received.count == 1 && node2.inbox.received.count == 1 })
        #expect(node2.inbox.received == [heartbeat(from: "node1", to: "node2", term: 3)])
        #expect(node1.inbox.received == [heartbeat(from: "node2", to: "node1", term: 4)])
        #expect(node1.transport.stats.handshakesRefused == 0 && node1.transport.stats.tlsHandshakesFailed == 0)
    }

    @Test func test_mtls_peerWithoutAClientCertificateIsRefused() async throws {
        let pki = try TestPKI()
        defer { pki.directory.remove() }
        let recorder = LogRecorder()
        let node1 = try await startNode("node1", tls: .init(certificates: pki.store("node1")), recorder: recorder)
        defer { Task { await node1.transport.shutdown() } }
        node1.transport.setPeer("node2", address: PeerAddress(host: "127.0.0.1", port: 1))
        // Trusts the CA, but presents no certificate.
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(pki.files("node1").caPath))
        configuration.certificateVerification = .noHostnameVerification
        let (channel, collector) = try await rawConnection(to: node1.address, tls: configuration)
        // With TLS 1.3 the server refuses the missing certificate after the client's
        // handshake is done, so the write may already meet a closed channel.
        try? await channel.writeAndFlush(handshakeFrame(from: "node2", to: "node1"))
        #expect(await closes(channel))
        #expect(!isAccepted(collector.received))
        #expect(await eventually { node1.transport.stats.tlsHandshakesFailed == 1 })
        #expect(recorder.contains("TLS handshake failed"))
        #expect(node1.inbox.received.isEmpty)
    }

    @Test func test_mtls_peerWithACertificateOfAnotherCAIsRefused() async throws {
        let pki = try TestPKI()
        let rogue = try TestPKI(nodes: ["node2"], commonName: "rogue CA")
        defer { pki.directory.remove(); rogue.directory.remove() }
        // The rogue node2 trusts both CAs (so it would accept node1), but its own
        // certificate comes from the rogue CA.
        let bothCAs = rogue.directory.file("both-ca.pem")
        let caText = try String(contentsOfFile: pki.files("node1").caPath, encoding: .utf8)
            + String(contentsOfFile: rogue.files("node2").caPath, encoding: .utf8)
        try Data(caText.utf8).write(to: URL(fileURLWithPath: bothCAs))
        var rogueFiles = rogue.files("node2")
        rogueFiles.caPath = bothCAs
        let recorder = LogRecorder()
        let node1 = try await startNode("node1", tls: .init(certificates: pki.store("node1")), recorder: recorder)
        let node2 = try await startNode("node2", tls: .init(files: rogueFiles, nodeID: "node2"), recorder: recorder)
        defer { Task { await node1.transport.shutdown(); await node2.transport.shutdown() } }
        connect([node1, node2])
        node2.transport.send([heartbeat(from: "node2", to: "node1")])
        #expect(await eventually { node1.transport.stats.tlsHandshakesFailed >= 1 })
        #expect(await eventually { (node2.transport.stats.peers["node1"]?.tlsFailures ?? 0) >= 1 })
        try await Task.sleep(for: .milliseconds(100))
        #expect(node1.inbox.received.isEmpty)
        #expect(node2.transport.stats.peers["node1"]?.isConnected == false)
    }

    @Test func test_mtls_certificateForAnotherNodeThanTheHandshakeClaimsIsRefused() async throws {
        let pki = try TestPKI()
        defer { pki.directory.remove() }
        let recorder = LogRecorder()
        let node1 = try await startNode("node1", tls: .init(certificates: pki.store("node1")), recorder: recorder)
        defer { Task { await node1.transport.shutdown() } }
        node1.transport.setPeer("node2", address: PeerAddress(host: "127.0.0.1", port: 1))
        // node3's valid certificate, claiming to be node2.
        let node3 = try pki.store("node3").material
        let (channel, collector) = try await rawConnection(to: node1.address, tls: node3.makeClientConfiguration(verifyHostname: false))
        try await channel.writeAndFlush(handshakeFrame(from: "node2", to: "node1"))
        #expect(await closes(channel))
        #expect(refusalCode(in: collector.received) == TransportError.Code.identityMismatch.rawValue)
        #expect(node1.transport.stats.handshakesRefused == 1)
        #expect(recorder.contains("not 'node2' that the handshake claims"))
        #expect(node1.inbox.received.isEmpty)
    }

    @Test func test_mtls_dialledNodeMustPresentItsOwnName() async throws {
        let pki = try TestPKI()
        defer { pki.directory.remove() }
        let recorder = LogRecorder()
        let node1 = try await startNode("node1", tls: .init(certificates: pki.store("node1")), recorder: recorder)
        // node3 answers at the address node1 has for node2.
        let impostor = try await startNode("node3", tls: .init(certificates: pki.store("node3")), recorder: recorder)
        defer { Task { await node1.transport.shutdown(); await impostor.transport.shutdown() } }
        node1.transport.setPeer("node2", address: impostor.address)
        impostor.transport.setPeer("node1", address: node1.address)
        node1.transport.send([heartbeat(from: "node1", to: "node2")])
        #expect(await eventually { (node1.transport.stats.peers["node2"]?.tlsFailures ?? 0) >= 1 })
        #expect(recorder.contains("does not name the node dialled"))
        // node1 sent no handshake: the impostor saw no handshake to refuse and got no message.
        #expect(impostor.transport.stats.handshakesRefused == 0)
        #expect(impostor.inbox.received.isEmpty)
    }

    @Test func test_mtls_peerOfAnotherClusterIncarnationIsRefused() async throws {
        let pki = try TestPKI()
        defer { pki.directory.remove() }
        let recorder = LogRecorder()
        let node1 = try await startNode("node1", tls: .init(certificates: pki.store("node1")), clusterUUID: "uuid-a", recorder: recorder)
        let node2 = try await startNode("node2", tls: .init(certificates: pki.store("node2")), clusterUUID: "uuid-b", recorder: recorder)
        defer { Task { await node1.transport.shutdown(); await node2.transport.shutdown() } }
        connect([node1, node2])
        node2.transport.send([heartbeat(from: "node2", to: "node1")])
        #expect(await eventually { node1.transport.stats.handshakesRefused >= 1 })
        #expect(recorder.contains("is not this node's cluster UUID"))
        #expect(node1.transport.stats.tlsHandshakesFailed == 0)
        #expect(node1.inbox.received.isEmpty)
    }

    @Test func test_mtls_plaintextClientFailsCleanlyAndTheNodeKeepsServing() async throws {
        let pki = try TestPKI()
        defer { pki.directory.remove() }
        let recorder = LogRecorder()
        let node1 = try await startNode("node1", tls: .init(certificates: pki.store("node1")), recorder: recorder)
        let node2 = try await startNode("node2", tls: .init(certificates: pki.store("node2")), recorder: recorder)
        defer { Task { await node1.transport.shutdown(); await node2.transport.shutdown() } }
        connect([node1, node2])
        let (channel, collector) = try await rawConnection(to: node1.address, tls: nil)
        // The node may already have closed the connection (it is not TLS): that is fine.
        try? await channel.writeAndFlush(handshakeFrame(from: "node2", to: "node1"))
        #expect(await closes(channel))
        #expect(!isAccepted(collector.received))
        #expect(await eventually { node1.transport.stats.tlsHandshakesFailed == 1 })
        // The node still serves its real peer.
        node2.transport.send([heartbeat(from: "node2", to: "node1")])
        #expect(await eventually { node1.inbox.received.count == 1 })
    }

    @Test func test_transport_refusesACertificateThatDoesNotNameThisNode() throws {
        let pki = try TestPKI()
        defer { pki.directory.remove() }
        var configuration = TCPTransport.Configuration(nodeID: "node1", clusterID: "tls-test")
        configuration.tls = .init(certificates: try pki.store("node2"))
        #expect(throws: TransportError.self) { try TCPTransport(configuration: configuration, logger: LogRecorder().logger(label: "t")) }
        #expect(throws: TransportError.self) { try TCPTransport.TLSSettings(files: pki.files("node2"), nodeID: "node1") }
    }

    @Test func test_reload_newConnectionsPresentTheNewCertificate() async throws {
        let pki = try TestPKI()
        defer { pki.directory.remove() }
        let recorder = LogRecorder()
        let store = try pki.store("node1")
        let node1 = try await startNode("node1", tls: .init(certificates: store), recorder: recorder)
        defer { Task { await node1.transport.shutdown() } }
        node1.transport.setPeer("node2", address: PeerAddress(host: "127.0.0.1", port: 1))
        let client = try pki.store("node2").material.makeClientConfiguration(verifyHostname: false)
        let old = try await presentedCertificate(node1.address, client)
        #expect(old == (try store.material.certificateChain[0].serializeAsPEM().derBytes))

        try pki.ca.issue(nodeID: "node1", hosts: ["10.9.9.9"]).write(to: pki.directory.file("node1"), overwrite: true)
        try store.reload()
        let new = try await presentedCertificate(node1.address, client)
        #expect(new != old)
        #expect(new == (try store.material.certificateChain[0].serializeAsPEM().derBytes))

        // A broken file is refused; connections keep getting the last good certificate.
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: pki.files("node1").keyPath))
        #expect(throws: TLSError.self) { try store.reload() }
        #expect(try await presentedCertificate(node1.address, client) == new)
    }

    /// Connects with `configuration`, completes a handshake as node2, and returns the DER
    /// of the certificate the server presented.
    private func presentedCertificate(_ address: PeerAddress, _ configuration: TLSConfiguration) async throws -> [UInt8]? {
        let (channel, collector) = try await rawConnection(to: address, tls: configuration)
        try await channel.writeAndFlush(handshakeFrame(from: "node2", to: "node1"))
        guard await eventually({ isAccepted(collector.received) }) else { return nil }
        let certificate = try await channel.nioSSL_peerCertificate().get()
        try? await channel.close()
        return try certificate?.toDERBytes()
    }
}
