import AegisCRDT
import Testing

enum LWWRegisterModel: ReplicatedModel {
    static func randomOperation(
        _ state: inout LWWRegister<Int>, replica: ReplicaID, timestamp: HLCTimestamp, rng: inout SplitMix64
    ) throws -> (Int, delta: LWWRegister<Int>) {
        let value = Int.random(in: 0..<100, using: &rng)
        state.assign(value, at: timestamp)
        return (value, LWWRegister(value, at: timestamp))
    }

    static func checkSpecification(_ state: LWWRegister<Int>, log: [LoggedOperation<Int>]) {
        let newest = log.max { $0.timestamp < $1.timestamp }
        #expect(state.value == newest?.operation)
        #expect(state.timestamp == newest?.timestamp)
    }
}

@Test func test_lwwRegister_joinLawsAndInflationHold() async { await joinLawsProperty(LWWRegisterModel.self) }

@Test func test_lwwRegister_replicasConvergeToTheNewestWrite() async { await convergenceProperty(LWWRegisterModel.self) }

@Test func test_lwwRegister_replicaIDBreaksTimestampTies() {
    var fromA = LWWRegister("a", at: HLCTimestamp(physical: 10, logical: 0, replica: "node-a"))
    let fromB = LWWRegister("b", at: HLCTimestamp(physical: 10, logical: 0, replica: "node-b"))
    fromA.merge(fromB)
    #expect(fromA.value == "b")
    #expect(fromB.merged(with: LWWRegister("a", at: HLCTimestamp(physical: 10, logical: 0, replica: "node-a"))).value == "b")
}

@Test func test_lwwRegister_olderAssignmentIsIgnored() {
    var register = LWWRegister("new", at: HLCTimestamp(physical: 20, replica: "a"))
    let applied = register.assign("old", at: HLCTimestamp(physical: 19, logical: 7, replica: "z"))
    #expect(!applied)
    #expect(register.value == "new")
}

@Test func test_lwwRegister_causallyLaterWriteWinsDespiteSlowerWallClock() throws {
    // b's wall clock is behind a's, but b has seen a's write, so its HLC is ahead.
    var clockA = HybridLogicalClock(replica: "a")
    var clockB = HybridLogicalClock(replica: "b")
    let first = try clockA.now(physicalTime: 5_000)
    var register = LWWRegister("from a", at: first)
    let seen = try clockB.receive(first, physicalTime: 1_000).timestamp
    register.assign("from b", at: try clockB.now(physicalTime: 1_001))
    #expect(seen > first)
    #expect(register.value == "from b")
}
