@testable import AegisKV
import AegisCRDT
import AegisRaft
import Testing

/// The DR rules of the state machine: read-only roles, epochs (fencing), link cursors
/// (exactly-once apply of stream batches), and the DR section of snapshots.
@Suite struct DRStateTests {
    static func change(_ index: UInt64, _ command: Command, source: String = "east") -> StreamChange {
        StreamChange(sourceIndex: index, origin: ReplicaID(source), timestamp: HLCTimestamp(physical: 1000 + index, replica: ReplicaID(source)),
                     command: command)
    }

    static func batch(after: UInt64, last: UInt64, epoch: UInt64 = 0, _ changes: [StreamChange]) -> Command {
        .streamBatch(StreamBatch(source: "east", epoch: epoch, afterIndex: after, lastIndex: last, sourceCommit: last + 5,
                                 changes: changes))
    }

    static func standby(epoch: UInt64 = 0) -> StateMachine {
        var machine = StateMachine()
        applyAll(&machine, [.setDRState(DRTransition(epoch: epoch, role: .standby, primary: "10.0.0.1:6379"))])
        return machine
    }

    @Test func test_standby_refusesClientWritesButServesReads() {
        var machine = Self.standby()
        let results = applyAll(&machine, [.set("k", bytes("v")), .get("k"), .increment("n", by: 1),
                                          .collection("s", .setAdd([bytes("a")])), .collection("s", .setMembers)])
        #expect(results[0].error == .readOnly(role: .standby, epoch: 0, primary: "10.0.0.1:6379"))
        #expect(results[1].error == nil)
        #expect(results[2].error == .readOnly(role: .standby, epoch: 0, primary: "10.0.0.1:6379"))
        #expect(results[3].error != nil && results[4].error == nil)
        #expect(machine.isEmpty)
        #expect(results[0].error?.description.hasPrefix("You can't write against a read only replica. primary: 10.0.0.1:6379") == true)
    }

    @Test func test_streamBatch_appliesChangesAndCursorOnce() {
        var machine = Self.standby()
        let first = Self.batch(after: 0, last: 3, [Self.change(1, .set("a", bytes("1"))), Self.change(3, .increment("n", by: 2))])
        let r1 = applyAll(&machine, [first])[0]
        #expect(r1.error == nil && r1.integer == 3 && r1.keyCount == 2)
        #expect(machine.get("a")?.value == bytes("1") && machine.get("n")?.value == bytes("2"))
        // The same batch again (a re-send after a lost answer) applies nothing.
        let r2 = applyAll(&machine, [first])[0]
        #expect(r2.error == nil && r2.integer == 3 && r2.keyCount == 0)
        #expect(machine.get("n")?.value == bytes("2"))
        // An overlapping batch applies only what is past the cursor.
        let overlap = Self.batch(after: 1, last: 5, [Self.change(3, .increment("n", by: 2)), Self.change(5, .increment("n", by: 10))])
        let r3 = applyAll(&machine, [overlap])[0]
        #expect(r3.integer == 5 && r3.keyCount == 1 && machine.get("n")?.value == bytes("12"))
        #expect(machine.drState.cursors["east"] == StreamCursor(lastIndex: 5, epoch: 0, lastPhysical: 1005, sourceCommit: 10))
    }

    @Test func test_streamBatch_afterAGap_isRefusedAndChangesNothing() {
        var machine = Self.standby()
        applyAll(&machine, [Self.batch(after: 0, last: 2, [Self.change(2, .set("a", bytes("1")))])])
        let gap = applyAll(&machine, [Self.batch(after: 4, last: 6, [Self.change(6, .set("b", bytes("2")))])])[0]
        #expect(gap.error == .streamGap(source: "east", cursor: 2, afterIndex: 4))
        #expect(gap.integer == 2 && machine.get("b") == nil && machine.drState.cursors["east"]?.lastIndex == 2)
    }

    @Test func test_epoch_lowerBatchOrTransitionIsRefused() {
        var machine = Self.standby(epoch: 4)
        let stale = applyAll(&machine, [Self.batch(after: 0, last: 1, epoch: 3, [Self.change(1, .set("a", bytes("1")))])])[0]
        #expect(stale.error == .staleEpoch(received: 3, current: 4, primary: "10.0.0.1:6379"))
        #expect(machine.get("a") == nil && machine.drState.cursors.isEmpty)
        // A higher epoch from the primary is followed.
        applyAll(&machine, [Self.batch(after: 0, last: 1, epoch: 5, [Self.change(1, .set("a", bytes("1")))])])
        #expect(machine.drState.epoch == 5 && machine.get("a") != nil)
        let lower = applyAll(&machine, [.setDRState(DRTransition(epoch: 4, role: .primary))])[0]
        #expect(lower.error == .staleEpoch(received: 4, current: 5, primary: "10.0.0.1:6379"))
        // Promotion must raise the epoch.
        let same = applyAll(&machine, [.setDRState(DRTransition(epoch: 5, role: .primary))])[0]
        #expect(same.error != nil && machine.drState.role == .standby)
        let promoted = applyAll(&machine, [.setDRState(DRTransition(epoch: 6, role: .primary))])[0]
        #expect(promoted.error == nil && machine.drState.role == .primary && machine.drState.epoch == 6)
        #expect(applyAll(&machine, [.set("b", bytes("2"))])[0].error == nil)
        // A promoted cluster refuses the old primary's batches.
        let late = applyAll(&machine, [Self.batch(after: 1, last: 2, epoch: 5, [Self.change(2, .set("c", bytes("3")))])])[0]
        #expect(late.error == .staleEpoch(received: 5, current: 6, primary: ""))
        #expect(machine.get("c") == nil)
    }

    @Test func test_primary_refusesStreamBatches_fencedRefusesWrites() {
        var machine = StateMachine()
        let refused = applyAll(&machine, [Self.batch(after: 0, last: 1, [Self.change(1, .set("a", bytes("1")))])])[0]
        #expect(refused.error == .notStandby(role: .primary, epoch: 0) && machine.get("a") == nil)
        applyAll(&machine, [.setDRState(DRTransition(epoch: 2, role: .fenced, primary: "new:1"))])
        #expect(applyAll(&machine, [.set("a", bytes("1"))])[0].error == .readOnly(role: .fenced, epoch: 2, primary: "new:1"))
    }

    @Test func test_resumeTransition_setsTheCursor() {
        var machine = StateMachine()
        applyAll(&machine, [.setDRState(DRTransition(epoch: 3, role: .standby, primary: "p:1", resumeSource: "west", resumeIndex: 40))])
        #expect(machine.drState.cursors["west"]?.lastIndex == 40)
        let early = applyAll(&machine, [.streamBatch(StreamBatch(source: "west", epoch: 3, afterIndex: 39, lastIndex: 41,
                                                                  sourceCommit: 41, changes: [Self.change(40, .set("x", []), source: "west"),
                                                                                              Self.change(41, .set("y", []), source: "west")]))])[0]
        #expect(early.keyCount == 1 && machine.get("x") == nil && machine.get("y") != nil)
    }

    @Test func test_snapshot_carriesTheDRState_andRestoresIt() throws {
        var machine = Self.standby(epoch: 2)
        applyAll(&machine, [Self.batch(after: 0, last: 7, epoch: 2, [Self.change(7, .set("a", bytes("1")))])])
        let data = machine.snapshotData()
        #expect(data[4] == 3)
        var chunks = machine.snapshotChunks(chunkSize: 7)
        var streamed: [UInt8] = []
        while let chunk = chunks.next() { streamed += chunk }
        #expect(streamed == data && machine.snapshotChunks().byteCount == data.count)
        var restored = StateMachine()
        try restored.restore(from: Snapshot(data: data))
        #expect(restored.drState == machine.drState && restored.digest() == machine.digest())
        // Restored as a standby: still read-only, and the cursor still deduplicates.
        #expect(applyAll(&restored, [.set("b", [])])[0].error != nil)
        #expect(applyAll(&restored, [Self.batch(after: 0, last: 7, epoch: 2, [Self.change(7, .increment("z", by: 1))])])[0].keyCount == 0)
    }

    @Test func test_snapshot_badDRSection_isRefused() throws {
        var machine = Self.standby(epoch: 1)
        applyAll(&machine, [Self.batch(after: 0, last: 1, epoch: 1, [])])
        let good = machine.snapshotData()
        // The DR section is just before the 4-byte trailer: corrupt its role byte and re-seal.
        let section = machine.drState.snapshotSection()
        let start = good.count - 4 - section.count
        var bad = Array(good[..<(good.count - 4)])
        bad[start + 2] = 9  // length (1 byte), epoch (1 byte), then the role
        bad.appendUInt32LE(CRC32C.checksum(bad))
        var target = StateMachine()
        #expect(throws: KVError.self) { try target.restore(from: Snapshot(data: bad)) }
        #expect(target.drState == DRState() && target.appliedIndex == 0)
    }

    @Test func test_batchDecoding_isStrict() {
        let good = Self.batch(after: 2, last: 5, [Self.change(3, .set("a", [])), Self.change(5, .set("b", []))])
        #expect((try? Command(decoding: good.encoded())) == good)
        let outOfOrder = Self.batch(after: 2, last: 5, [Self.change(5, .set("a", [])), Self.change(4, .set("b", []))])
        #expect(throws: KVError.self) { try Command(decoding: outOfOrder.encoded()) }
        let outside = Self.batch(after: 2, last: 5, [Self.change(2, .set("a", []))])
        #expect(throws: KVError.self) { try Command(decoding: outside.encoded()) }
        let read = Self.batch(after: 0, last: 1, [Self.change(1, .get("a"))])
        #expect(throws: KVError.self) { try Command(decoding: read.encoded()) }
        let nested = Self.batch(after: 0, last: 1, [Self.change(1, Self.batch(after: 0, last: 0, []))])
        #expect(throws: KVError.self) { try Command(decoding: nested.encoded()) }
        let backwards = Command.streamBatch(StreamBatch(source: "e", epoch: 0, afterIndex: 5, lastIndex: 4, sourceCommit: 9, changes: []))
        #expect(throws: KVError.self) { try Command(decoding: backwards.encoded()) }
        var truncated = good.encoded()
        truncated.removeLast()
        #expect(throws: KVError.self) { try Command(decoding: truncated) }
        let badRole: [UInt8] = [4, 41, 1, 7, 0, 0, 0, 0, 0]
        #expect(throws: KVError.self) { try Command(decoding: badRole) }
    }
}
