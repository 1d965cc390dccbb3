import AegisTestKit
import AegisRaft
import AegisTransport
import NIOCore
import NIOPosix
import Testing

// Real sockets on loopback only; each test uses its own 127.0.0.x addresses and
// ephemeral ports, so tests can run in parallel.
@Suite struct TCPTransportTests {
    @Test func test_tcp_threeNodesExchangeMessagesInOrder() async throws {
        let nodes = try await startCluster([("n1", "127.0.0.1"), ("n2", "127.0.0.2"), ("n3", "127.0.0.3")])
        var generator = MessageGenerator(seed: 77)
        var expected: [NodeID: [NodeID: [Message]]] = [:]  // receiver -> sender -> messages
        for sender in nodes {
            for receiver in nodes where receiver.id != sender.id {
                var batch: [Message] = []
                for index in 0..<100 {
                    var message = generator.message(index % 10 == 0 ? .appendEntries : nil)
                    message.from = sender.id
                    message.to = receiver.id
                    batch.append(message)
                }
                expected[receiver.id, default: [:]][sender.id] = batch
                sender.transport.send(batch)
            }
        }
        for node in nodes {
            let received = await collect(200, from: node.transport.inbound)
            #expect(received.count == 200, "node \(node.id)")
            for (sender, messages) in expected[node.id] ?? [:] {
                #expect(received.filter { $0.from == sender } == messages, "\(sender) -> \(node.id)")
            }
        }
        for node in nodes {
            let stats = node.transport.stats
            #expect(stats.messagesSent == 200 && stats.messagesReceived == 200 && stats.messagesDropped == 0)
            #expect(stats.bytesSent > 0 && stats.bytesReceived > 0)
            await node.transport.shutdown()
        }
    }

    @Test func test_tcp_peerOfAnotherClusterIsRefusedAndLogged() async throws {
        let recorder = LogRecorder()
        let ours = try await startCluster([("a", "127.0.0.4")], clusterID: "blue", recorder: recorder)[0]
        let theirs = try await startCluster([("b", "127.0.0.5")], clusterID: "green", recorder: recorder)[0]
        ours.transport.setPeer("b", address: theirs.address)
        theirs.transport.setPeer("a", address: ours.address)
        ours.transport.send(heartbeat(from: "a", to: "b", term: 1))
        #expect(await eventually { theirs.transport.stats.handshakesRefused >= 1 })
        #expect(theirs.transport.stats.messagesReceived == 0)
        let refusals = recorder.records.filter { $0.message == "refused a peer connection" }
        #expect(refusals.contains { $0.metadata["reason"]?.contains("cluster 'blue'") == true })
        // The connecting side learns why, too.
        #expect(await eventually { recorder.records.contains { $0.message == "peer refused the handshake" } })
        #expect(ours.transport.stats.peers["b"]?.isConnected == false)
        await ours.transport.shutdown()
        await theirs.transport.shutdown()
    }

    @Test func test_tcp_unknownNodeIsRefused() async throws {
        let recorder = LogRecorder()
        let nodes = try await startCluster([("a", "127.0.0.6"), ("b", "127.0.0.7")], recorder: recorder)
        nodes[1].transport.removePeer("a")  // b no longer knows a
        nodes[0].transport.send(heartbeat(from: "a", to: "b", term: 1))
        #expect(await eventually { nodes[1].transport.stats.handshakesRefused >= 1 })
        #expect(recorder.records.contains { $0.metadata["reason"]?.contains("not in the address book") == true })
        #expect(nodes[1].transport.stats.messagesReceived == 0)
        for node in nodes { await node.transport.shutdown() }
    }

    @Test func test_tcp_restartedPeerIsReconnectedTo() async throws {
        let nodes = try await startCluster([("a", "127.0.0.8"), ("b", "127.0.0.9")])
        let (a, b) = (nodes[0], nodes[1])
        a.transport.send(heartbeat(from: "a", to: "b", term: 1))
        #expect(await collect(1, from: b.transport.inbound).count == 1)
        await b.transport.shutdown()

        // b comes back on the same address and port.
        var configuration = TCPTransport.Configuration(nodeID: "b", clusterID: "test-cluster", host: b.address.host,
                                                       port: b.address.port, peers: ["a": a.address])
        configuration.backoff = Backoff(initial: .milliseconds(10), maximum: .milliseconds(100))
        let restarted = try TCPTransport(configuration: configuration, logger: LogRecorder().logger(label: "b2"))
        try await restarted.start()
        var term: Term = 2
        let reconnected = await eventually {
            term += 1
            a.transport.send(heartbeat(from: "a", to: "b", term: term))
            return restarted.stats.messagesReceived > 0
        }
        #expect(reconnected)
        #expect(a.transport.stats.reconnects >= 1)
        let first = await collect(1, from: restarted.inbound)
        #expect(first.first?.from == "a")
        await a.transport.shutdown()
        await restarted.shutdown()
    }

    @Test func test_tcp_boundedQueueDropsWhilePeerIsDownThenDelivers() async throws {
        // Learn a free port for b, then take b down so nothing listens there.
        let probe = try await startCluster([("b", "127.0.0.11")])[0]
        await probe.transport.shutdown()
        let a = try await startCluster([("a", "127.0.0.10")]) { $0.sendQueueLimit = 10 }[0]
        a.transport.setPeer("b", address: probe.address)

        a.transport.send((1...100).map { heartbeat(from: "a", to: "b", term: Term($0)) })
        let stats = a.transport.stats.peers["b"]
        #expect(stats?.messagesDropped == 90)
        #expect(stats?.queued == 10)
        #expect(await eventually { (a.transport.stats.peers["b"]?.reconnects ?? 0) >= 2 })

        // b comes up: the ten queued messages arrive, the oldest first.
        let b = try TCPTransport(configuration: .init(nodeID: "b", clusterID: "test-cluster", host: probe.address.host,
                                                      port: probe.address.port, peers: ["a": a.address]),
                                 logger: LogRecorder().logger(label: "b"))
        try await b.start()
        let received = await collect(10, from: b.inbound)
        #expect(received.compactMap(\.raftMessage?.term) == (1...10).map { Term($0) })
        await a.transport.shutdown()
        await b.shutdown()
    }

    @Test func test_tcp_malformedBytesCloseTheConnectionAndTheNodeKeepsServing() async throws {
        // A long handshake timeout: on a loaded machine the default 2 s can fire before
        // the bytes are read, and the close would count as a timeout, not a protocol error.
        let nodes = try await startCluster([("t", "127.0.0.12"), ("a", "127.0.0.13")]) { $0.handshakeTimeout = .seconds(60) }
        let (target, peer) = (nodes[0], nodes[1])

        // 1. An HTTP request: its first four bytes read as a ~1 GB length.
        let http = try await rawConnection(to: target.address)
        http.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), promise: nil)
        #expect(await withTimeout { try await http.closeFuture.get() } != nil)

        // 2. A valid handshake, then random bytes with a plausible length.
        let garbage = try await rawConnection(to: target.address)
        var buffer = ByteBuffer()
        buffer.writeHandshakeFrame(Handshake(clusterID: "test-cluster", from: "a", to: "t"))
        var rng = SplitMix64(seed: 99)
        buffer.writeInteger(UInt32(40))
        buffer.writeInteger(WireFormat.version)
        buffer.writeInteger(MessageType.appendEntries.rawValue)
        for _ in 0..<38 { buffer.writeInteger(UInt8.random(in: 0...255, using: &rng)) }
        garbage.writeAndFlush(buffer, promise: nil)
        #expect(await withTimeout { try await garbage.closeFuture.get() } != nil)

        // 3. A valid handshake as "a", then a message claiming to come from "z".
        let forged = try await rawConnection(to: target.address)
        var forgedBuffer = ByteBuffer()
        forgedBuffer.writeHandshakeFrame(Handshake(clusterID: "test-cluster", from: "a", to: "t"))
        forgedBuffer.writeMessageFrame(heartbeat(from: "z", to: "t", term: 1))
        forged.writeAndFlush(forgedBuffer, promise: nil)
        #expect(await withTimeout { try await forged.closeFuture.get() } != nil)

        #expect(await eventually { target.transport.stats.protocolErrors == 3 })
        #expect(target.transport.stats.messagesReceived == 0)

        // The node still serves its real peers.
        peer.transport.send(heartbeat(from: "a", to: "t", term: 5))
        #expect(await collect(1, from: target.transport.inbound).first?.raftMessage?.term == 5)
        for node in nodes { await node.transport.shutdown() }
    }

    @Test func test_tcp_silentConnectionIsClosedAfterHandshakeTimeout() async throws {
        let target = try await startCluster([("t", "127.0.0.14")]) { $0.handshakeTimeout = .milliseconds(100) }[0]
        let silent = try await rawConnection(to: target.address)
        #expect(await withTimeout(.seconds(3)) { try await silent.closeFuture.get() } != nil)
        await target.transport.shutdown()
    }

    @Test func test_tcp_oversizedMessageIsDroppedNotSent() async throws {
        let nodes = try await startCluster([("a", "127.0.0.15"), ("b", "127.0.0.16")]) { $0.maximumFrameSize = 1024 }
        let big = Message(from: "a", to: "b", payload: .raft(.forwardedProposal(term: 1, entries: [
            LogEntry(index: 1, term: 1, data: [UInt8](repeating: 7, count: 4096)),
        ])))
        nodes[0].transport.send([big, heartbeat(from: "a", to: "b", term: 2)])
        let received = await collect(1, from: nodes[1].transport.inbound)
        #expect(received.map(\.type) == [.heartbeat])
        #expect(nodes[0].transport.stats.peers["b"]?.messagesDropped == 1)
        for node in nodes { await node.transport.shutdown() }
    }

    @Test func test_tcp_invalidConfigurationThrows() {
        var configuration = TCPTransport.Configuration(nodeID: "a", clusterID: "c")
        configuration.sendQueueLimit = 0
        #expect(throws: TransportError.self) {
            _ = try TCPTransport(configuration: configuration, logger: LogRecorder().logger(label: "a"))
        }
    }

    @Test func test_tcp_sendAfterShutdownIsDroppedAndCounted() async throws {
        let nodes = try await startCluster([("a", "127.0.0.17"), ("b", "127.0.0.18")])
        await nodes[0].transport.shutdown()
        nodes[0].transport.send(heartbeat(from: "a", to: "b", term: 1))
        #expect(nodes[0].transport.stats.messagesDropped == 1)
        var iterator = nodes[0].transport.inbound.makeAsyncIterator()
        #expect(await iterator.next() == nil)
        await nodes[1].transport.shutdown()
    }
}
