import AegisRaft
import AegisTransport
import Testing

/// Reads batches from `stream` until `count` messages arrived or `timeout` passed.
func collect(_ count: Int, from stream: AsyncStream<[Message]>, timeout: Duration = .seconds(5)) async -> [Message] {
    await withTaskGroup(of: [Message]?.self) { group in
        group.addTask {
            var received: [Message] = []
            for await batch in stream {
                received.append(contentsOf: batch)
                if received.count >= count { break }
            }
            return received
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first ?? []
    }
}

private func heartbeat(_ from: NodeID, _ to: NodeID, term: Term = 1) -> RaftMessage {
    RaftMessage(from: from, to: to, payload: .heartbeat(HeartbeatRequest(term: term, leaderID: from, commitIndex: 0)))
}

@Suite struct InMemoryTransportTests {
    @Test func test_inMemory_deliversInOrderPerSender() async {
        let network = InMemoryNetwork()
        let a = network.makeTransport(for: "a")
        let b = network.makeTransport(for: "b")
        a.send((1...50).map { heartbeat("a", "b", term: Term($0)) })
        let received = await collect(50, from: b.inbound)
        #expect(received.compactMap(\.raftMessage?.term) == (1...50).map { Term($0) })
        #expect(a.stats.messagesSent == 50)
        #expect(b.stats.messagesReceived == 50)
        #expect(a.peers == ["b"])
    }

    @Test func test_inMemory_cutLinkDropsOneDirectionOnly() async {
        let network = InMemoryNetwork()
        let a = network.makeTransport(for: "a")
        let b = network.makeTransport(for: "b")
        network.cut(from: "a", to: "b")
        a.send(heartbeat("a", "b"))
        b.send(heartbeat("b", "a"))
        let atA = await collect(1, from: a.inbound)
        #expect(atA.count == 1)
        #expect(a.stats.messagesDropped == 1)
        network.heal(from: "a", to: "b")
        a.send(heartbeat("a", "b", term: 7))
        let atB = await collect(1, from: b.inbound)
        #expect(atB.first?.raftMessage?.term == 7)
    }

    @Test func test_inMemory_seededDropsReplayExactly() {
        func run(seed: UInt64) -> UInt64 {
            let network = InMemoryNetwork(seed: seed)
            let a = network.makeTransport(for: "a")
            _ = network.makeTransport(for: "b")
            network.setDropProbability(0.3)
            for term in 1...1000 { a.send(heartbeat("a", "b", term: Term(term))) }
            return a.stats.messagesDropped
        }
        let dropped = run(seed: 5)
        #expect(dropped == run(seed: 5))
        #expect(dropped > 200 && dropped < 400)
    }

    @Test func test_inMemory_dropRuleAndIsolate() async {
        let network = InMemoryNetwork()
        let a = network.makeTransport(for: "a")
        let b = network.makeTransport(for: "b")
        _ = network.makeTransport(for: "c")
        network.setDropRule { $0.type == .heartbeat }
        a.send(heartbeat("a", "b"))
        a.send(.raft(.timeoutNow(term: 2)), to: "b")
        #expect(await collect(1, from: b.inbound).map(\.type) == [.timeoutNow])
        network.healAll()
        network.isolate("a")
        #expect(network.isCut(from: "c", to: "a") && network.isCut(from: "a", to: "b"))
        #expect(a.broadcast(.raft(.timeoutNow(term: 3))) == 2)
        #expect(a.stats.messagesDropped == 3)
    }

    @Test func test_inMemory_delayedMessagesWaitForRelease() async {
        let network = InMemoryNetwork()
        let a = network.makeTransport(for: "a")
        let b = network.makeTransport(for: "b")
        network.setDelayRule { _ in .seconds(3600) }
        a.send(heartbeat("a", "b", term: 1))
        #expect(network.delayedCount == 1)
        #expect(network.deliverDueMessages() == 0)
        network.setDelayRule(nil)
        a.send(heartbeat("a", "b", term: 2))
        #expect(network.releaseDelayedMessages() == 1)
        // The delayed message arrives after the one sent later: delay reorders.
        #expect(await collect(2, from: b.inbound).compactMap(\.raftMessage?.term) == [2, 1])
    }

    @Test func test_inMemory_restartFinishesTheOldStream() async {
        let network = InMemoryNetwork()
        let old = network.makeTransport(for: "a")
        _ = network.makeTransport(for: "a")
        var iterator = old.inbound.makeAsyncIterator()
        #expect(await iterator.next() == nil)
    }
}
