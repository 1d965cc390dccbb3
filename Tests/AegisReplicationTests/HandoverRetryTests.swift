import AegisKV
import AegisRaft
import AegisReplication
import AegisStorage
import AegisTransport
import Logging
import Testing

/// The answer to one write (the node loop answers on the thread that drives it: here,
/// the test's).
private final class Answer: @unchecked Sendable {
    var result: Result<CommandResult, any Error>?
    var committed: Bool { (try? result?.get()) != nil }
}

/// Three production node loops (`ReplicaNode`, DiskStorage on a simulated disk) whose
/// messages this test delivers itself, so that it can drop some of them.
private final class Cluster {
    let ids: [NodeID] = ["n1", "n2", "n3"]
    var nodes: [NodeID: ReplicaNode] = [:]
    var outboxes: [NodeID: CapturingTransport] = [:]
    var drop: (Message) -> Bool = { _ in false }

    init() throws {
        for (k, id) in ids.enumerated() {
            var options = DiskStorageOptions(segmentSize: 4096)
            options.preallocateSegments = false
            options.writerThread = false
            let storage = try DiskStorage(directory: "/data", fileSystem: SimulatedFileSystem(), options: options)
            let config = NodeConfiguration(nodeID: id, bootstrapVoters: ids,
                                           raft: RaftConfig(electionTimeout: 10, heartbeatInterval: 2))
            let outbox = CapturingTransport(localID: id, peers: ids.filter { $0 != id })
            outboxes[id] = outbox
            nodes[id] = try ReplicaNode(configuration: config, storage: storage, transport: outbox,
                                        logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                                        clock: { 0 }, randomSeed: UInt64(k + 1), snapshotRunner: { $0() })
        }
    }

    /// Delivers what the nodes sent until nothing is left (at most `rounds` rounds).
    func pump(rounds: Int = 50) {
        for _ in 0..<rounds {
            var any = false
            for id in ids {
                guard let outbox = outboxes[id], !outbox.sent.isEmpty else { continue }
                let batch = outbox.sent
                outbox.sent = []
                any = true
                for message in batch where !drop(message) { nodes[message.to]?.deliver([message]) }
            }
            if !any { return }
        }
    }

    func tick(_ count: Int = 1) {
        for _ in 0..<count {
            for id in ids { nodes[id]?.tick() }
            pump()
        }
    }

    var leader: NodeID? { ids.first { nodes[$0]?.core.role == .leader } }
}

@Suite struct HandoverRetryTests {
    /// A stopping leader whose transfer the core gives up (here: every `TimeoutNow` is
    /// lost, so the target never campaigns) appends nothing while it hands over — a
    /// write a follower forwards to it is refused and kept by the follower, not appended
    /// where the next leader's term could cut it off — and starts another transfer
    /// instead of staying the leader until the handover timeout.
    @Test func test_stoppingLeaderAppendsNothingBetweenTransfers_andTransfersAgain() throws {
        let cluster = try Cluster()
        for _ in 0..<100 where cluster.leader == nil { cluster.tick() }
        let leaderID = try #require(cluster.leader)
        let leader = try #require(cluster.nodes[leaderID])
        let followerID = try #require(cluster.ids.first { $0 != leaderID })
        let follower = try #require(cluster.nodes[followerID])
        let first = Answer()
        follower.execute(Command.set(Key("a"), [1]).encoded()) { first.result = $0 }
        cluster.tick(5)
        #expect(first.committed, "a write through the follower commits: \(String(describing: first.result))")

        cluster.drop = { $0.type == .timeoutNow }
        let last = try leader.core.log.lastIndex()
        let term = leader.core.term
        leader.stopGracefully()
        #expect(leader.core.leadTransferee != nil, "the handover starts a transfer")
        // Past one election timeout the core gives the transfer up; the node starts
        // another one in the same tick.
        let started = leader.core.stats.transfersStarted
        let second = Answer()
        follower.execute(Command.set(Key("b"), [2]).encoded()) { second.result = $0 }
        for _ in 0..<35 {
            cluster.tick()
            // The follower forwarded its write; the leader refused it (the follower keeps
            // it until another node leads): the leader's log never grows while it hands over.
            #expect(leader.core.role == .leader && leader.core.term == term)
            #expect(try leader.core.log.lastIndex() == last, "the stopping leader appended an entry")
            #expect(leader.core.leadTransferee != nil, "a transfer the core gave up is started again at once")
        }
        #expect(leader.core.stats.transfersStarted >= started + 3,
                "35 ticks are over three election timeouts: the core gave a transfer up, and the node started another, each time")
        #expect(second.result == nil, "the forwarded write is still waiting for a leader that accepts it")

        // TimeoutNow gets through again: the next transfer completes, the write commits
        // under the new leader, and the old one has stepped down.
        cluster.drop = { _ in false }
        for _ in 0..<40 where second.result == nil { cluster.tick() }
        #expect(second.committed, "the write committed once another node led: \(String(describing: second.result))")
        #expect(leader.core.role != .leader)
    }
}
