import AegisKV
import AegisRaft
import AegisReplication
import AegisStorage
import AegisTransport
import Logging
import NIOConcurrencyHelpers
import Testing

@Suite struct ReplicaNodeTests {
    /// A one-voter node over DiskStorage on a simulated disk, elected.
    private func leader(configure: (inout NodeConfiguration) -> Void = { _ in },
                        compacted: @escaping @Sendable () -> Void = {}) throws -> (ReplicaNode, CapturingTransport) {
        var options = DiskStorageOptions(segmentSize: 4096)
        options.preallocateSegments = false
        options.writerThread = false
        let storage = try DiskStorage(directory: "/data", fileSystem: SimulatedFileSystem(), options: options)
        var config = NodeConfiguration(nodeID: "n1", bootstrapVoters: ["n1"], raft: RaftConfig(electionTimeout: 10, heartbeatInterval: 2))
        configure(&config)
        let transport = CapturingTransport(localID: "n1", peers: ["n2"])
        let node = try ReplicaNode(configuration: config, storage: storage, transport: transport,
                                   logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                                   clock: { 0 }, randomSeed: 1, snapshotRunner: { $0() }, compacted: compacted)
        for _ in 0..<50 where node.core.role != .leader { node.tick() }
        return (node, transport)
    }

    /// With a large state, a snapshot every `snapshotThreshold` entries rewrites far more
    /// than the log it frees: one is taken only once the commands applied since the last
    /// add up to `snapshotLogFraction` of its size.
    @Test func test_snapshotIsSkippedUntilTheLogIsAFractionOfTheLastSnapshot() throws {
        var snapshots: [LogIndex] = []
        let (node, _) = try leader {
            $0.raft.snapshotThreshold = 10
            $0.raft.snapshotTrailingEntries = 0
            $0.snapshotLogFraction = 1.0
        }
        func write(_ key: String, bytes: Int) {
            node.execute(Command.set(Key(key), [UInt8](repeating: 7, count: bytes)).encoded()) { _ in }
            node.tick()
            if node.snapshotInFlight {
                node.collectSnapshots()
                snapshots.append(node.appliedIndex)
            }
        }
        // 200 distinct keys of 100 bytes: the state, and so each snapshot, grows to about
        // 200 x 100 bytes, while each 10 entries of log hold about 1,000.
        for k in 0..<200 { write("key\(k)", bytes: 100) }
        // With fraction 1.0 and every write a new key, the log since a snapshot must be
        // as large as the state at that snapshot: the interval doubles (10, 20, 40, 80, 160).
        #expect(snapshots.count >= 4, "\(snapshots)")
        for (previous, next) in zip(snapshots, snapshots.dropFirst()) {
            #expect(next >= 2 * previous - 2, "\(snapshots)")
        }
        // Without the fraction: a snapshot every threshold entries.
        var every: [LogIndex] = []
        let (plain, _) = try leader { $0.raft.snapshotThreshold = 10; $0.snapshotLogFraction = 0 }
        for k in 0..<200 {
            plain.execute(Command.set(Key("key\(k)"), [UInt8](repeating: 7, count: 100)).encoded()) { _ in }
            plain.tick()
            if plain.snapshotInFlight { plain.collectSnapshots(); every.append(plain.appliedIndex) }
        }
        #expect(every.count >= 15, "\(every)")
    }

    /// A restart replaying its log takes no snapshot until the replay is done: the
    /// snapshot's thread would compete with it for the cores (the first snapshot after a
    /// restart is at or past the replay target, though the core asks every 10 entries).
    @Test func test_noSnapshotWhileARestartReplaysItsLog() throws {
        let fileSystem = SimulatedFileSystem()
        func open(threshold: UInt64) throws -> (ReplicaNode, DiskStorage) {
            var options = DiskStorageOptions(segmentSize: 4096)
            options.preallocateSegments = false
            options.writerThread = false
            let storage = try DiskStorage(directory: "/data", fileSystem: fileSystem, options: options)
            var config = NodeConfiguration(nodeID: "n1", bootstrapVoters: ["n1"],
                                           raft: RaftConfig(electionTimeout: 10, heartbeatInterval: 2))
            config.raft.snapshotThreshold = threshold
            config.raft.snapshotTrailingEntries = 0
            config.raft.maxCommittedBytesPerReady = 600  // the replay takes many Readys
            config.snapshotLogFraction = 0
            let node = try ReplicaNode(configuration: config, storage: storage,
                                       transport: CapturingTransport(localID: "n1", peers: ["n2"]),
                                       logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                                       clock: { 0 }, randomSeed: 1, snapshotRunner: { $0() })
            return (node, storage)
        }
        let (first, _) = try open(threshold: 1_000_000)
        for _ in 0..<50 where first.core.role != .leader { first.tick() }
        for k in 0..<120 {
            first.execute(Command.set(Key("key\(k)"), [UInt8](repeating: 7, count: 50)).encoded()) { _ in }
            first.tick()
        }
        let (second, storage) = try open(threshold: 10)
        let target = storage.recovery.hardState.commitIndex  // what the restart replays
        #expect(target >= 120)
        var snapshots: [LogIndex] = []
        for _ in 0..<200 {
            second.tick()
            if second.snapshotInFlight {
                second.collectSnapshots()
                snapshots.append(try storage.snapshotMetadata().index)
            }
            if second.appliedIndex >= target && !snapshots.isEmpty { break }
        }
        #expect(second.appliedIndex >= target)
        #expect(!snapshots.isEmpty)
        #expect(snapshots.allSatisfy { $0 >= target }, "snapshots at \(snapshots), replay target \(target)")
    }

    /// With WAL archiving on the member, the log is not compacted past what the archiver
    /// shipped (`compactionFloor`), up to `maxEntriesHeldForArchiving`; beyond that it is.
    @Test func test_compactionHoldsAtTheArchivedIndexWithinItsBound() throws {
        func firstIndexAfterWrites(floor: LogIndex?, maxHeld: UInt64) throws -> LogIndex {
            let (node, _) = try leader {
                $0.raft.snapshotThreshold = 10
                $0.raft.snapshotTrailingEntries = 0
                $0.snapshotLogFraction = 0
                $0.compactionFloor = { floor }
                $0.maxEntriesHeldForArchiving = maxHeld
            }
            for k in 0..<60 {
                node.execute(Command.set(Key("k\(k)"), [1]).encoded()) { _ in }
                node.tick()
                if node.snapshotInFlight { node.collectSnapshots() }
            }
            return try node.core.log.firstIndex()
        }
        #expect(try firstIndexAfterWrites(floor: nil, maxHeld: 1_000) > 40)
        #expect(try firstIndexAfterWrites(floor: 7, maxHeld: 1_000) == 8)
        #expect(try firstIndexAfterWrites(floor: 7, maxHeld: 5) > 40)
    }

    /// After each compaction behind a snapshot the node calls its `compacted` hook, where
    /// production returns the freed log's pages to the system (a node at rest kept them
    /// until the next snapshot when that ran at the end of the snapshot job instead).
    /// One call per snapshot collected, and by the time it returns the log is compacted.
    @Test func test_compactedHookRunsAfterEachCompaction() throws {
        let calls = NIOLockedValueBox(0)
        let (node, _) = try leader(configure: {
            $0.raft.snapshotThreshold = 10
            $0.raft.snapshotTrailingEntries = 0
            $0.snapshotLogFraction = 0
        }, compacted: { calls.withLockedValue { $0 += 1 } })
        var snapshots = 0
        var firstIndexAfterCollecting: [LogIndex] = []
        for k in 0..<60 {
            node.execute(Command.set(Key("k\(k)"), [1]).encoded()) { _ in }
            node.tick()
            if node.snapshotInFlight {
                let before = calls.withLockedValue { $0 }
                node.collectSnapshots()
                snapshots += 1
                #expect(calls.withLockedValue { $0 } == before + 1)
                firstIndexAfterCollecting.append(try node.core.log.firstIndex())
            }
        }
        #expect(snapshots >= 4)
        #expect(calls.withLockedValue { $0 } == snapshots)
        #expect(firstIndexAfterCollecting.allSatisfy { $0 > 1 }, "\(firstIndexAfterCollecting)")
    }

    /// Regression (node simulator): a forwarded write that reached the leader twice (a
    /// duplicated or re-sent message) was appended twice, and the follower answered its
    /// client from the second copy. The leader answers a request id it has seen with the
    /// position it gave the first time.
    @Test func test_forwardedRequestSeenTwiceIsAppendedOnce() throws {
        let (node, transport) = try leader()
        #expect(node.core.role == .leader)
        let before = try node.core.log.lastIndex()
        let request = Message(from: "n2", to: "n1", payload: .clientRequest(
            ClientRequest(requestID: 42, command: Command.set("k", [1]).encoded())))
        node.deliver([request])
        node.deliver([request])
        #expect(try node.core.log.lastIndex() == before + 1)
        let answers = transport.sent.compactMap { message -> ClientResponse.Outcome? in
            if case .clientResponse(let response) = message.payload { return response.outcome }
            return nil
        }
        #expect(answers.count == 2)
        #expect(answers.first == answers.last)
        // Another request id is a new write.
        node.deliver([Message(from: "n2", to: "n1", payload: .clientRequest(
            ClientRequest(requestID: 43, command: Command.set("k", [2]).encoded())))])
        #expect(try node.core.log.lastIndex() == before + 2)
    }
}
