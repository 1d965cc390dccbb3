import AegisCRDT
import Testing

enum GCounterModel: ReplicatedModel {
    static func randomOperation(
        _ state: inout GCounter, replica: ReplicaID, timestamp: HLCTimestamp, rng: inout SplitMix64
    ) throws -> (UInt64, delta: GCounter) {
        let amount = UInt64.random(in: 1...5, using: &rng)
        return (amount, try state.increment(by: amount, at: replica))
    }

    static func checkSpecification(_ state: GCounter, log: [LoggedOperation<UInt64>]) {
        #expect(state.value == log.reduce(0) { $0 + $1.operation })
    }
}

enum PNCounterModel: ReplicatedModel {
    static func randomOperation(
        _ state: inout PNCounter, replica: ReplicaID, timestamp: HLCTimestamp, rng: inout SplitMix64
    ) throws -> (Int64, delta: PNCounter) {
        let amount = Int64.random(in: -5...5, using: &rng)
        return (amount, try state.add(amount, at: replica))
    }

    static func checkSpecification(_ state: PNCounter, log: [LoggedOperation<Int64>]) {
        #expect(state.value == log.reduce(0) { $0 + $1.operation })
    }
}

@Test func test_gCounter_joinLawsAndInflationHold() async { await joinLawsProperty(GCounterModel.self) }

@Test func test_gCounter_replicasConvergeToTheSumOfIncrements() async { await convergenceProperty(GCounterModel.self) }

@Test func test_pnCounter_joinLawsAndInflationHold() async { await joinLawsProperty(PNCounterModel.self) }

@Test func test_pnCounter_replicasConvergeToIncrementsMinusDecrements() async { await convergenceProperty(PNCounterModel.self) }

@Test func test_gCounter_incrementReturnsOnlyTheChangedEntry() throws {
    var counter = GCounter()
    try counter.increment(by: 3, at: "a")
    let delta = try counter.increment(by: 2, at: "b")
    #expect(delta.counts == ["b": 2])
    #expect(counter.value == 5)
}

@Test func test_gCounter_overflowingIncrementThrowsAndChangesNothing() throws {
    var counter = GCounter()
    try counter.increment(by: .max, at: "a")
    #expect(throws: CRDTError.self) { try counter.increment(by: 1, at: "a") }
    #expect(counter.count(of: "a") == .max)
}

@Test func test_pnCounter_valueIsExactBeyond64BitSumsAndClampsOutsideInt64() throws {
    var counter = PNCounter()
    try counter.decrement(by: .max, at: "a")
    #expect(counter.value == .min)
    try counter.increment(by: .max, at: "b")
    try counter.increment(by: .max, at: "c")
    #expect(counter.value == .max)
    try counter.decrement(by: .max - 5, at: "d")
    #expect(counter.value == 5)
}
