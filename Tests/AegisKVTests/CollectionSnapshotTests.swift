import AegisCRDT
@testable import AegisKV
import AegisRaft
import PropertyBased
import Testing

/// Snapshots (format version 2) carrying sets and hashes, the command encoding of the
/// collection operations, and the CRDT merge of the stored values.
@Suite struct CollectionSnapshotTests {
    static func populated(replica: ReplicaID = "eu") -> StateMachine {
        var machine = StateMachine(replica: replica)
        var script = CommandScript(seed: 11)
        for index in 0 ..< 300 {
            let key = Key("k\(script.next() % 40)")
            let member = bytes("m\(script.next() % 30)")
            switch script.next() % 6 {
            case 0, 1: run(&machine, Key("s\(key)"), .setAdd([member]), timestamp: UInt64(index))
            case 2: run(&machine, Key("s\(key)"), .setRemove([member]))
            case 3: run(&machine, Key("h\(key)"), .hashSet([FieldValue(member, bytes("\(index)"))]), timestamp: UInt64(index))
            case 4: run(&machine, Key("h\(key)"), .hashDelete([member]))
            default: run(&machine, .set(key, bytes("v\(index)")))
            }
        }
        return machine
    }

    @Test func test_snapshot_roundTripsSetsAndHashes() throws {
        let source = Self.populated()
        #expect(source.collectionCount > 10)
        var target = StateMachine(replica: "eu")
        try target.restore(from: Snapshot(data: source.snapshotData()))
        #expect(target.digest() == source.digest())
        #expect(target.count == source.count && target.collectionCount == source.collectionCount)
        for key in source.collections.keys { #expect(target.collection(key) == source.collection(key)) }
        // The dot counter and the clock were restored: the next writes are identical.
        var a = source, b = target
        run(&a, "new", .setAdd(members("x")), timestamp: 1)
        run(&b, "new", .setAdd(members("x")), timestamp: 1)
        run(&a, "hnew", .hashSet([FieldValue(bytes("f"), bytes("v"))]), timestamp: 1)
        run(&b, "hnew", .hashSet([FieldValue(bytes("f"), bytes("v"))]), timestamp: 1)
        #expect(a.digest() == b.digest())
    }

    /// Random entries of every type over a few keys, with leader timestamps that
    /// sometimes go back (a new leader with a slower clock).
    static func typedEntries(seed: UInt64, count: Int) -> [LogEntry] {
        var script = CommandScript(seed: seed)
        return (1 ... count).map { index in
            let key = Key("k\(script.next() % 5)")
            let member = bytes("m\(script.next() % 6)")
            let command: Command
            switch script.next() % 8 {
            case 0, 1: command = .collection(key, .setAdd([member]))
            case 2: command = .collection(key, .setRemove([member]))
            case 3, 4: command = .collection(key, .hashSet([FieldValue(member, bytes("\(index)"))]))
            case 5: command = .collection(key, .hashDelete([member]))
            case 6: command = .delete(key)
            default: command = .set(key, bytes("v"))
            }
            return LogEntry(index: LogIndex(index), term: 1, data: command.encoded(), timestamp: 1_000 + script.next() % 30)
        }
    }

    @Test func test_restoreMidway_thenReplay_givesTheSameDigest() async {
        // Fails if the snapshot loses the dot counter or the clock: the replayed writes
        // would then issue other dots or timestamps than the replica that never restored.
        await propertyCheck(input: Gen.uint64(in: 0 ... UInt64.max), Gen.int(in: 0 ... 200)) { seed, split in
            let entries = Self.typedEntries(seed: seed, count: 200)
            var full = StateMachine(replica: "eu")
            for entry in entries { full.apply(entry) }
            var prefix = StateMachine(replica: "eu")
            for entry in entries[..<split] { prefix.apply(entry) }
            var restored = StateMachine(replica: "eu")
            #expect(throws: Never.self) { try restored.restore(fromChunks: prefix.snapshotChunks(chunkSize: 13)) }
            for entry in entries[split...] { restored.apply(entry) }
            #expect(restored.digest() == full.digest())
        }
    }

    @Test func test_snapshot_streamsInChunksOfAnySize() throws {
        let source = Self.populated()
        let whole = source.snapshotData()
        #expect(source.snapshotChunks().byteCount == whole.count)
        for size in [1, 7, 100, 4096] {
            let chunks = Array(source.snapshotChunks(chunkSize: size))
            #expect(chunks.flatMap { $0 } == whole, "chunk size \(size)")
            var target = StateMachine(replica: "eu")
            var reader = target.makeSnapshotReader()
            for chunk in chunks { try reader.feed(chunk) }
            try target.restore(from: reader)
            #expect(target.digest() == source.digest())
        }
    }

    @Test func test_snapshotVersion1_isStillRead() throws {
        var bytes = Array("AKVS".utf8) + [1]
        bytes.appendUInt64LE(9)
        bytes.appendUInt64LE(2)
        bytes.appendUInt64LE(1)
        bytes.appendLengthPrefixed(Array("a".utf8))
        bytes.appendLengthPrefixed(Array("v".utf8))
        bytes.appendVarint(2)
        bytes.appendVarint(1)
        bytes.appendVarint(2)
        bytes.appendUInt32LE(CRC32C.checksum(bytes))
        var machine = StateMachine()
        try machine.restore(from: Snapshot(data: bytes))
        #expect(machine.appliedIndex == 9 && machine.get("a")?.value == Array("v".utf8) && machine.get("a")?.version == 2)
        #expect(machine.snapshotData()[4] == 3)  // written back in the current format
        run(&machine, "s", .setAdd(members("x")))
        #expect(machine.type(of: "s") == .set)
    }

    /// A version 2 snapshot with a valid checksum and the given collections section.
    static func snapshot(revision: UInt64 = 10, string: String? = nil, dotCounter: UInt64 = 5,
                         collections: [(key: String, type: UInt8, crdt: [UInt8])]) -> [UInt8] {
        var bytes = Array("AKVS".utf8) + [2]
        bytes.appendUInt64LE(3)
        bytes.appendUInt64LE(revision)
        bytes.appendUInt64LE(string == nil ? 0 : 1)
        if let string {
            bytes.appendLengthPrefixed(Array(string.utf8))
            bytes.appendLengthPrefixed([])
            bytes.appendVarint(1)
            bytes.appendVarint(1)
            bytes.appendVarint(1)
        }
        bytes.appendVarint(100)
        bytes.appendVarint(0)
        bytes.appendVarint(dotCounter)
        bytes.appendVarint(UInt64(collections.count))
        for entry in collections {
            bytes.appendLengthPrefixed(Array(entry.key.utf8))
            bytes.append(entry.type)
            bytes.appendVarint(1)
            bytes.appendVarint(2)
            bytes.appendVarint(2)
            bytes.appendLengthPrefixed(entry.crdt)
        }
        bytes.appendUInt32LE(CRC32C.checksum(bytes))
        return bytes
    }

    @Test func test_restore_checksSetsAndHashesEvenWithAValidChecksum() throws {
        func set(_ elements: [String], counter: UInt64 = 1) throws -> [UInt8] {
            var set = ORSet<[UInt8]>()
            for (offset, element) in elements.enumerated() {
                try set.insert(bytes(element), dot: Dot(replica: "eu", counter: counter + UInt64(offset)))
            }
            return set.encoded()
        }
        var machine = StateMachine(limits: .init(maxValueSize: 3, maxCollectionSize: 2), replica: "eu")
        let valid = Self.snapshot(collections: [("s", 1, try set(["a"]))])
        try machine.restore(from: Snapshot(data: valid))
        #expect(machine.type(of: "s") == .set && machine.appliedIndex == 3)
        let invalid: [([UInt8], String)] = [
            (Self.snapshot(collections: [("s", 1, try set(["a"], counter: 6))]), "beyond the dot counter 5"),
            (Self.snapshot(string: "s", collections: [("s", 1, try set(["a"]))]), "both a string and a set or hash"),
            (Self.snapshot(collections: [("s", 1, ORSet<[UInt8]>().encoded())]), "is empty"),
            (Self.snapshot(collections: [("s", 3, try set(["a"]))]), "unknown type 3"),
            (Self.snapshot(collections: [("s", 2, try set(["a"]))]), "expected an encoded OR-map"),
            (Self.snapshot(collections: [("s", 1, [0x14, 1, 9])]), "set or hash entry 0"),
            (Self.snapshot(collections: [("t", 1, try set(["a"])), ("s", 1, try set(["b"], counter: 2))]),
             "not in strictly ascending order"),
            (Self.snapshot(collections: [("s", 1, try set(["a", "b", "c"]))]), "more than the limit of 2"),
            (Self.snapshot(collections: [("s", 1, try set(["abcd"]))]), "more than the limit of 3"),
            (Self.snapshot(revision: 0, collections: [("s", 1, try set(["a"]))]), "cannot exist at revision 0"),
        ]
        let digest = machine.digest()
        for (bytes, message) in invalid {
            do {
                try machine.restore(from: Snapshot(data: bytes))
                Issue.record("restored a bad snapshot; expected \(message)")
            } catch {
                #expect("\(error)".contains(message), "\(error)")
            }
        }
        #expect(machine.digest() == digest)
    }

    @Test func test_collectionCommands_roundTripThroughTheEncoding() throws {
        let operations: [CollectionOperation] = [
            .setAdd(members("a", "", "b")), .setRemove(members("a")), .setMembers, .setIsMember(bytes("x")),
            .setCardinality, .hashSet([FieldValue(bytes("f"), bytes("v")), FieldValue([], [])]), .hashGet(bytes("f")),
            .hashDelete(members("f", "g")), .hashGetAll, .hashIncrement(bytes("f"), by: .min), .hashLength,
            .hashExists(bytes("f")), .type,
        ]
        for operation in operations {
            let command = Command.collection("key", operation)
            let encoded = command.encoded()
            #expect(encoded.count == command.encodedSize && encoded[0] == 3)
            #expect(try Command(decoding: encoded) == command)
            #expect(command.isWrite == operation.isWrite)
            #expect(throws: KVError.self) { try Command(decoding: encoded + [0]) }
            if encoded.count > 5 { #expect(throws: KVError.self) { try Command(decoding: Array(encoded.dropLast())) } }
        }
        var unknown = Command.collection("key", .type).encoded()
        unknown[unknown.count - 1] = 99
        #expect(throws: KVError.malformedCommand("unknown collection operation 99")) { try Command(decoding: unknown) }
        var oldVersion = Command.collection("key", .type).encoded()
        oldVersion[0] = 2
        #expect(throws: KVError.self) { try Command(decoding: oldVersion) }
    }

    @Test func test_merge_isCommutativeAssociativeAndIdempotent() {
        var script = CommandScript(seed: 3)
        func replicaState(_ replica: ReplicaID, hash: Bool) -> CollectionValue? {
            var machine = StateMachine(replica: replica)
            for _ in 0 ..< 30 {
                let member = bytes("m\(script.next() % 6)")
                let time = 1_000 + script.next() % 20
                if hash {
                    if script.next() % 3 == 0 {
                        run(&machine, "k", .hashDelete([member]))
                    } else {
                        run(&machine, "k", .hashSet([FieldValue(member, bytes("\(replica)\(time)"))]), timestamp: time)
                    }
                } else if script.next() % 3 == 0 {
                    run(&machine, "k", .setRemove([member]))
                } else {
                    run(&machine, "k", .setAdd([member]))
                }
            }
            run(&machine, "k", hash ? .hashSet([FieldValue(bytes("last"), [])]) : .setAdd([bytes("last")]))
            return machine.collection("k")
        }
        for hash in [false, true] {
            guard let a = replicaState("a", hash: hash), let b = replicaState("b", hash: hash),
                  let c = replicaState("c", hash: hash) else {
                Issue.record("no state")
                return
            }
            func join(_ x: CollectionValue, _ y: CollectionValue) -> CollectionValue {
                var result = x
                result.merge(y)
                return result
            }
            #expect(join(a, b) == join(b, a))
            #expect(join(join(a, b), c) == join(a, join(b, c)))
            #expect(join(a, a) == a && join(join(a, b), b) == join(a, b))
        }
    }

    @Test func test_merge_addWins_andLWWByHLCWithReplicaTieBreak() throws {
        // Add-wins: a re-add concurrent with a remove survives it.
        var base = StateMachine(replica: "eu")
        run(&base, "s", .setAdd(members("x")))
        var adder = base, remover = base
        run(&remover, "s", .setRemove(members("x")))
        #expect(remover.collection("s") == nil)
        run(&adder, "s", .setAdd(members("x")))
        guard var added = adder.collection("s"), case .set(let baseSet)? = base.collection("s") else {
            throw KVError.wrongType
        }
        var removed = baseSet
        removed.remove(bytes("x"))
        added.merge(.set(removed))
        guard case .set(let merged) = added else { throw KVError.wrongType }
        #expect(merged.contains(bytes("x")))

        // LWW: the later HLC timestamp wins; equal times fall to the greater replica ID.
        func hash(_ replica: ReplicaID, _ value: String, at time: UInt64) -> CollectionValue? {
            var machine = StateMachine(replica: replica)
            run(&machine, "h", .hashSet([FieldValue(bytes("f"), bytes(value))]), timestamp: time)
            return machine.collection("h")
        }
        for (eu, us, winner) in [(2_000, 1_000, "eu"), (1_000, 2_000, "us"), (1_000, 1_000, "us")] as [(UInt64, UInt64, String)] {
            guard var left = hash("eu", "eu", at: eu), let right = hash("us", "us", at: us) else { throw KVError.wrongType }
            left.merge(right)
            guard case .hash(let map) = left else { throw KVError.wrongType }
            #expect(map[bytes("f")]?.value == bytes(winner))
        }
        // Values of different types do not merge.
        guard var set = adder.collection("s"), let other = hash("eu", "v", at: 1) else { throw KVError.wrongType }
        let before = set
        let joined = set.merge(other)
        #expect(!joined && set == before)
    }
}

/// `KVSnapshotSummary` counts every key (strings, sets, hashes) without restoring: a
/// backup of a node's snapshot records it as the key count.
@Suite struct KVSnapshotSummaryTests {
    @Test func test_summary_countsStringsSetsAndHashes() {
        var machine = StateMachine()
        var index: LogIndex = 0
        func run(_ command: Command) {
            index += 1
            _ = machine.apply(LogEntry(index: index, term: 1, data: command.encoded(), timestamp: 1_000 + index))
        }
        for k in 0 ..< 7 { run(.set(Key("s\(k)"), [UInt8(k)])) }
        for k in 0 ..< 3 { run(.collection(Key("set\(k)"), .setAdd([[1], [2]]))) }
        run(.collection(Key("h"), .hashSet([FieldValue([1], [2])])))
        let data = machine.snapshotData()
        let summary = KVSnapshotSummary(data)
        #expect(summary?.keyCount == 11 && summary?.keyCount == machine.count)
        #expect(summary?.appliedIndex == machine.appliedIndex)
        #expect(KVSnapshotSummary(Array(data.prefix(40))) == nil)
        #expect(KVSnapshotSummary(Array("not a snapshot".utf8)) == nil)
    }
}
