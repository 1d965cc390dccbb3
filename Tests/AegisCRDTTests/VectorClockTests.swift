import AegisCRDT
import Testing

enum VectorClockModel: ReplicatedModel {
    static func randomOperation(
        _ state: inout VectorClock, replica: ReplicaID, timestamp: HLCTimestamp, rng: inout SplitMix64
    ) throws -> (ReplicaID, delta: VectorClock) {
        let dot = try state.increment(replica)
        return (replica, VectorClock([replica: dot.counter]))
    }

    static func checkSpecification(_ state: VectorClock, log: [LoggedOperation<ReplicaID>]) {
        var expected: [ReplicaID: UInt64] = [:]
        for entry in log { expected[entry.operation, default: 0] += 1 }
        #expect(state.entries == expected)
    }
}

@Test func test_vectorClock_joinLawsAndInflationHold() async { await joinLawsProperty(VectorClockModel.self) }

@Test func test_vectorClock_replicasConvergeToTheEventCounts() async { await convergenceProperty(VectorClockModel.self) }

@Test func test_vectorClock_compareReportsAllFourOrders() {
    let base = VectorClock(["a": 1, "b": 2])
    #expect(base.compare(to: base) == .equal)
    #expect(base.compare(to: VectorClock(["a": 1, "b": 3])) == .before)
    #expect(base.compare(to: VectorClock(["a": 1, "b": 2, "c": 1])) == .before)
    #expect(base.compare(to: VectorClock(["b": 2])) == .after)
    #expect(base.compare(to: VectorClock(["a": 2, "b": 1])) == .concurrent)
    #expect(base.compare(to: VectorClock(["a": 1, "c": 1])) == .concurrent)
    #expect(VectorClock().compare(to: base) == .before)
}

@Test func test_vectorClock_zeroEntriesAreDropped() {
    #expect(VectorClock(["a": 0, "b": 1]) == VectorClock(["b": 1]))
}

@Test func test_vectorClock_pruneRemovesOnlyRetiredAndStableEntries() {
    var clock = VectorClock(["live": 5, "gone": 3, "goneUnstable": 9])
    let stable = VectorClock.stableCut(of: [
        VectorClock(["live": 5, "gone": 3, "goneUnstable": 4]),
        VectorClock(["live": 7, "gone": 4, "goneUnstable": 9]),
    ])
    #expect(stable == VectorClock(["live": 5, "gone": 3, "goneUnstable": 4]))
    let removed = clock.prune(retired: ["gone", "goneUnstable"], stable: stable)
    #expect(removed == ["gone"])
    #expect(clock == VectorClock(["live": 5, "goneUnstable": 9]))
}

@Test func test_vectorClock_pruningBothSidesKeepsTheirOrder() {
    let stable = VectorClock(["gone": 3])
    var older = VectorClock(["a": 1, "gone": 3])
    var newer = VectorClock(["a": 2, "gone": 3])
    older.prune(retired: ["gone"], stable: stable)
    newer.prune(retired: ["gone"], stable: stable)
    #expect(older.compare(to: newer) == .before)
}

@Test func test_vectorClock_stableCutDropsReplicasSomeClockHasNotSeen() {
    let cut = VectorClock.stableCut(of: [VectorClock(["a": 2, "b": 1]), VectorClock(["a": 1])])
    #expect(cut == VectorClock(["a": 1]))
}
