import AegisRaft
import AegisTransport
import NIOConcurrencyHelpers
import Testing

// `Transport.deliverInbound(to:)` on real loopback sockets (127.0.0.19-22).
@Suite struct TCPInboundSinkTests {
    @Test func test_sink_takesEveryBatchInOrder_andInboundGetsNone() async throws {
        let nodes = try await startCluster([("s1", "127.0.0.19"), ("s2", "127.0.0.20")])
        let (sender, receiver) = (nodes[0], nodes[1])
        let taken = NIOLockedValueBox<[Message]>([])
        #expect(receiver.transport.deliverInbound { batch in
            taken.withLockedValue { $0.append(contentsOf: batch) }
            return true
        })
        let messages = (1 ... 2_000).map { heartbeat(from: "s1", to: "s2", term: Term($0)) }
        for start in stride(from: 0, to: messages.count, by: 10) {
            sender.transport.send(Array(messages[start ..< start + 10]))
        }
        #expect(await eventually { taken.withLockedValue { $0.count } == messages.count })
        #expect(taken.withLockedValue { $0.elementsEqual(messages) }, "the sink got every message, in the order sent")
        let stats = receiver.transport.stats
        #expect(stats.messagesReceived == UInt64(messages.count) && stats.inboundDropped == 0)
        // Nothing went to the stream: after shutdown it ends empty.
        for node in nodes { await node.transport.shutdown() }
        var leftovers = 0
        for await batch in receiver.transport.inbound { leftovers += batch.count }
        #expect(leftovers == 0)
    }

    @Test func test_sink_thatRefusesABatch_countsItDropped() async throws {
        let nodes = try await startCluster([("d1", "127.0.0.21"), ("d2", "127.0.0.22")])
        let (sender, receiver) = (nodes[0], nodes[1])
        let calls = NIOLockedValueBox(0)
        receiver.transport.deliverInbound { batch in
            calls.withLockedValue { $0 += 1 }
            return false
        }
        sender.transport.send([heartbeat(from: "d1", to: "d2", term: 1), heartbeat(from: "d1", to: "d2", term: 2)])
        #expect(await eventually { receiver.transport.stats.inboundDropped == 2 })
        #expect(receiver.transport.stats.messagesReceived == 0)
        #expect(calls.withLockedValue { $0 } >= 1)
        for node in nodes { await node.transport.shutdown() }
    }
}
