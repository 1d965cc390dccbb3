@testable import AegisKV
import PropertyBased
import Testing

/// The table's incremental growth: while the old slot array drains into the new one,
/// every key stays reachable exactly once, through inserts, overwrites, removals and
/// copy-on-write copies taken in the middle of a growth.
@Suite struct KVTableGrowthTests {
    static func value(_ seed: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: seed), UInt8(truncatingIfNeeded: seed >> 8), 7] }

    static func write(_ table: inout KVTable, _ key: Key, _ value: [UInt8], revision: UInt64) {
        _ = value.withUnsafeBytes { table.write(key, hash: table.hash(key), value: $0, revision: revision) }
    }

    /// Checks `table` against `model`: the count, every key's value, and the full key list.
    static func expectMatches(_ table: KVTable, _ model: [Key: [UInt8]]) {
        #expect(table.count == model.count)
        for (key, value) in model { #expect(table[key]?.value == value, "\(key)") }
        let keys = table.keys
        #expect(keys.count == model.count)
        #expect(Set(keys) == Set(model.keys))
    }

    @Test func test_growth_isSpreadOverLaterWrites() {
        var table = KVTable(seed: 42)
        var model: [Key: [UInt8]] = [:]
        var sawDraining = 0
        var largestDrained = 0
        for i in 0 ..< 20_000 {
            let key = Key("key-\(i)")
            let before = table.draining == nil ? 0 : table.drainingCount
            Self.write(&table, key, Self.value(i), revision: UInt64(i + 1))
            model[key] = Self.value(i)
            if table.draining != nil {
                sawDraining += 1
                // An insert moves a bounded batch of keys, not the whole old array.
                largestDrained = max(largestDrained, before - table.drainingCount)
            }
        }
        // The last doubling (16,384 to 32,768 slots at 12,288 keys) drains over hundreds of
        // inserts; a batch ends at the end of a probe run, so it can exceed `drainBatch`
        // but stays far below the 12,288 keys a one-go doubling moves.
        #expect(sawDraining > 500)
        #expect(largestDrained < 500)
        #expect(table.count <= table.storage.slotCount * 3 / 4)
        Self.expectMatches(table, model)
    }

    @Test func test_growth_keepsEveryKeyThroughRandomWritesAndCopies() async {
        await propertyCheck(input: Gen.uint64(in: 0 ... UInt64.max), Gen.int(in: 100 ... 3000)) { seed, steps in
            var random = CommandScript(seed: seed)  // its `next()` is the random source
            var table = KVTable(seed: random.next())
            var model: [Key: [UInt8]] = [:]
            var copies: [(KVTable, [Key: [UInt8]])] = []
            for step in 0 ..< steps {
                let key = Key("k\(random.next() % UInt64(steps / 2 + 1))")
                switch random.next() % 10 {
                case 0 ..< 6:
                    Self.write(&table, key, Self.value(step), revision: UInt64(step + 1))
                    model[key] = Self.value(step)
                case 6 ..< 9:
                    #expect(table.remove(key)?.value == model.removeValue(forKey: key))
                default:
                    if table.draining != nil && copies.count < 4 { copies.append((table, model)) }
                }
            }
            Self.expectMatches(table, model)
            // Copies taken mid-growth still see exactly what they saw.
            for (copy, expected) in copies { Self.expectMatches(copy, expected) }
            // Growth finishes and the table stays consistent.
            table.reserveCapacity(table.count * 2 + 16)
            #expect(table.draining == nil)
            Self.expectMatches(table, model)
        }
    }

    @Test func test_snapshotMidGrowth_isTheSameBytes() {
        var machine = StateMachine()
        var i = 0
        while machine.entries.draining == nil || i < 3000 {
            applyAll(&machine, [.set(Key("key-\(i)"), Self.value(i))])
            i += 1
            if machine.entries.draining != nil && i >= 3000 { break }
        }
        #expect(machine.entries.draining != nil)
        var settled = machine
        settled.entries.reserveCapacity(settled.entries.count * 4)
        #expect(settled.entries.draining == nil)
        let writer = machine.snapshotChunks(chunkSize: 1000)
        let bytes = Array(writer.joined())
        #expect(writer.byteCount == bytes.count)
        #expect(bytes == settled.snapshotData())
        #expect(settled.snapshotChunks().byteCount == bytes.count)
    }

    @Test func test_batchedLookup_agreesWithFind() {
        var table = KVTable(seed: 7)
        for i in 0 ..< 20_000 { Self.write(&table, Key("k\(i)"), Self.value(i), revision: UInt64(i + 1)) }
        table.reserveCapacity(table.count)  // no growth in progress: the batched path
        let probes = (0 ..< 21_000).map { Key("k\($0)") } + ["absent", "k-1"]
        var start = 0
        while start < probes.count {
            let batch = probes[start ..< min(start + 32, probes.count)]
            let (indices, headers) = table.locate(batch)
            for (offset, key) in batch.enumerated() {
                #expect(indices[offset] == table.find(key), "\(key)")
                if let index = indices[offset] { #expect(headers[offset].version == table.header(at: index).version) }
            }
            start += 32
        }
    }
}
