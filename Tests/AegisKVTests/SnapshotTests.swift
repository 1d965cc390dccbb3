@testable import AegisKV
import AegisRaft
import PropertyBased
import Testing

@Suite struct SnapshotTests {
    /// A machine with inline and spilled keys, overwrites, deletes and counters.
    static func populated(entries: Int = 300, seed: UInt64 = 1) -> StateMachine {
        var machine = StateMachine()
        var script = CommandScript(seed: seed)
        applyAll(&machine, (0 ..< entries).map { _ in script.command() })
        return machine
    }

    @Test func test_checksums_matchKnownVectors() {
        #expect(CRC32C.checksum(bytes("123456789")) == 0xE306_9283)
        #expect(hexString(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hexString(SHA256.hash(bytes("abc"))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
        #expect(hexString(SHA256.hash(long)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var streamed = SHA256()
        for byte in long { streamed.update([byte]) }
        #expect(streamed.finalize() == SHA256.hash(long))
    }

    @Test func test_snapshot_roundTripsTheWholeState() throws {
        var source = Self.populated()
        let data = source.snapshotData()
        var restored = StateMachine()
        try restored.restore(from: Snapshot(metadata: SnapshotMetadata(index: source.appliedIndex, term: 1), data: data))
        #expect(restored.digest() == source.digest())
        #expect(restored.appliedIndex == source.appliedIndex && restored.revision == source.revision)
        #expect(restored.count == source.count)
        #expect(restored.range() == source.range())
        #expect(restored.snapshotData() == data)
    }

    /// `byteCount` is what a storage writes before the bytes (DiskStorage's file header):
    /// it must be exactly what the chunks add up to, for any state.
    @Test func test_snapshot_byteCountIsTheLengthOfTheChunks() {
        for seed in UInt64(1) ... 20 {
            let machine = Self.populated(entries: Int(seed * 37 % 500), seed: seed)
            let chunks = machine.snapshotChunks(chunkSize: 100)
            #expect(chunks.byteCount == machine.snapshotData().count, "seed \(seed)")
            #expect(chunks.byteCount == Array(chunks).reduce(0) { $0 + $1.count })
        }
        #expect(StateMachine().snapshotChunks().byteCount == StateMachine().snapshotData().count)
    }

    @Test func test_snapshot_streamsInChunksOfAnySize() throws {
        let source = Self.populated()
        let whole = source.snapshotData()
        for chunkSize in [1, 7, 64, 4096] {
            let chunks = Array(source.snapshotChunks(chunkSize: chunkSize))
            #expect(chunks.count > 1 || chunkSize == 4096)
            #expect(Array(chunks.joined()) == whole)
            // Feed the bytes back in pieces that do not line up with the chunks.
            var reader = source.makeSnapshotReader()
            var offset = 0
            while offset < whole.count {
                let end = min(offset + chunkSize + 3, whole.count)
                try reader.feed(Array(whole[offset ..< end]))
                offset = end
            }
            var restored = StateMachine()
            try restored.restore(from: reader)
            #expect(restored.digest() == source.digest())
        }
    }

    /// `consume(_:)` (the storage streaming a snapshot file) takes only whole entries;
    /// the caller passes the rest again with the next bytes. Any split restores the same
    /// state, and bytes after the end are refused.
    @Test func test_snapshot_consumeTakesWholeEntriesFromAnySplit() throws {
        let source = Self.populated(entries: 800, seed: 7)
        let whole = source.snapshotData()
        for step in [1, 5, 33, 1000, whole.count] {
            var reader = source.makeSnapshotReader()
            var buffer: [UInt8] = []
            var offset = 0
            while offset < whole.count {
                let end = min(offset + step, whole.count)
                buffer.append(contentsOf: whole[offset ..< end])
                offset = end
                let consumed = try buffer.withUnsafeBytes { try reader.consume($0) }
                #expect(consumed <= buffer.count)
                buffer.removeFirst(consumed)
            }
            #expect(buffer.isEmpty, "step \(step)")
            #expect(reader.isComplete)
            var restored = StateMachine()
            try restored.restore(from: reader)
            #expect(restored.digest() == source.digest(), "step \(step)")
        }
        var reader = source.makeSnapshotReader()
        #expect(throws: KVError.self) { _ = try (whole + [0]).withUnsafeBytes { try reader.consume($0) } }
    }

    @Test func test_digest_isTheSHA256OfTheSnapshot() {
        let machine = Self.populated()
        #expect(machine.digest() == SHA256.hash(machine.snapshotData()))
        #expect(machine.digestHex() == hexString(machine.digest()))
        // Header, the empty collections section (four zero varints), the empty expiry
        // section (clock and count, two zero varints), no sections (a zero count), checksum.
        #expect(StateMachine().snapshotData().count == 29 + 4 + 2 + 1 + 4)
    }

    @Test func test_restore_thenReplayGivesTheSameDigest() async {
        await propertyCheck(input: Gen.uint64(in: 0 ... UInt64.max), Gen.int(in: 0 ... 200)) { seed, split in
            var script = CommandScript(seed: seed)
            let commands = (0 ..< 200).map { _ in script.command() }
            var full = StateMachine()
            applyAll(&full, commands)
            var prefix = StateMachine()
            applyAll(&prefix, Array(commands[..<split]))
            var restored = StateMachine()
            #expect(throws: Never.self) { try restored.restore(fromChunks: prefix.snapshotChunks(chunkSize: 100)) }
            applyAll(&restored, Array(commands[split...]))
            #expect(restored.digest() == full.digest())
            #expect(restored.range() == full.range())
        }
    }

    @Test func test_restore_refusesCorruptBytesAndChangesNothing() {
        let source = Self.populated(entries: 50)
        let data = source.snapshotData()
        var target = Self.populated(entries: 20, seed: 99)
        let before = target.digest()

        var flipped = data
        flipped[40] ^= 0x01
        var badMagic = data
        badMagic[0] = UInt8(ascii: "X")
        var badVersion = data
        badVersion[4] = 9
        let cases: [[UInt8]] = [flipped, badMagic, badVersion, Array(data.dropLast()), data + [0], [], Array(data.prefix(10))]
        for bytes in cases {
            #expect(throws: KVError.self) { try target.restore(from: Snapshot(data: bytes)) }
        }
        #expect(target.digest() == before)
        #expect(throws: KVError.malformedSnapshot("not a key-value snapshot (bad magic bytes)")) {
            try target.restore(from: Snapshot(data: badMagic))
        }
        #expect(throws: KVError.malformedSnapshot("the snapshot is truncated")) {
            try target.restore(from: Snapshot(data: Array(data.dropLast())))
        }
    }

    @Test func test_restore_detectsEveryFlippedByte() {
        let source = Self.populated(entries: 40)
        let data = source.snapshotData()
        var target = StateMachine()
        for position in data.indices {
            var corrupt = data
            corrupt[position] ^= 0x40
            #expect(throws: KVError.self, "byte \(position)") { try target.restore(from: Snapshot(data: corrupt)) }
        }
        #expect(target.isEmpty && target.appliedIndex == 0)
    }

    @Test func test_restore_checksOrderAndLimitsEvenWithAValidChecksum() {
        // Hand-built snapshots with a correct CRC but invalid contents.
        func snapshot(revision: UInt64, entries: [(String, UInt64, UInt64, UInt64)]) -> [UInt8] {
            var bytes = Array("AKVS".utf8) + [1]
            bytes.appendUInt64LE(5)
            bytes.appendUInt64LE(revision)
            bytes.appendUInt64LE(UInt64(entries.count))
            for (key, version, create, modify) in entries {
                bytes.appendLengthPrefixed(Array(key.utf8))
                bytes.appendLengthPrefixed(Array("value".utf8))
                bytes.appendVarint(version)
                bytes.appendVarint(create)
                bytes.appendVarint(modify)
            }
            bytes.appendUInt32LE(CRC32C.checksum(bytes))
            return bytes
        }
        var machine = StateMachine(limits: .init(maxKeySize: 3))
        let valid = snapshot(revision: 3, entries: [("a", 1, 1, 1), ("b", 2, 2, 3)])
        #expect(throws: Never.self) { try machine.restore(from: Snapshot(data: valid)) }
        #expect(machine.appliedIndex == 5 && machine.count == 2)
        let invalid: [([UInt8], KVError)] = [
            (snapshot(revision: 3, entries: [("b", 1, 1, 1), ("a", 1, 2, 2)]),
             .malformedSnapshot("keys are not in strictly ascending order at entry 1")),
            (snapshot(revision: 3, entries: [("a", 1, 1, 1), ("a", 1, 2, 2)]),
             .malformedSnapshot("keys are not in strictly ascending order at entry 1")),
            (snapshot(revision: 3, entries: [("", 1, 1, 1)]), .malformedSnapshot("entry 0 has an empty key")),
            (snapshot(revision: 3, entries: [("abcd", 1, 1, 1)]),
             .malformedSnapshot("a key of 4 bytes exceeds the limit of 3")),
            (snapshot(revision: 3, entries: [("a", 0, 1, 1)]),
             .malformedSnapshot("entry 0 has inconsistent version 0 or revisions 1...1 (store revision 3)")),
            (snapshot(revision: 3, entries: [("a", 1, 2, 1)]),
             .malformedSnapshot("entry 0 has inconsistent version 1 or revisions 2...1 (store revision 3)")),
            (snapshot(revision: 3, entries: [("a", 1, 1, 4)]),
             .malformedSnapshot("entry 0 has inconsistent version 1 or revisions 1...4 (store revision 3)")),
            (snapshot(revision: 0, entries: [("a", 1, 1, 1)]),
             .malformedSnapshot("1 keys cannot exist at revision 0")),
        ]
        for (bytes, error) in invalid {
            #expect(throws: error) { try machine.restore(from: Snapshot(data: bytes)) }
        }
        #expect(machine.appliedIndex == 5 && machine.count == 2)
        #expect(throws: KVError.malformedSnapshot("the metadata says index 6 but the data was taken at applied index 5")) {
            try machine.restore(from: Snapshot(metadata: SnapshotMetadata(index: 6), data: valid))
        }
    }

    @Test func test_writer_isNotAffectedByLaterWrites() {
        var machine = Self.populated(entries: 30)
        let expected = machine.snapshotData()
        var writer = machine.snapshotChunks(chunkSize: 16)
        var streamed: [UInt8] = writer.next() ?? []
        applyAll(&machine, [.set("late", bytes("write")), .delete("k0/0")])
        while let chunk = writer.next() { streamed += chunk }
        #expect(streamed == expected)
        #expect(writer.next() == nil)
    }
}

/// A forged key count in a snapshot's header (the checksum that would refuse it comes
/// at the end) cannot make the reader size its table beyond one entry per 64 announced
/// bytes.
@Test func test_snapshotReader_boundsWhatAForgedCountReserves() throws {
    var machine = StateMachine()
    for n in 1 ... 3 { _ = machine.apply(LogEntry(index: LogIndex(n), term: 1, data: Command.set(Key("k\(n)"), [1]).encoded())) }
    var data = machine.snapshotData()
    // Header: magic (4), version (1), applied index (8), revision (8), count (8).
    let huge = UInt64(1) << 40
    for i in 0 ..< 8 {
        data[13 + i] = UInt8(truncatingIfNeeded: huge >> (8 * UInt64(i)))  // revision
        data[21 + i] = UInt8(truncatingIfNeeded: huge >> (8 * UInt64(i)))  // count
    }
    var reader = machine.makeSnapshotReader()
    reader.announce(totalBytes: 64 << 20)  // as if the file were 64 MiB
    let header = Array(data[..<29])
    #expect(try header.withUnsafeBytes { try reader.consume($0) } == 29)  // the header only
    #expect(reader.entries.storage.slotCount <= KVTable.slotCount(for: (64 << 20) / 64))
    #expect(reader.keys.capacity <= 2 * ((64 << 20) / 64))
}
