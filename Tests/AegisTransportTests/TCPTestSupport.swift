import AegisTestKit
import AegisRaft
import AegisTransport
import Foundation
import Logging
import NIOCore
import NIOPosix

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(30), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return await condition()
}

/// Runs `operation`, giving up with `nil` after `timeout`.
func withTimeout<T: Sendable>(_ timeout: Duration = .seconds(30), _ operation: @escaping @Sendable () async throws -> T) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { try? await operation() }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

/// A node of a test cluster: its transport, bound to its own loopback address.
struct TestNode {
    var id: NodeID
    var transport: TCPTransport
    var address: PeerAddress
}

/// Starts one transport per `(id, host)` on an ephemeral port and puts every node in
/// every other node's address book.
func startCluster(_ nodes: [(NodeID, String)], clusterID: String = "test-cluster", recorder: LogRecorder = LogRecorder(),
                  configure: (inout TCPTransport.Configuration) -> Void = { _ in }) async throws -> [TestNode] {
    var started: [TestNode] = []
    for (id, host) in nodes {
        var configuration = TCPTransport.Configuration(nodeID: id, clusterID: clusterID, host: host, port: 0)
        configuration.backoff = Backoff(initial: .milliseconds(10), maximum: .milliseconds(200))
        configuration.jitterSeed = 1
        configure(&configuration)
        let transport = try TCPTransport(configuration: configuration, logger: recorder.logger(label: "\(id)"))
        let bound = try await transport.start()
        started.append(TestNode(id: id, transport: transport, address: PeerAddress(host: host, port: bound.port ?? 0)))
    }
    for node in started {
        for peer in started where peer.id != node.id {
            node.transport.setPeer(peer.id, address: peer.address)
        }
    }
    return started
}

/// Opens a plain TCP connection (no Aegis handlers) to `address`.
func rawConnection(to address: PeerAddress) async throws -> any Channel {
    try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: address.host, port: address.port)
        .get()
}

func heartbeat(from: NodeID, to: NodeID, term: Term) -> Message {
    Message(RaftMessage(from: from, to: to, payload: .heartbeat(HeartbeatRequest(term: term, leaderID: from, commitIndex: term))))
}
