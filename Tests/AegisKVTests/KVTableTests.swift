@testable import AegisKV
import AegisRaft
import PropertyBased
import Testing

/// The table and its value arena: compaction, copy-on-write sharing of slabs, large
/// records, and the in-place apply path.
@Suite struct KVTableTests {
    /// `count` bytes derived from `seed` (cheap to build in debug builds).
    static func value(_ seed: Int, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: seed &* 31), count: count)
        for i in 0 ..< Swift.min(count, 4) { bytes[i] = UInt8(truncatingIfNeeded: seed >> (8 * i)) }
        return bytes
    }

    @Test func test_arena_compactsGarbageAndKeepsEveryValue() {
        var machine = StateMachine()
        let keys = 60_000
        applyAll(&machine, (0 ..< keys).map { .set(Key("key-\($0)"), Self.value($0, count: 400)) })
        // Scattered deletes and resizing overwrites leave every slab mostly garbage.
        applyAll(&machine, (0 ..< keys).filter { $0 % 3 != 0 }.map { .delete(Key("key-\($0)")) })
        applyAll(&machine, (0 ..< keys).filter { $0 % 6 == 0 }.map { .set(Key("key-\($0)"), Self.value($0 + 1, count: 500)) })
        let arena = machine.entries.arena
        #expect(arena.garbageBytes * 3 <= arena.usedBytes || arena.garbageBytes <= 2 * ValueArena.slabSize)
        #expect(arena.usedBytes < 2 * arena.liveBytes + 2 * ValueArena.slabSize)
        #expect(machine.count == keys / 3)
        for i in stride(from: 0, to: keys, by: 3) {
            let expected = i % 6 == 0 ? Self.value(i + 1, count: 500) : Self.value(i, count: 400)
            #expect(machine.value(for: Key("key-\(i)")) == expected, "key-\(i)")
        }
        var restored = StateMachine()
        #expect(throws: Never.self) { try restored.restore(fromChunks: machine.snapshotChunks()) }
        #expect(restored.digest() == machine.digest())
    }

    @Test func test_snapshotWriterAndCopies_doNotSeeLaterWrites() {
        var machine = StateMachine()
        applyAll(&machine, (0 ..< 2000).map { .set(Key("key-\($0)"), Self.value($0, count: 100)) })
        let expected = machine.snapshotData()
        let writer = machine.snapshotChunks(chunkSize: 4096)
        let copy = machine
        // Same-size overwrites would be written in place if the slabs were not shared.
        applyAll(&machine, (0 ..< 2000).map { .set(Key("key-\($0)"), Self.value($0 + 7, count: 100)) })
        applyAll(&machine, (0 ..< 500).map { .delete(Key("key-\($0)")) })
        applyAll(&machine, (0 ..< 500).map { .set(Key("new-\($0)"), Self.value($0, count: 60)) })
        #expect(Array(writer.joined()) == expected)
        #expect(copy.snapshotData() == expected)
        #expect(machine.value(for: "key-1999") == Self.value(1999 + 7, count: 100))
        #expect(machine.value(for: "key-0") == nil)
    }

    @Test func test_largeValues_getSlabsOfTheirOwn() {
        var machine = StateMachine(limits: StateMachine.Limits(maxValueSize: 8 << 20))
        let large = Self.value(1, count: 3 << 20)
        applyAll(&machine, [.set("big", large), .set("small", [1, 2, 3])])
        #expect(machine.value(for: "big") == large)
        applyAll(&machine, [.set("big", Self.value(2, count: 5 << 20))])
        #expect(machine.value(for: "big") == Self.value(2, count: 5 << 20))
        applyAll(&machine, [.delete("big")])
        #expect(machine.entries.arena.liveBytes < ValueArena.slabSize)
        #expect(machine.value(for: "small") == [1, 2, 3])
    }

    @Test func test_inPlaceApply_matchesTheGeneralPath() async {
        await propertyCheck(input: Gen.uint64(in: 0 ... UInt64.max), Gen.int(in: 1 ... 300)) { seed, count in
            var script = CommandScript(seed: seed)
            var viaEntries = StateMachine()
            var viaCommands = StateMachine()
            for index in 1 ... LogIndex(count) {
                let command = script.command()
                let fromEntry = viaEntries.apply(entry(index, command))
                let fromCommand = viaCommands.apply(command, at: index)
                #expect(fromEntry == fromCommand)
                #expect(fromEntry.value == fromCommand.value && fromEntry.previousValue == fromCommand.previousValue)
            }
            #expect(viaEntries.digest() == viaCommands.digest())
        }
    }

    @Test func test_inPlaceApply_reportsMalformedSetsLikeTheDecoder() {
        let valid = Command.set("key", bytes("value")).encoded()
        for bad in [Array(valid.dropLast()), valid + [0], [1, 2, 0x80], [1, 2, 3, 0x61, 0x62]] {
            var machine = StateMachine()
            let result = machine.apply(LogEntry(index: 1, term: 1, data: bad))
            let expected: KVError? = {
                do throws(KVError) { _ = try Command(decoding: bad); return nil } catch { return error }
            }()
            #expect(result.error != nil && result.error == expected)
            #expect(machine.isEmpty && machine.appliedIndex == 1)
        }
    }
}

/// Slots placed in batches (`appendRecord` + `insertSlots`, as a snapshot restore does)
/// make the same table as one insert at a time: every key found with its value and
/// versions, nothing else found, the count right, through growths in the middle.
@Test func test_insertSlots_matchesInsertingOneAtATime() {
    var table = KVTable(minimumCapacity: 0, seed: 42)
    var expected: [Key: (value: [UInt8], version: UInt64)] = [:]
    var generator = SystemRandomNumberGenerator()
    var next = 0
    func fresh() -> (Key, [UInt8]) {
        next += 1
        return (Key("k\(next)-\(UInt32.random(in: 0 ... 999, using: &generator))"),
                Array(repeating: UInt8(truncatingIfNeeded: next), count: next % 40))
    }
    for round in 0 ..< 30 {
        // A few one at a time, then a batch of a size that often makes the table grow.
        for _ in 0 ..< round {
            let (key, value) = fresh()
            value.withUnsafeBytes { table.insertNew(key, hash: table.hash(key), value: $0, version: 1, createRevision: 1, modRevision: 1) }
            expected[key] = (value, 1)
        }
        var pending: [TableSlot] = []
        for _ in 0 ..< (round * 37 % 500 + 1) {
            let (key, value) = fresh()
            let version = UInt64(next % 7 + 1)
            pending.append(value.withUnsafeBytes {
                table.appendRecord(key, hash: table.hash(key), value: $0, version: version, createRevision: 1, modRevision: 9)
            })
            expected[key] = (value, version)
        }
        table.insertSlots(pending)
        #expect(table.count == expected.count)
    }
    for (key, stored) in expected {
        #expect(table[key]?.value == stored.value, "\(key)")
        #expect(table[key]?.version == stored.version)
    }
    #expect(table[Key("absent")] == nil)
    #expect(Set(table.keys(createdAfter: 0)) == Set(expected.keys))
}

/// A restore placing slots in batches smaller than the snapshot (the production batch
/// is 1M) gives the same state, and the keys are all findable by the expiry section
/// that follows them.
@Test func test_snapshotReader_placesSlotsInBatches() throws {
    var source = StateMachine()
    for n in 1 ... 700 {
        let command = Command.set(Key("key:\(n)"), Array(repeating: UInt8(truncatingIfNeeded: n), count: n % 90))
        _ = source.apply(LogEntry(index: LogIndex(n), term: 1, data: command.encoded()))
    }
    _ = source.apply(LogEntry(index: 701, term: 1, data: Command.expire(Key("key:5"), .at(milliseconds: 9_999_999_999_999), .always).encoded()))
    let data = source.snapshotData()
    for batch in [1, 7, 64, 699, 700, 5_000] {
        var reader = source.makeSnapshotReader()
        reader.slotBatch = batch
        try reader.feed(data)
        var restored = StateMachine()
        try restored.restore(from: reader)
        #expect(restored.digest() == source.digest(), "batch \(batch)")
        #expect(restored.count == source.count)
    }
}

/// `warm(for:)` loads the probes of a group's plain SETs and GETs and changes nothing:
/// it finds existing keys' slots (its result counts what it loaded), skips other
/// commands, and applying after it gives the same state.
@Test func test_warm_loadsTheProbesAndChangesNothing() {
    var machine = StateMachine()
    let setup = (1 ... 70_000).map { n in
        LogEntry(index: LogIndex(n), term: 1, data: Command.set(Key("key:\(n)"), [UInt8(truncatingIfNeeded: n)]).encoded())
    }
    for entry in setup { _ = machine.apply(entry) }
    let group = (0 ..< 100).map { n in
        LogEntry(index: LogIndex(70_001 + n), term: 1,
                 data: (n % 3 == 0 ? Command.delete(Key("key:\(n + 1)")) : Command.set(Key("key:\(n + 1)"), [9])).encoded())
    }
    let before = machine.digest()
    let loaded = machine.warm(for: group[...])
    #expect(loaded > 0)
    #expect(machine.digest() == before)
    #expect(StateMachine().warm(for: group[...]) == 0)  // a small table: nothing to warm
    var cold = machine
    for entry in group {
        _ = machine.apply(entry)
        _ = cold.apply(entry)
    }
    #expect(machine.digest() == cold.digest())
}
