import AegisKV
import AegisRaft
@testable import AegisReplication
import AegisStorage
import Foundation
import Logging
import Testing

/// A node's restart parses its stored snapshot as the storage streams the file
/// (`NodeConfiguration.snapshotPreparer`), and the node starts from that state.
@Suite struct SnapshotPreparerTests {
    /// A state machine with `count` keys, values of up to 20 KB (larger than the test's
    /// chunks would be at production sizes: several cross a chunk boundary).
    static func machine(keys count: Int) -> StateMachine {
        var machine = StateMachine()
        for n in 1...count {
            let value = Array(repeating: UInt8(truncatingIfNeeded: n), count: n % 10 == 0 ? 20_000 : n % 300)
            let command = Command.set(Key("key:\(n)"), value)
            _ = machine.apply(LogEntry(index: LogIndex(n), term: 1, data: command.encoded()))
        }
        return machine
    }

    @Test func test_restart_startsFromTheStateParsedWhileTheStorageOpened() throws {
        let dir = temporaryDirectory("prepare")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = Self.machine(keys: 1_000)
        let conf = ConfState(voters: ["n1"])
        let storage = try DiskStorage(directory: dir, options: DiskStorageOptions(segmentSize: 1 << 20, initialConf: conf))
        try storage.append((1...1_000).map { LogEntry(index: LogIndex($0), term: 1, data: []) })
        _ = try storage.createSnapshot(at: 1_000, conf: conf, data: source.snapshotData())
        storage.close()

        let config = NodeConfiguration(nodeID: "n1", bootstrapVoters: ["n1"])
        var options = DiskStorageOptions(segmentSize: 1 << 20, initialConf: conf)
        options.snapshotPreparer = config.snapshotPreparer
        // What the storage prepared is the whole state.
        let first = try DiskStorage(directory: dir, options: options)
        let prepared = first.takePreparedSnapshot() as? PreparedStateMachine
        first.close()
        #expect(prepared?.machine.digest() == source.digest())
        #expect(prepared?.dataBytes == source.snapshotData().count)
        // The node starts from it.
        let reopened = try DiskStorage(directory: dir, options: options)
        defer { reopened.close() }
        let (_, machine, bytes) = try NodeLoop.open(configuration: config, storage: reopened, randomSeed: 1,
                                                    logger: Logger(label: "test"))
        #expect(machine.digest() == source.digest())
        #expect(machine.appliedIndex == 1_000)
        #expect(bytes == source.snapshotData().count)
        #expect(reopened.takePreparedSnapshot() == nil)  // handed out once
    }

    /// A snapshot whose file is intact but whose data the state machine refuses (not a
    /// key-value snapshot) yields no prepared state; the node then reads the file itself
    /// and fails with the state machine's error rather than starting empty.
    @Test func test_restart_withDataTheStateMachineRefuses_failsClearly() throws {
        let dir = temporaryDirectory("prepare-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let conf = ConfState(voters: ["n1"])
        let storage = try DiskStorage(directory: dir, options: DiskStorageOptions(segmentSize: 1 << 20, initialConf: conf))
        try storage.append((1...10).map { LogEntry(index: LogIndex($0), term: 1, data: []) })
        _ = try storage.createSnapshot(at: 10, conf: conf, data: Array(repeating: 0xAB, count: 50_000))
        storage.close()

        let config = NodeConfiguration(nodeID: "n1", bootstrapVoters: ["n1"])
        var options = DiskStorageOptions(segmentSize: 1 << 20, initialConf: conf)
        options.snapshotPreparer = config.snapshotPreparer
        let reopened = try DiskStorage(directory: dir, options: options)
        defer { reopened.close() }
        #expect(throws: KVError.self) {
            _ = try NodeLoop.open(configuration: config, storage: reopened, randomSeed: 1, logger: Logger(label: "test"))
        }
    }
}

/// The slab source prepares at most its budget, at most `ahead` at a time, and every
/// slab it hands out is whole, writable memory of the arena's slab size.
@Test func test_prefaultingSlabSource_handsOutItsBudgetAndNoMore() async throws {
    let lease = PrefaultingSlabSource.Lease(budget: 5, ahead: 2)
    var taken: [UnsafeMutableRawPointer] = []
    let deadline = ContinuousClock.now + .seconds(10)
    while taken.count < 5 && ContinuousClock.now < deadline {
        if let slab = lease.source.takeSlab() { taken.append(slab) } else { try await Task.sleep(for: .milliseconds(1)) }
    }
    #expect(taken.count == 5)
    try await Task.sleep(for: .milliseconds(50))
    #expect(lease.source.takeSlab() == nil)
    for slab in taken {
        slab.initializeMemory(as: UInt8.self, repeating: 0xA5, count: StateMachine.arenaSlabBytes)
        #expect(slab.load(fromByteOffset: StateMachine.arenaSlabBytes - 1, as: UInt8.self) == 0xA5)
        slab.deallocate()
    }
}

/// A reader that takes its slabs from a source restores the same state, uses the
/// source for full-size slabs, and the restored machine no longer asks it.
@Test func test_snapshotReader_withASlabSource_restoresTheSameState() throws {
    final class Counting: ArenaSlabSource, @unchecked Sendable {
        var taken = 0
        func takeSlab() -> UnsafeMutableRawPointer? {
            taken += 1
            return UnsafeMutableRawPointer.allocate(byteCount: StateMachine.arenaSlabBytes, alignment: 16)
        }
    }
    var source = StateMachine()
    for n in 1...400 {  // about 20 MB of values: several full slabs
        let command = Command.set(Key("k\(n)"), Array(repeating: UInt8(truncatingIfNeeded: n), count: 50_000 + n))
        _ = source.apply(LogEntry(index: LogIndex(n), term: 1, data: command.encoded()))
    }
    let data = source.snapshotData()
    let counting = Counting()
    var reader = source.makeSnapshotReader()
    reader.announce(totalBytes: data.count)
    reader.takeSlabs(from: counting)
    try reader.feed(data)
    var restored = StateMachine()
    try restored.restore(from: reader)
    #expect(restored.digest() == source.digest())
    #expect(counting.taken >= 3)
    let before = counting.taken
    for n in 401...600 {
        let command = Command.set(Key("k\(n)"), Array(repeating: 1, count: 50_000))
        _ = restored.apply(LogEntry(index: LogIndex(n), term: 1, data: command.encoded()))
    }
    #expect(counting.taken == before)
}
