@testable import AegisKV
import AegisCRDT
import AegisRaft
import Testing

/// `ActiveActiveKeyTable` behaves as a `[Key: Record]` dictionary (removal, slot reuse
/// in both forms, a key moving between the forms, equality by content, value
/// semantics), and the state machine's direct join of plain strings leaves exactly
/// the state the general join leaves.
@Suite struct ActiveActiveKeyTableTests {
    static func stamp(_ physical: UInt64) -> HLCTimestamp { HLCTimestamp(physical: physical, logical: 0, replica: ReplicaID("r1")) }

    static func full(_ key: Key, _ value: String?, at physical: UInt64) -> ActiveActiveKeyTable.Record {
        .full(ActiveActiveKeyState(key: key, string: ActiveActiveString(stamp: stamp(physical), value: value.map { Array($0.utf8) })))
    }

    @Test func test_keyTable_matchesADictionaryThroughRemovalsReuseAndFormChanges() {
        var table = ActiveActiveKeyTable()
        var model: [Key: ActiveActiveKeyTable.Record] = [:]
        var script = CommandScript(seed: 7)
        for step in 0 ..< 5_000 {
            let key = Key(Array("k\(script.next() % 300)".utf8))
            let record: ActiveActiveKeyTable.Record?
            switch script.next() % 3 {
            case 0: record = nil
            case 1: record = .plain(Self.stamp(UInt64(step)))
            default: record = Self.full(key, step % 2 == 0 ? "v\(step)" : nil, at: UInt64(step))
            }
            table.set(key, record)
            model[key] = record
        }
        #expect(table.count == model.count)
        for (key, record) in model { #expect(table.record(key) == record) }
        for (key, record) in table { #expect(model[key] == record) }
        #expect(Set(table.keys) == Set(model.keys))
        // A plain record reads back whole with the value it is given.
        let plainKey = model.first { if case .plain = $0.value { true } else { false } }?.key
        if let plainKey, case .plain(let stamp)? = model[plainKey] {
            #expect(table.state(of: plainKey) { _ in [1, 2] }
                    == ActiveActiveKeyState(key: plainKey, string: ActiveActiveString(stamp: stamp, value: [1, 2])))
            #expect(table.fullState(plainKey) == nil)
        }
        #expect(plainKey != nil)
    }

    /// The key → slot map against a dictionary: growth from empty, removals (the last
    /// entry moved into the hole, buckets shifted back), re-adds, copies.
    @Test(arguments: [UInt64(1), 2, 3])
    func keySlotMap_matchesADictionary(seed: UInt64) {
        var map = KeySlotMap()
        var model: [Key: Int] = [:]
        var script = CommandScript(seed: seed)
        var snapshot: (KeySlotMap, [Key: Int])?
        for step in 0 ..< 20_000 {
            let n = step < 3_000 ? step : Int(script.next() % 4_000)
            let key = Key(Array("k\(n)\(n % 5 == 0 ? String(repeating: "x", count: 20) : "")".utf8))
            switch script.next() % 4 {
            case 0:
                #expect(map.remove(key) == model.removeValue(forKey: key))
            default:
                let slot = Int(script.next() % 1_000) - 500
                map.set(slot, for: key)
                model[key] = slot
            }
            if step == 10_000 { snapshot = (map, model) }
            if step % 997 == 0 {
                #expect(map.count == model.count)
                for (key, slot) in model { #expect(map[key] == slot, "seed \(seed) step \(step)") }
            }
        }
        #expect(map.count == model.count)
        for (key, slot) in model { #expect(map[key] == slot) }
        for (key, slot) in map { #expect(model[key] == slot) }
        #expect(Set(map.keys) == Set(model.keys) && map.keys.count == model.count)
        // Warming lookups ahead (`touch`) reads only what the map holds, for lists of any
        // length against a map of any size (a first version indexed past the end).
        let present = Array(model.keys)
        for size in [1, 7, 256, present.count] {
            // Only keys sitting in their home bucket count (the map is at most half full:
            // most do).
            let touched = map.touch(Array(present.prefix(size)))
            #expect(touched <= size && (size < 256 || touched * 2 >= size), "seed \(seed): \(size) keys")
        }
        #expect(KeySlotMap().touch(present) == 0)
        if let (copy, copied) = snapshot {
            #expect(copy.count == copied.count)
            for (key, slot) in copied { #expect(copy[key] == slot) }
        }
        for key in Array(model.keys) { #expect(map.remove(key) != nil) }
        #expect(map.isEmpty && map.remove("k1") == nil && map["k1"] == nil)
    }

    @Test func test_keyTable_equalityIsByContent_andCopiesAreIndependent() {
        var a = ActiveActiveKeyTable()
        var b = ActiveActiveKeyTable()
        a.set("x", Self.full("x", "1", at: 1))
        a.set("y", .plain(Self.stamp(2)))
        b.set("y", .plain(Self.stamp(2)))  // other slots, same content
        b.set("x", Self.full("x", "1", at: 1))
        #expect(a == b)
        b.set("y", Self.full("y", nil, at: 2))  // the same stamp in the other form
        #expect(a != b)
        let copy = a
        a.set("x", nil)
        a.set("z", Self.full("z", "3", at: 3))  // reuses x's slot
        #expect(copy.record("x") == Self.full("x", "1", at: 1))
        #expect(copy.record("z") == nil)
        #expect(a.record("x") == nil && a.record("z") == Self.full("z", "3", at: 3))
        #expect(a != copy)
    }

    // MARK: The direct join of plain strings

    /// A string-heavy random command (plain strings mostly; counters, deletes and a
    /// set now and then, so keys move between the two forms).
    static func stringCommand(_ script: inout CommandScript) -> Command {
        let key = Key(Array("k\(script.next() % 6)".utf8))
        switch script.next() % 12 {
        case 0: return .delete(key)
        case 1: return .increment(key, by: 1)
        case 2: return .collection(key, .setAdd([[1]]))
        case 3: return .append(key, [7])
        default: return .set(key, Array("v\(script.next() % 3)".utf8))
        }
    }

    @Test(arguments: 0 ..< 60)
    func directJoin_leavesTheGeneralJoinsState(seed: UInt64) {
        let names = ["a", "b", "c"]
        var direct = names.map { ActiveActiveCommandTests.cluster($0) }
        var general = direct
        for index in general.indices { general[index].mergesPlainStringsDirectly = false }
        let keys = (0 ..< 6).map { Key(Array("k\($0)".utf8)) }
        var script = CommandScript(seed: seed)
        for step in 0 ..< 150 {
            let c = Int(script.next() % 3)
            // Clocks of the clusters drift apart, so later writes sometimes lose.
            let time = 1_000 + UInt64(step) * 3 + UInt64(c) * UInt64(script.next() % 40)
            if script.next() % 3 == 0 {
                // A batch of every key's state (already-seen ones again included).
                let target = (c + 1 + Int(script.next() % 2)) % 3
                let d = ActiveActiveCommandTests.exchange(direct[c], into: &direct[target], keys: keys,
                                                          last: UInt64(step + 1), time: time)
                let g = ActiveActiveCommandTests.exchange(general[c], into: &general[target], keys: keys,
                                                          last: UInt64(step + 1), time: time)
                #expect(d.error == g.error && d.keyCount == g.keyCount && d.revision == g.revision, "seed \(seed) step \(step)")
            } else {
                let command = Self.stringCommand(&script)
                let d = ActiveActiveCommandTests.run(&direct[c], command, time: time)
                let g = ActiveActiveCommandTests.run(&general[c], command, time: time)
                #expect(d.value == g.value && d.error == g.error, "seed \(seed) step \(step): \(command)")
            }
        }
        for index in direct.indices {
            #expect(direct[index].digest() == general[index].digest(), "seed \(seed): \(names[index])")
            #expect(direct[index].revision == general[index].revision, "seed \(seed): \(names[index])")
            #expect(direct[index].activeActive == general[index].activeActive, "seed \(seed): \(names[index])")
            #expect(direct[index].lastTimestamp == general[index].lastTimestamp, "seed \(seed): \(names[index])")
            for key in keys {
                #expect(direct[index].activeActiveState(of: key) == general[index].activeActiveState(of: key))
            }
        }
    }

    @Test func plainStrings_areKeptCompact_andARestoreKeepsTheForm() throws {
        var a = ActiveActiveCommandTests.cluster("a")
        var b = ActiveActiveCommandTests.cluster("b")
        ActiveActiveCommandTests.run(&a, .set("s", [1]))
        ActiveActiveCommandTests.run(&a, .increment("n", by: 2))
        ActiveActiveCommandTests.run(&a, .set("gone", [3]))
        ActiveActiveCommandTests.run(&a, .delete("gone"))
        ActiveActiveCommandTests.run(&b, .set("t", [2]))
        _ = ActiveActiveCommandTests.exchange(b, into: &a, keys: ["t"], last: 1)
        for key: Key in ["s", "t"] {
            guard case .plain? = a.activeActive.keys.record(key) else {
                Issue.record("\(key) is not kept as a plain record")
                continue
            }
        }
        for key: Key in ["n", "gone"] { #expect(a.activeActive.keys.fullState(key) != nil, "\(key)") }
        var restored = StateMachine(replica: "a")
        try restored.restore(from: Snapshot(data: a.snapshotData()))
        #expect(restored.activeActive == a.activeActive)
        for key: Key in ["s", "t", "n", "gone"] { #expect(restored.activeActiveState(of: key) == a.activeActiveState(of: key)) }
    }
}
