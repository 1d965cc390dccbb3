import AegisBackup
import AegisCRDT
import AegisKV
@testable import AegisStream
import Testing

@Suite struct ActiveActiveFrameTests {
    static func sampleBatch(states count: Int = 30) -> ActiveActiveBatch {
        var states: [ActiveActiveKeyState] = []
        for k in 0 ..< count {
            let stamp = HLCTimestamp(physical: 1_700_000_000_000 + UInt64(k), replica: "east")
            let counters: [ReplicaID: CounterContribution] = k % 2 == 0 ? [:] : ["east": CounterContribution(increments: 3)]
            let string = ActiveActiveString(stamp: stamp, value: Array(repeating: UInt8(k % 7), count: 40), counters: counters)
            states.append(ActiveActiveKeyState(key: Key("key-\(1000 + k)"), string: string))
        }
        return ActiveActiveBatch(source: "east", afterIndex: 10, lastIndex: 90, sourceCommit: 120, sourceTime: 5,
                                 states: states)
    }

    @Test func test_frame_roundTrips_asVersion2() throws {
        let frame = ActiveActiveFrame(batch: Self.sampleBatch(), sourceTime: 1_700_000_000_123)
        for codec in BackupCompression.allCases where (try? codec.checkAvailable()) != nil {
            let bytes = try frame.encoded(compression: codec)
            #expect(bytes[4] == 2)
            let decoded = try ActiveActiveFrame(decoding: bytes, limits: StreamLimits())
            #expect(decoded == frame, "codec \(codec)")
            // What a receiver proposes is the batch's own command, from the bytes received.
            #expect(decoded.mergeCommand == Command.activeActiveBatch(frame.batch).encoded(), "codec \(codec)")
        }
    }

    @Test func test_versions_areNotMistakenForEachOther_andLimitsHold() throws {
        let aa = try ActiveActiveFrame(batch: Self.sampleBatch(), sourceTime: 1).encoded(compression: .none)
        #expect(throws: StreamError.malformed("frame version 2 is not supported (this build reads 1)")) {
            try StreamFrame(decoding: aa, limits: StreamLimits())
        }
        let dr = try StreamFrame(batch: StreamBatch(source: "e", epoch: 0, afterIndex: 0, lastIndex: 0, sourceCommit: 0,
                                                    changes: []), sourceTime: 1).encoded(compression: .none)
        #expect(throws: StreamError.malformed("frame version 1 is not supported (this build reads 2)")) {
            try ActiveActiveFrame(decoding: dr, limits: StreamLimits())
        }
        var limits = StreamLimits()
        limits.maxBatchEntries = 10
        #expect(throws: StreamError.self) { try ActiveActiveFrame(decoding: aa, limits: limits) }
        var corrupt = aa
        corrupt[corrupt.count - 1] ^= 0xFF
        #expect(throws: StreamError.malformed("frame checksum mismatch")) {
            try ActiveActiveFrame(decoding: corrupt, limits: StreamLimits())
        }
    }
}
