import AegisTestKit
import AegisRaft
import AegisTLS
import AegisTransport
import Testing

/// Client requests forwarded between members are accepted only from authenticated peers.
@Suite struct ClientRequestAuthenticationTests {
    private func clientRequest(from: NodeID, to: NodeID) -> Message {
        Message(from: from, to: to, payload: .clientRequest(ClientRequest(requestID: 7, command: Array("SET k v".utf8))))
    }

    @Test func test_plaintext_clientRequestIsRefusedWhenUnauthenticatedRequestsAreNotAllowed() async throws {
        let recorder = LogRecorder()
        let strict: (inout TCPTransport.Configuration) -> Void = { $0.allowUnauthenticatedClientRequests = false }
        let node1 = try await startNode("node1", tls: nil, recorder: recorder, configure: strict)
        let node2 = try await startNode("node2", tls: nil, recorder: recorder, configure: strict)
        defer { Task { await node1.transport.shutdown(); await node2.transport.shutdown() } }
        connect([node1, node2])
        node2.transport.send([clientRequest(from: "node2", to: "node1"), heartbeat(from: "node2", to: "node1")])
        // The Raft message on the same connection still arrives; the client request does not.
        #expect(await eventually { node1.inbox.received.count == 1 })
        #expect(node1.inbox.received == [heartbeat(from: "node2", to: "node1")])
        #expect(node1.transport.stats.clientRequestsRefused == 1)
        #expect(recorder.contains("dropped a client request from an unauthenticated peer connection"))
    }

    @Test func test_plaintext_clientRequestIsAcceptedByDefault() async throws {
        let recorder = LogRecorder()
        let node1 = try await startNode("node1", tls: nil, recorder: recorder)
        let node2 = try await startNode("node2", tls: nil, recorder: recorder)
        defer { Task { await node1.transport.shutdown(); await node2.transport.shutdown() } }
        connect([node1, node2])
        node2.transport.send([clientRequest(from: "node2", to: "node1")])
        #expect(await eventually { node1.inbox.received == [clientRequest(from: "node2", to: "node1")] })
        #expect(node1.transport.stats.clientRequestsRefused == 0)
    }

    @Test func test_mtls_clientRequestFromAnAuthenticatedPeerIsAccepted() async throws {
        let pki = try TestPKI()
        defer { pki.directory.remove() }
        let recorder = LogRecorder()
        // The plaintext setting is ignored with TLS: authenticated peers may forward.
        let strict: (inout TCPTransport.Configuration) -> Void = { $0.allowUnauthenticatedClientRequests = false }
        let node1 = try await startNode("node1", tls: .init(certificates: pki.store("node1")), recorder: recorder, configure: strict)
        let node2 = try await startNode("node2", tls: .init(certificates: pki.store("node2")), recorder: recorder, configure: strict)
        defer { Task { await node1.transport.shutdown(); await node2.transport.shutdown() } }
        connect([node1, node2])
        node2.transport.send([clientRequest(from: "node2", to: "node1")])
        #expect(await eventually { node1.inbox.received == [clientRequest(from: "node2", to: "node1")] })
        #expect(node1.transport.stats.clientRequestsRefused == 0)
    }
}
