@testable import AegisKV
import AegisCRDT
import AegisRaft
import Testing

// HINCRBY on an active-active hash field is a PN-counter (issue 17, item 1).
@Suite("Active-active hash counters")
struct ActiveActiveHashCounterTests {
    typealias T = ActiveActiveCommandTests

    static func field(_ machine: StateMachine, _ key: Key, _ field: String) -> [UInt8]? {
        guard case .hash(let map)? = machine.collection(key) else { return nil }
        return map[bytes(field)]?.value
    }

    @Test func concurrentIncrements_addUp() {
        var a = T.cluster("a"), b = T.cluster("b")
        T.run(&a, .collection("h", .hashIncrement(bytes("f"), by: 5)))
        T.run(&b, .collection("h", .hashIncrement(bytes("f"), by: 7)))
        T.run(&b, .collection("h", .hashIncrement(bytes("f"), by: -2)))
        #expect(T.exchange(a, into: &b, keys: ["h"], last: 1).error == nil)
        #expect(T.exchange(b, into: &a, keys: ["h"], last: 1).error == nil)
        #expect(Self.field(a, "h", "f") == bytes("10") && Self.field(b, "h", "f") == bytes("10"))
        #expect(a.activeActiveState(of: "h") == b.activeActiveState(of: "h"))
        // On a field that an HSET wrote, both clusters count on its value.
        T.run(&a, .collection("h", .hashSet([FieldValue(bytes("g"), bytes("100"))])), time: 2_000)
        _ = T.exchange(a, into: &b, keys: ["h"], last: 2, time: 2_100)
        T.run(&a, .collection("h", .hashIncrement(bytes("g"), by: 1)), time: 2_200)
        T.run(&b, .collection("h", .hashIncrement(bytes("g"), by: 2)), time: 2_200)
        _ = T.exchange(a, into: &b, keys: ["h"], last: 3, time: 2_300)
        _ = T.exchange(b, into: &a, keys: ["h"], last: 3, time: 2_300)
        #expect(Self.field(a, "h", "g") == bytes("103") && Self.field(b, "h", "g") == bytes("103"))
    }

    @Test func aLaterHSetWins_andAnHDelResetsTheCounter() {
        var a = T.cluster("a"), b = T.cluster("b")
        T.run(&a, .collection("h", .hashIncrement(bytes("f"), by: 5)), time: 1_000)
        _ = T.exchange(a, into: &b, keys: ["h"], last: 1)
        // Concurrent: an increment in a, a later HSET in b: the HSET wins whole.
        T.run(&a, .collection("h", .hashIncrement(bytes("f"), by: 1)), time: 1_500)
        T.run(&b, .collection("h", .hashSet([FieldValue(bytes("f"), bytes("50"))])), time: 2_000)
        _ = T.exchange(a, into: &b, keys: ["h"], last: 2, time: 2_100)
        _ = T.exchange(b, into: &a, keys: ["h"], last: 2, time: 2_100)
        #expect(Self.field(a, "h", "f") == bytes("50") && Self.field(b, "h", "f") == bytes("50"))
        // HDEL then HINCRBY: the removed value does not come back (Redis: 0 + amount).
        T.run(&a, .collection("h", .hashDelete([bytes("f")])), time: 2_200)
        #expect(T.run(&a, .collection("h", .hashIncrement(bytes("f"), by: 3)), time: 2_300).integer == 3)
        _ = T.exchange(a, into: &b, keys: ["h"], last: 4, time: 2_400)
        #expect(Self.field(a, "h", "f") == bytes("3") && Self.field(b, "h", "f") == bytes("3"))
        #expect(a.activeActiveState(of: "h") == b.activeActiveState(of: "h"))
    }

    @Test func counterStates_roundTrip_andASkewedRegisterIsSettled() throws {
        var a = T.cluster("a")
        T.run(&a, .collection("h", .hashIncrement(bytes("f"), by: 5)))
        T.run(&a, .collection("h", .hashIncrement(bytes("f"), by: -9)))
        let state = a.activeActiveState(of: "h")
        #expect(state.hash?.counters[bytes("f")]?.visibleValue == bytes("-4"))
        let batch = ActiveActiveBatch(source: "a", afterIndex: 0, lastIndex: 3, sourceCommit: 3, sourceTime: 1,
                                      states: [state])
        #expect(try ActiveActiveBatch(decodingBody: batch.encodedBody()) == batch)
        // A peer whose register disagrees with its counter: the counter decides.
        var skewed = state
        if case .hash(var map)? = skewed.hash?.value, let stamp = map[bytes("f")]?.timestamp {
            map.replaceStoredValue(of: bytes("f"), with: LWWRegister(bytes("999"), at: stamp))
            skewed.hash?.value = .hash(map)
        }
        let bad = ActiveActiveBatch(source: "a", afterIndex: 0, lastIndex: 3, sourceCommit: 3, sourceTime: 1,
                                    states: [skewed])
        let decoded = try ActiveActiveBatch(decodingBody: bad.encodedBody())
        #expect(decoded.states.first == state)
    }

    /// Random HINCRBY, HSET, HDEL and DEL on one hash across three clusters, batches
    /// delayed, reordered and duplicated: every cluster ends with the same state.
    @Test(arguments: 0 ..< 30)
    func randomCounterInterleavings_converge(seed: UInt64) {
        var group = AATestGroup(count: 3, seed: seed &+ 101)
        let fields = [bytes("f0"), bytes("f1")]
        for step in 0 ..< 150 {
            let roll = group.rng.next() % 10
            let c = Int(group.rng.next() % 3)
            let field = fields[Int(group.rng.next() % 2)]
            switch roll {
            case 0 ..< 4:
                group.issue(c, .collection("Hc", .hashIncrement(field, by: Int64(group.rng.next() % 11) - 5)), as: nil)
            case 4: group.issue(c, .collection("Hc", .hashSet([FieldValue(field, bytes("\(step)"))])), as: nil)
            case 5: group.issue(c, .collection("Hc", .hashDelete([field])), as: nil)
            case 6: group.issue(c, .deleteMany(["Hc"]), as: nil)
            case 7, 8:
                let target = (c + 1 + Int(group.rng.next() % 2)) % 3
                group.ship(from: c, to: target)
            default:
                if !group.inFlight.isEmpty {
                    group.deliver(Int(group.rng.next() % UInt64(group.inFlight.count)), keep: group.rng.next() % 3 == 0)
                }
            }
        }
        while !group.inFlight.isEmpty { group.deliver(Int(group.rng.next() % UInt64(group.inFlight.count)), keep: false) }
        group.settle()
        let states = group.normalizedStates(of: "Hc")
        for state in states.dropFirst() { #expect(state == states[0], "seed \(seed)") }
        let views = group.clusters.map { T.content($0.machine.activeActiveState(of: "Hc").view) }
        for view in views.dropFirst() { #expect(view == views[0], "seed \(seed)") }
    }
}
