import AegisBackup
import AegisCRDT
import AegisKV
import AegisRaft
@testable import AegisStream
import Testing

@Suite struct StreamFrameTests {
    static func sampleBatch(changes count: Int = 50) -> StreamBatch {
        let changes = (0 ..< count).map { k in
            StreamChange(sourceIndex: UInt64(11 + k), origin: "east",
                         timestamp: HLCTimestamp(physical: 1_700_000_000_000 + UInt64(k), replica: "east"),
                         command: .set(Key("key-\(k)"), Array(repeating: UInt8(k % 7), count: 40)))
        }
        return StreamBatch(source: "east", epoch: 2, afterIndex: 10, lastIndex: UInt64(10 + max(count, 1)),
                           sourceCommit: 500, changes: changes)
    }

    static func available(_ codec: BackupCompression) -> Bool { (try? codec.checkAvailable()) != nil }

    @Test func test_frame_roundTripsWithEveryAvailableCodec() throws {
        let frame = StreamFrame(batch: Self.sampleBatch(), sourceTime: 1_700_000_000_123,
                                leaseToken: LeaseToken(incarnation: 7, nanoseconds: 99))
        for codec in BackupCompression.allCases where Self.available(codec) {
            let bytes = try frame.encoded(compression: codec)
            #expect(try StreamFrame(decoding: bytes, limits: StreamLimits()) == frame, "codec \(codec)")
            if codec != .none { #expect(bytes.count < frame.batch.encodedBody().count, "\(codec) compresses") }
        }
    }

    @Test func test_frame_hasTheDocumentedHeader() throws {
        let bytes = try StreamFrame(batch: Self.sampleBatch(changes: 0), sourceTime: 5).encoded(compression: .none)
        #expect(Array(bytes[0 ..< 4]) == Array("AGST".utf8) && bytes[4] == 1 && bytes[5] == 0 && bytes[6] == 0)
        #expect(bytes.count == StreamFrame.headerSize + Self.sampleBatch(changes: 0).encodedBody().count)
    }

    /// Every kind of damage is refused with a clear error (and nothing decoded).
    @Test func test_frame_rejectsBadInput() throws {
        let good = try StreamFrame(batch: Self.sampleBatch(), sourceTime: 5).encoded(compression: .none)
        func refused(_ bytes: [UInt8], limits: StreamLimits = StreamLimits()) -> StreamError? {
            do {
                _ = try StreamFrame(decoding: bytes, limits: limits)
                return nil
            } catch { return error }
        }
        #expect(refused([]) != nil)
        #expect(refused(Array(good.prefix(StreamFrame.headerSize - 1))) != nil)
        var magic = good; magic[0] = 0
        #expect(refused(magic) == .malformed("not a stream frame (bad magic bytes)"))
        var version = good; version[4] = 2
        #expect(refused(version) == .malformed("frame version 2 is not supported (this build reads 1)"))
        var codec = good; codec[5] = 9
        #expect(refused(codec) == .malformed("unknown compression 9"))
        var flags = good; flags[6] = 1
        #expect(refused(flags) == .malformed("unknown flags 1"))
        var flipped = good; flipped[good.count - 3] ^= 0x40
        #expect(refused(flipped) == .malformed("frame checksum mismatch"))
        #expect(refused(Array(good.dropLast())) != nil)
        #expect(refused(good + [0]) != nil)
        #expect(refused(good, limits: StreamLimits(maxFrameBytes: good.count - 1)) != nil)
        #expect(refused(good, limits: StreamLimits(maxBatchBytes: 100)) != nil)
        #expect(refused(good, limits: StreamLimits(maxBatchEntries: 49)) != nil)
        #expect(refused(good, limits: StreamLimits(maxBatchEntries: 50)) == nil)
    }

    /// A payload that decompresses to more than its header says (a compression bomb)
    /// is refused once it passes the claimed size.
    @Test func test_frame_refusesAPayloadLargerThanItsHeaderSays() throws {
        for codec in [BackupCompression.lz4, .zstd, .gzip] where Self.available(codec) {
            var bytes = try StreamFrame(batch: Self.sampleBatch(), sourceTime: 5).encoded(compression: codec)
            // Claim a smaller body, keep the checksum valid (it covers the payload only).
            bytes[7] = 10; bytes[8] = 0; bytes[9] = 0; bytes[10] = 0
            #expect(throws: StreamError.self) { try StreamFrame(decoding: bytes, limits: StreamLimits()) }
        }
    }

    @Test func test_frame_randomDamageNeverCrashes() throws {
        let good = try StreamFrame(batch: Self.sampleBatch(), sourceTime: 5).encoded(compression: .none)
        var state: UInt64 = 0x1234_5678
        for _ in 0 ..< 2000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            var bytes = good
            let position = Int(state >> 33) % bytes.count
            bytes[position] ^= UInt8(truncatingIfNeeded: state >> 17) | 1
            _ = try? StreamFrame(decoding: bytes, limits: StreamLimits())
        }
    }
}

@Suite struct StreamBatcherTests {
    @Test func test_batcher_keepsClientWritesOnly_withIncreasingTimestamps() {
        var batcher = StreamBatcher(source: "east")
        let entries = [
            LogEntry(index: 5, term: 1, type: .noOp, data: []),
            LogEntry(index: 6, term: 1, data: Command.set("a", [1]).encoded(), timestamp: 2000),
            LogEntry(index: 7, term: 1, data: Command.get("a").encoded(), timestamp: 2001),
            LogEntry(index: 8, term: 2, data: Command.increment("n", by: 1).encoded(), timestamp: 1500),  // new leader behind
            LogEntry(index: 9, term: 2, data: Command.setDRState(DRTransition(epoch: 1, role: .primary)).encoded(), timestamp: 2500),
            LogEntry(index: 10, term: 2, data: [9, 9, 9], timestamp: 2500),
            LogEntry(index: 11, term: 2, data: Command.delete("a").encoded(), timestamp: 2600),
        ]
        let batch = batcher.batch(after: 4, entries: entries, epoch: 3, sourceCommit: 20)
        #expect(batch.afterIndex == 4 && batch.lastIndex == 11 && batch.sourceCommit == 20 && batch.epoch == 3)
        #expect(batch.changes.map(\.sourceIndex) == [6, 8, 11])
        let stamps = batch.changes.map(\.timestamp)
        #expect(stamps == [HLCTimestamp(physical: 2000, replica: "east"), HLCTimestamp(physical: 2000, logical: 1, replica: "east"),
                           HLCTimestamp(physical: 2600, replica: "east")])
        #expect(zip(stamps, stamps.dropFirst()).allSatisfy { $0 < $1 })
        // Its encoding decodes back to the same batch (one layout, in AegisKV).
        #expect((try? StreamBatch(decodingBody: batch.encodedBody())) == batch)
    }
}

@Suite struct WriteLeaseTests {
    final class ManualClock: @unchecked Sendable {
        var nanoseconds: UInt64 = 1_000_000_000
        func advance(millis: UInt64) { nanoseconds += millis * 1_000_000 }
    }

    @Test func test_lease_grantsFromTheEchoedToken_andExpires() {
        let clock = ManualClock()
        let lease = WriteLease(now: { clock.nanoseconds })
        #expect(!lease.isValid)
        let token = lease.token()
        clock.advance(millis: 300)  // the round trip
        lease.renew(echoing: token, leaseMillis: 1000)
        #expect(lease.isValid && lease.remainingMillis == 700)
        clock.advance(millis: 699)
        #expect(lease.isValid)
        clock.advance(millis: 1)
        #expect(!lease.isValid)
    }

    @Test func test_lease_ignoresForeignAndFutureTokens() {
        let clock = ManualClock()
        let lease = WriteLease(now: { clock.nanoseconds })
        lease.renew(echoing: LeaseToken(incarnation: lease.incarnation &+ 1, nanoseconds: clock.nanoseconds), leaseMillis: 1000)
        #expect(!lease.isValid)
        lease.renew(echoing: LeaseToken(incarnation: lease.incarnation, nanoseconds: clock.nanoseconds + 5), leaseMillis: 1000)
        #expect(!lease.isValid)
        lease.renew(echoing: lease.token(), leaseMillis: 1000)
        #expect(lease.isValid)
        lease.revoke()
        #expect(!lease.isValid)
    }

    /// The lease ends no later than the standby's promise, whatever the delays.
    @Test func test_lease_endsBeforeTheStandbysPromise() {
        let clock = ManualClock()
        let lease = WriteLease(now: { clock.nanoseconds })
        let promise = StandbyPromise(now: { clock.nanoseconds })
        let token = lease.token()        // the primary makes a frame
        clock.advance(millis: 40)        // it travels
        promise.willSend()               // the standby asks again, echoing it
        clock.advance(millis: 40)
        lease.renew(echoing: token, leaseMillis: 1000)
        #expect(lease.remainingMillis == 920)
        #expect(promise.millisUntilFree(leaseMillis: 1000) == 960)
        clock.advance(millis: 920)
        #expect(!lease.isValid && promise.millisUntilFree(leaseMillis: 1000) == 40)
        clock.advance(millis: 40)
        #expect(promise.millisUntilFree(leaseMillis: 1000) == 0)
    }
}

@Suite struct WriteGateTests {
    @Test func test_gate_refusesWritesOnStandbyFencedAndLeaselessPrimary() {
        let clock = WriteLeaseTests.ManualClock()
        let lease = WriteLease(now: { clock.nanoseconds })
        let write = Command.set("k", [1]).encoded(), read = Command.get("k").encoded()
        let control = Command.setDRState(DRTransition(epoch: 9, role: .primary)).encoded()
        var dr = DRState()
        #expect(WriteGate.refusal(for: write, state: dr, lease: lease) == nil)  // no lease asked: writes pass
        dr.leaseMillis = 1000
        let expired = WriteGate.refusal(for: write, state: dr, lease: lease)
        #expect(expired?.hasPrefix("READONLY You can't write against a read only replica. primary: unknown (write lease expired") == true)
        #expect(WriteGate.refusal(for: read, state: dr, lease: lease) == nil)
        #expect(WriteGate.refusal(for: control, state: dr, lease: lease) == nil)
        lease.renew(echoing: lease.token(), leaseMillis: 1000)
        #expect(WriteGate.refusal(for: write, state: dr, lease: lease) == nil)
        clock.advance(millis: 1000)  // the lease runs out: writes stop on their own
        #expect(WriteGate.refusal(for: write, state: dr, lease: lease) != nil)
        dr.role = .fenced
        dr.primary = "10.0.0.2:6379"
        #expect(WriteGate.refusal(for: write, state: dr, lease: lease)
                == "READONLY You can't write against a read only replica. primary: 10.0.0.2:6379 (this cluster is fenced at epoch 0)")
        dr.role = .standby
        #expect(WriteGate.refusal(for: Command.collection("s", .setAdd([[1]])).encoded(), state: dr, lease: lease) != nil)
        #expect(WriteGate.refusal(for: Command.collection("s", .setMembers).encoded(), state: dr, lease: lease) == nil)
    }

    @Test func test_gate_refusesWritesOfAClusterStartedAsAStandbyThatIsNotOneYet() {
        let lease = WriteLease()
        let write = Command.set("k", [1]).encoded()
        let become = Command.setDRState(DRTransition(epoch: 0, role: .standby, primary: "p:1", primaryAdmin: "p:2")).encoded()
        #expect(WriteGate.refusal(for: write, state: DRState(), lease: lease) == nil)  // not asked to be a standby
        #expect(WriteGate.refusal(for: write, state: DRState(), lease: lease, pendingStandby: "10.0.0.1:8001")
                == "READONLY You can't write against a read only replica. primary: unknown (this cluster starts as a standby "
                + "of 10.0.0.1:8001 and has not reached it yet)")
        #expect(WriteGate.refusal(for: become, state: DRState(), lease: lease, pendingStandby: "10.0.0.1:8001") == nil)
        #expect(WriteGate.refusal(for: Command.get("k").encoded(), state: DRState(), lease: lease, pendingStandby: "x") == nil)
    }
}

@Suite struct MonotonicClockTests {
    /// The first reading ever is 0 or more (its origin is set on first use): it trapped
    /// once on a negative conversion.
    @Test func test_monotonicNanoseconds_neverTraps_andDurationsSaturate() {
        let first = WriteLease.monotonicNanoseconds()
        #expect(WriteLease.monotonicNanoseconds() >= first)
        #expect(WriteLease.nanoseconds(.milliseconds(-5)) == 0)
        #expect(WriteLease.nanoseconds(.milliseconds(1500)) == 1_500_000_000)
        #expect(WriteLease.nanoseconds(.seconds(Int64.max)) == UInt64.max)
    }
}
