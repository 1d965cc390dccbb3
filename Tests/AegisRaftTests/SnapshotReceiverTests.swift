import AegisRaft
import AegisTestKit
import Testing

/// Records the calls the core makes, keeps the bytes in memory, and can fail on demand.
private final class RecordingReceiver: SnapshotReceiver {
    struct Failure: Error {}
    var calls: [String] = []
    var data: [UInt8] = []
    var failAppendAt: UInt64?

    func begin(_ metadata: SnapshotMetadata) throws {
        calls.append("begin \(metadata.index)")
        data = []
    }

    func append(_ bytes: [UInt8], at offset: UInt64) throws {
        calls.append("append \(offset) \(bytes.count)")
        if offset == failAppendAt { throw Failure() }
        data += bytes
    }

    func finish() throws -> [UInt8] {
        calls.append("finish")
        return data
    }

    func abort() { calls.append("abort") }
}

private let meta = SnapshotMetadata(index: 50, term: 2, confState: ConfState(voters: ["n1", "n2", "n3"]))

private func chunk(_ offset: UInt64, _ data: [UInt8], done: Bool) -> RaftMessage {
    RaftMessage(from: "n1", to: "n2", payload: .installSnapshot(InstallSnapshotRequest(
        term: 2, leaderID: "n1", metadata: meta, offset: offset, data: data, done: done)))
}

private func follower(_ receiver: RecordingReceiver, maxSnapshotBytes: UInt64? = nil) throws -> RaftCore {
    var config = plainConfig()
    if let maxSnapshotBytes { config.maxSnapshotBytes = maxSnapshotBytes }
    let s = MemoryStorage(conf: ConfState(voters: ["n1", "n2", "n3"]))
    return try RaftCore(id: "n2", config: config, storage: s, snapshotReceiver: receiver)
}

@Suite struct SnapshotReceiverTests {
    @Test func test_snapshotReceiver_chunksGoThroughTheInjectedReceiver() throws {
        let receiver = RecordingReceiver()
        var core = try follower(receiver)
        try core.step(chunk(0, [1, 2, 3], done: false))
        try core.step(chunk(0, [1, 2, 3], done: false))  // duplicate of the first: restarts
        try core.step(chunk(3, [4, 5], done: false))
        try core.step(chunk(3, [4, 5], done: false))  // duplicate: answered, not stored
        try core.step(chunk(5, [6], done: true))
        #expect(receiver.calls == ["begin 50", "append 0 3", "abort", "begin 50", "append 0 3", "append 3 2",
                                   "append 5 1", "finish"])
        let rd = try core.ready()
        #expect(rd.snapshot == Snapshot(metadata: meta, data: [1, 2, 3, 4, 5, 6]))
        #expect(core.stats.snapshotsInstalled == 1)
    }

    @Test func test_snapshotReceiver_failureDropsTheTransferAndThrows() throws {
        let receiver = RecordingReceiver()
        receiver.failAppendAt = 3
        var core = try follower(receiver)
        try core.step(chunk(0, [1, 2, 3], done: false))
        #expect(throws: RaftError.self) { try core.step(chunk(3, [4], done: true)) }
        #expect(receiver.calls.last == "abort")
        // The transfer is gone: a later chunk is refused, the leader restarts from 0.
        receiver.failAppendAt = nil
        try core.step(chunk(4, [5], done: true))
        let rd = try core.ready()
        #expect(rd.snapshot == nil)
        #expect(rd.messages.last.map(InteractionEnv.describe) == "n2->n1 SnapResp term=2 snap=50 next=0 rejected")
    }

    // Reassembly is bounded: a chunk that takes the snapshot past maxSnapshotBytes is
    // refused and the partial snapshot dropped.
    @Test func test_snapshotReceiver_snapshotLargerThanTheLimitIsRefused() throws {
        let receiver = RecordingReceiver()
        var core = try follower(receiver, maxSnapshotBytes: 5)
        try core.step(chunk(0, [1, 2, 3], done: false))
        try core.step(chunk(3, [4, 5, 6], done: true))
        #expect(receiver.calls == ["begin 50", "append 0 3", "abort"])
        #expect(core.stats.snapshotChunksRefused == 1)
        let rd = try core.ready()
        #expect(rd.snapshot == nil)
        #expect(rd.messages.map(InteractionEnv.describe) == [
            "n2->n1 SnapResp term=2 snap=50 next=3", "n2->n1 SnapResp term=2 snap=50 next=0 rejected",
        ])
    }

    @Test func test_snapshotReceiver_memoryReceiverReassembles() throws {
        let receiver = MemorySnapshotReceiver()
        try receiver.begin(meta)
        try receiver.append([1, 2], at: 0)
        #expect(throws: RaftError.self) { try receiver.append([9], at: 7) }
        try receiver.append([3], at: 2)
        #expect(try receiver.finish() == [1, 2, 3])
        #expect(throws: RaftError.self) { try receiver.finish() }
    }
}
