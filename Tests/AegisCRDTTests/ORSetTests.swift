import AegisCRDT
import Testing

enum SetOperation: Equatable {
    case add(Int)
    case remove(Int)

    var element: Int {
        switch self {
        case .add(let element), .remove(let element): element
        }
    }

    var isAdd: Bool { if case .add = self { true } else { false } }
}

enum ORSetModel: ReplicatedModel {
    static func randomOperation(
        _ state: inout ORSet<Int>, replica: ReplicaID, timestamp: HLCTimestamp, rng: inout SplitMix64
    ) throws -> (SetOperation, delta: ORSet<Int>) {
        let element = Int.random(in: 0..<5, using: &rng)
        if rng.chance(60) { return (.add(element), try state.insert(element, at: replica)) }
        return (.remove(element), state.remove(element))
    }

    /// Add-wins: an element is present iff some add of it was observed by no later
    /// add or remove of the same element.
    static func checkSpecification(_ state: ORSet<Int>, log: [LoggedOperation<SetOperation>]) {
        let liveAdds = log.unobserved { $0.element == $1.element }.filter(\.operation.isAdd)
        #expect(state.elements == Set(liveAdds.map(\.operation.element)))
    }
}

@Test func test_orSet_joinLawsAndInflationHold() async { await joinLawsProperty(ORSetModel.self) }

@Test func test_orSet_replicasConvergeToAddWinsSpecification() async { await convergenceProperty(ORSetModel.self) }

@Test func test_orSet_addConcurrentWithRemoveWins() throws {
    var a = ORSet<String>()
    var b = ORSet<String>()
    b.merge(try a.insert("x", at: "a"))
    let removal = a.remove("x")
    let readd = try b.insert("x", at: "b")
    a.merge(readd)
    b.merge(removal)
    #expect(a.contains("x"))
    #expect(a == b)
}

@Test func test_orSet_removeOfObservedAddsDeletesTheElement() throws {
    var a = ORSet<String>()
    var b = ORSet<String>()
    b.merge(try a.insert("x", at: "a"))
    a.merge(b.remove("x"))
    #expect(!a.contains("x"))
    #expect(a.isEmpty)
}

@Test func test_orSet_removeAllDeltaEmptiesAnotherReplica() throws {
    var a = ORSet<Int>()
    var b = ORSet<Int>()
    for element in 0..<10 { b.merge(try a.insert(element, at: "a")) }
    b.merge(a.removeAll())
    #expect(b.isEmpty)
    #expect(b.context == a.context)
}
