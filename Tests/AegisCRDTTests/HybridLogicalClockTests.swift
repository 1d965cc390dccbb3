import AegisCRDT
import PropertyBased
import Testing

/// A physical clock a test moves by hand, backwards too.
struct ManualClock: PhysicalClock {
    var time: UInt64
    func now() -> UInt64 { time }
}

@Test func test_hybridLogicalClock_staysMonotonicWhenTheWallClockJumpsBack() async {
    // Each step: a physical-time change (possibly a large backward jump) and, on odd
    // steps, a message from another replica with a timestamp near that time.
    let steps = Gen.int(in: -5_000...1_000).array(of: 1...60)
    await propertyCheck(count: propertyCases, input: steps) { deltas in
        var clock = HybridLogicalClock(replica: "local", maximumSkew: 10_000, skewPolicy: .reject)
        var wall = ManualClock(time: 1_000_000)
        var previous = clock.last
        var highestPhysical: UInt64 = 0
        for (index, delta) in deltas.enumerated() {
            wall.time = UInt64(Int64(wall.time) + Int64(delta))
            highestPhysical = max(highestPhysical, wall.time)
            let stamp: HLCTimestamp
            if index % 2 == 1 {
                let remote = HLCTimestamp(physical: wall.time + UInt64(index), logical: 3, replica: "remote")
                stamp = try clock.receive(remote, from: wall).timestamp
                #expect(stamp > remote)
                highestPhysical = max(highestPhysical, remote.physical)
            } else {
                stamp = try clock.now(from: wall)
            }
            #expect(stamp > previous, "timestamp went backwards")
            #expect(stamp.physical == highestPhysical, "physical part is not the highest time seen")
            previous = stamp
        }
    }
}

@Test func test_hybridLogicalClock_logicalCounterOrdersEventsWhileTheClockIsBehind() throws {
    var clock = HybridLogicalClock(replica: "a")
    let first = try clock.now(physicalTime: 500)
    let second = try clock.now(physicalTime: 100)
    let third = try clock.now(physicalTime: 501)
    #expect(first == HLCTimestamp(physical: 500, logical: 0, replica: "a"))
    #expect(second == HLCTimestamp(physical: 500, logical: 1, replica: "a"))
    #expect(third == HLCTimestamp(physical: 501, logical: 0, replica: "a"))
}

@Test func test_hybridLogicalClock_rejectsTimestampsBeyondMaximumSkewWithoutMoving() throws {
    var clock = HybridLogicalClock(replica: "a", maximumSkew: 1_000, skewPolicy: .reject)
    _ = try clock.now(physicalTime: 10_000)
    let before = clock.last
    let future = HLCTimestamp(physical: 11_001, replica: "b")
    #expect { try clock.receive(future, physicalTime: 10_000) } throws: { error in
        (error as? CRDTError)?.code == .clockSkew
    }
    #expect(clock.last == before)
    let nearFuture = HLCTimestamp(physical: 11_000, replica: "b")
    let receipt = try clock.receive(nearFuture, physicalTime: 10_000)
    #expect(!receipt.exceededMaximumSkew)
    #expect(receipt.remoteLead == 1_000)
}

@Test func test_hybridLogicalClock_flagsTimestampsBeyondMaximumSkew() throws {
    var clock = HybridLogicalClock(replica: "a", maximumSkew: 1_000, skewPolicy: .flag)
    let receipt = try clock.receive(HLCTimestamp(physical: 50_000, logical: 2, replica: "b"), physicalTime: 10_000)
    #expect(receipt.exceededMaximumSkew)
    #expect(receipt.remoteLead == 40_000)
    #expect(receipt.timestamp == HLCTimestamp(physical: 50_000, logical: 3, replica: "a"))
}

@Test func test_hybridLogicalClock_exhaustedLogicalCounterThrows() throws {
    var clock = HybridLogicalClock(replica: "a", skewPolicy: .flag)
    _ = try clock.receive(HLCTimestamp(physical: 7, logical: .max - 1, replica: "b"), physicalTime: 7)
    #expect(clock.last.logical == .max)
    #expect(throws: CRDTError.self) { try clock.now(physicalTime: 7) }
}

@Test func test_hlcTimestamp_ordersByPhysicalThenLogicalThenReplica() {
    let stamps = [
        HLCTimestamp(physical: 2, logical: 0, replica: "a"),
        HLCTimestamp(physical: 1, logical: 5, replica: "z"),
        HLCTimestamp(physical: 1, logical: 5, replica: "b"),
        HLCTimestamp(physical: 1, logical: 0, replica: "z"),
    ]
    #expect(stamps.sorted() == stamps.reversed())
}
