@testable import AegisKV
import AegisCRDT
import Testing

/// `ActiveActiveKeyTable` behaves as the `[Key: ActiveActiveKeyState]` it replaced:
/// removal, slot reuse, equality by content and value semantics.
@Suite struct ActiveActiveKeyTableTests {
    static func state(_ key: String, _ value: String, at physical: UInt64) -> ActiveActiveKeyState {
        ActiveActiveKeyState(key: Key(Array(key.utf8)), string: ActiveActiveString(
            stamp: HLCTimestamp(physical: physical, logical: 0, replica: ReplicaID("r1")), value: Array(value.utf8)))
    }

    @Test func test_keyTable_matchesADictionaryThroughRemovalsAndReuse() {
        var table = ActiveActiveKeyTable()
        var model: [Key: ActiveActiveKeyState] = [:]
        var rng = SystemRandomNumberGenerator()
        for step in 0 ..< 5_000 {
            let key = Key(Array("k\(Int.random(in: 0 ..< 300, using: &rng))".utf8))
            if Int.random(in: 0 ..< 3, using: &rng) == 0 {
                table[key] = nil
                model[key] = nil
            } else {
                let written = Self.state(String(decoding: key.bytes, as: UTF8.self), "v\(step)", at: UInt64(step))
                table[key] = written
                model[key] = written
            }
        }
        #expect(table.count == model.count)
        for (key, state) in model { #expect(table[key] == state) }
        for (key, state) in table { #expect(model[key] == state) }
        #expect(Set(table.keys) == Set(model.keys))
        #expect(table.values.count == model.count)
    }

    @Test func test_keyTable_equalityIsByContent_andCopiesAreIndependent() {
        var a = ActiveActiveKeyTable()
        var b = ActiveActiveKeyTable()
        a[Key("x")] = Self.state("x", "1", at: 1)
        a[Key("y")] = Self.state("y", "2", at: 2)
        b[Key("y")] = Self.state("y", "2", at: 2)  // other slots, same content
        b[Key("x")] = Self.state("x", "1", at: 1)
        #expect(a == b)
        let copy = a
        a[Key("x")] = nil
        a[Key("z")] = Self.state("z", "3", at: 3)  // reuses x's slot
        #expect(copy[Key("x")] == Self.state("x", "1", at: 1))
        #expect(copy[Key("z")] == nil)
        #expect(a[Key("x")] == nil && a[Key("z")] == Self.state("z", "3", at: 3))
        #expect(a != copy)
    }
}
