import AegisCRDT
import Testing

enum MapOperation: Equatable {
    case update(String, Int64)
    case remove(String)

    var key: String {
        switch self {
        case .update(let key, _), .remove(let key): key
        }
    }

    var amount: Int64 { if case .update(_, let amount) = self { amount } else { 0 } }
}

enum ORMapModel: ReplicatedModel {
    static func randomOperation(
        _ state: inout ORMap<String, PNCounter>, replica: ReplicaID, timestamp: HLCTimestamp, rng: inout SplitMix64
    ) throws -> (MapOperation, delta: ORMap<String, PNCounter>) {
        let key = "k\(Int.random(in: 0..<4, using: &rng))"
        guard rng.chance(70) else { return (.remove(key), state.remove(key)) }
        let amount = Int64.random(in: -3...3, using: &rng)
        let delta = try state.update(key, at: replica) { counter throws(CRDTError) in
            try counter.add(amount, at: replica)
        }
        return (.update(key, amount), delta)
    }

    /// Keys are present with add-wins semantics; a present key's counter is the sum of
    /// every update of it (removal keeps the value's state).
    static func checkSpecification(_ state: ORMap<String, PNCounter>, log: [LoggedOperation<MapOperation>]) {
        let present = Set(log.unobserved { $0.key == $1.key }.filter(isUpdate).map(\.operation.key))
        #expect(state.keys == present)
        for key in present {
            let expected = log.filter { $0.operation.key == key }.reduce(Int64(0)) { $0 + $1.operation.amount }
            #expect(state[key]?.value == expected, "value of \(key)")
        }
    }

    private static func isUpdate(_ operation: LoggedOperation<MapOperation>) -> Bool {
        if case .update = operation.operation { true } else { false }
    }
}

@Test func test_orMap_joinLawsAndInflationHold() async { await joinLawsProperty(ORMapModel.self) }

@Test func test_orMap_replicasConvergeToAddWinsKeysWithMergedValues() async { await convergenceProperty(ORMapModel.self) }

@Test func test_orMap_updateConcurrentWithRemoveKeepsTheKey() throws {
    var a = ORMap<String, GCounter>()
    var b = ORMap<String, GCounter>()
    b.merge(try a.update("cart", at: "a") { counter throws(CRDTError) in try counter.increment(by: 2, at: "a") })
    let removal = a.remove("cart")
    let update = try b.update("cart", at: "b") { counter throws(CRDTError) in try counter.increment(at: "b") }
    a.merge(update)
    b.merge(removal)
    #expect(a == b)
    #expect(a["cart"]?.value == 3)
}

@Test func test_orMap_removedKeyIsAbsentButEncodesItsValueState() throws {
    var map = ORMap<String, GCounter>()
    try map.update("k", at: "a") { counter throws(CRDTError) in try counter.increment(by: 4, at: "a") }
    map.remove("k")
    #expect(map["k"] == nil)
    #expect(map.keys.isEmpty)
    let decoded = try ORMap<String, GCounter>(encoded: map.encoded())
    #expect(decoded == map)
}
