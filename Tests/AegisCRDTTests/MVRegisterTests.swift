import AegisCRDT
import Testing

enum MVRegisterModel: ReplicatedModel {
    static func randomOperation(
        _ state: inout MVRegister<Int>, replica: ReplicaID, timestamp: HLCTimestamp, rng: inout SplitMix64
    ) throws -> (Int, delta: MVRegister<Int>) {
        let value = Int.random(in: 0..<100, using: &rng)
        return (value, try state.write(value, at: replica, timestamp: timestamp))
    }

    /// A write survives unless a later write had it in its state: the maximal writes
    /// under causality.
    static func checkSpecification(_ state: MVRegister<Int>, log: [LoggedOperation<Int>]) {
        let survivors = log.unobserved { _, _ in true }
        #expect(state.values.sorted() == survivors.map(\.operation).sorted())
        #expect(Set(state.siblings.map(\.timestamp)) == Set(survivors.map(\.timestamp)))
    }
}

private func stamp(_ physical: UInt64, _ replica: ReplicaID) -> HLCTimestamp {
    HLCTimestamp(physical: physical, replica: replica)
}

@Test func test_mvRegister_joinLawsAndInflationHold() async { await joinLawsProperty(MVRegisterModel.self) }

@Test func test_mvRegister_replicasConvergeToTheConcurrentWrites() async { await convergenceProperty(MVRegisterModel.self) }

@Test func test_mvRegister_concurrentWritesBecomeSiblingsAndALaterWriteReplacesThem() throws {
    var a = MVRegister<String>()
    var b = MVRegister<String>()
    try a.write("x", at: "a", timestamp: stamp(1, "a"))
    try b.write("y", at: "b", timestamp: stamp(2, "b"))
    a.merge(b)
    #expect(a.hasConflict)
    #expect(a.values == ["y", "x"])
    let delta = try a.write("z", at: "a", timestamp: stamp(3, "a"))
    b.merge(delta)
    #expect(b.values == ["z"])
    #expect(a == b)
}

@Test func test_mvRegister_trimKeepsTheNewestSiblingsAndTheOldestNeverReturn() throws {
    var replicas = [MVRegister<String>](repeating: MVRegister(), count: 4)
    for (index, name) in ["a", "b", "c", "d"].enumerated() {
        try replicas[index].write(name, at: ReplicaID(name), timestamp: stamp(UInt64(10 + index), ReplicaID(name)))
    }
    var capped = replicas[0]
    var discarded: [MVRegister<String>.Sibling] = []
    for other in replicas.dropFirst() { discarded += try capped.merge(other, siblingCap: 2) }
    #expect(capped.values == ["d", "c"])
    #expect(Set(discarded.map(\.value)) == ["a", "b"])

    // An uncapped replica that still holds "a" and "b" cannot bring them back.
    var uncapped = replicas[0]
    for other in replicas.dropFirst() { uncapped.merge(other) }
    #expect(uncapped.values.count == 4)
    #expect(uncapped.isIncluded(in: capped))
    #expect(uncapped.merged(with: capped).values == ["d", "c"])
}

@Test func test_mvRegister_capBelowOneIsRejected() {
    var register = MVRegister<Int>()
    #expect(throws: CRDTError.self) { try register.trimSiblings(toAtMost: 0) }
}
