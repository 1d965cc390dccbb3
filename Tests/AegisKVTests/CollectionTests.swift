import AegisCRDT
@testable import AegisKV
import AegisRaft
import Testing

/// Applies a collection operation as the next entry, with leader timestamp `timestamp`.
@discardableResult
func run(_ machine: inout StateMachine, _ key: Key, _ operation: CollectionOperation,
         timestamp: UInt64 = 1_000) -> CommandResult {
    machine.apply(LogEntry(index: machine.appliedIndex + 1, term: 1, data: Command.collection(key, operation).encoded(),
                           timestamp: timestamp))
}

/// Applies any command as the next entry.
@discardableResult
func run(_ machine: inout StateMachine, _ command: Command, timestamp: UInt64 = 1_000) -> CommandResult {
    machine.apply(LogEntry(index: machine.appliedIndex + 1, term: 1, data: command.encoded(), timestamp: timestamp))
}

func members(_ texts: String...) -> [[UInt8]] { texts.map(bytes) }

/// Sets, hashes, TYPE and WRONGTYPE in the state machine, with Redis's sequential results.
@Suite struct CollectionTests {
    @Test func test_set_commandsHaveRedisResults() {
        var machine = StateMachine()
        #expect(run(&machine, "s", .setAdd(members("b", "a", "b"))).integer == 2)
        #expect(run(&machine, "s", .setAdd(members("a", "c"))).integer == 1)
        #expect(run(&machine, "s", .setMembers).elements == members("a", "b", "c"))
        #expect(run(&machine, "s", .setIsMember(bytes("a"))).integer == 1)
        #expect(run(&machine, "s", .setIsMember(bytes("z"))).integer == 0)
        #expect(run(&machine, "s", .setCardinality).integer == 3)
        #expect(run(&machine, "s", .setRemove(members("a", "z", "a"))).integer == 1)
        #expect(run(&machine, "s", .type).value == bytes("set"))
        #expect(run(&machine, "s", .setRemove(members("b", "c"))).integer == 2)
        // An emptied set no longer exists.
        #expect(run(&machine, "s", .type).value == bytes("none"))
        #expect(machine.count == 0 && machine.get("s") == nil)
        #expect(run(&machine, "missing", .setMembers).elements.isEmpty)
        #expect(run(&machine, "missing", .setCardinality).integer == 0)
        #expect(run(&machine, "missing", .setRemove(members("a"))).integer == 0)
    }

    @Test func test_hash_commandsHaveRedisResults() {
        var machine = StateMachine()
        let pairs = [FieldValue(bytes("f"), bytes("1")), FieldValue(bytes("g"), bytes("x")), FieldValue(bytes("f"), bytes("2"))]
        #expect(run(&machine, "h", .hashSet(pairs)).integer == 2)
        #expect(run(&machine, "h", .hashGet(bytes("f"))).value == bytes("2"))  // the last value of a repeated field
        #expect(run(&machine, "h", .hashSet([FieldValue(bytes("g"), bytes("y"))])).integer == 0)
        #expect(run(&machine, "h", .hashGetAll).elements == members("f", "2", "g", "y"))
        #expect(run(&machine, "h", .hashLength).integer == 2)
        #expect(run(&machine, "h", .hashExists(bytes("g"))).integer == 1)
        #expect(run(&machine, "h", .hashExists(bytes("z"))).integer == 0)
        #expect(run(&machine, "h", .hashGet(bytes("z"))).value == nil)
        #expect(run(&machine, "h", .hashIncrement(bytes("f"), by: 40)).integer == 42)
        #expect(run(&machine, "h", .hashIncrement(bytes("n"), by: -5)).integer == -5)
        #expect(run(&machine, "h", .hashIncrement(bytes("g"), by: 1)).error == .hashValueNotInteger)
        #expect(run(&machine, "h", .hashDelete(members("g", "z"))).integer == 1)
        #expect(run(&machine, "h", .type).value == bytes("hash"))
        #expect(run(&machine, "h", .hashDelete(members("f", "n"))).integer == 2)
        #expect(run(&machine, "h", .type).value == bytes("none"))
        #expect(machine.isEmpty)
    }

    @Test func test_hashIncrement_overflowFailsAndChangesNothing() {
        var machine = StateMachine()
        run(&machine, "h", .hashIncrement(bytes("f"), by: .max))
        let result = run(&machine, "h", .hashIncrement(bytes("f"), by: 1))
        #expect(result.error == .incrementOverflow(current: .max, amount: 1))
        #expect(run(&machine, "h", .hashGet(bytes("f"))).value == bytes(String(Int64.max)))
        #expect(machine.collection("h") == {
            var other = StateMachine()
            run(&other, "h", .hashIncrement(bytes("f"), by: .max))
            return other.collection("h")
        }())
    }

    @Test func test_wrongType_isRefusedAndChangesNothing() {
        var machine = StateMachine()
        run(&machine, .set("str", bytes("1")))
        run(&machine, "set", .setAdd(members("a")))
        run(&machine, "hash", .hashSet([FieldValue(bytes("f"), bytes("v"))]))
        let before = machine.collection("set")
        #expect(run(&machine, "str", .setAdd(members("a"))).error == .wrongType)
        #expect(run(&machine, "str", .hashGet(bytes("f"))).error == .wrongType)
        #expect(run(&machine, "set", .hashSet([FieldValue(bytes("f"), bytes("v"))])).error == .wrongType)
        #expect(run(&machine, "hash", .setIsMember(bytes("a"))).error == .wrongType)
        #expect(run(&machine, .get("set")).error == .wrongType)
        #expect(run(&machine, .increment("hash", by: 1)).error == .wrongType)
        #expect(run(&machine, .compareAndSwap("set", expected: .value(bytes("a")), new: bytes("b"))).error == .wrongType)
        #expect(machine.collection("set") == before && machine.value(for: "str") == bytes("1"))
        #expect(machine.type(of: "str") == .string && machine.type(of: "set") == .set && machine.type(of: "hash") == .hash)
        #expect(machine.get("set")?.type == .set && machine.get("str")?.type == .string)
    }

    @Test func test_stringWrites_onCollections_followRedis() {
        var machine = StateMachine()
        run(&machine, "s", .setAdd(members("a")))
        // SET NX and MSETNX find the key present; SET replaces it, as in Redis.
        #expect(run(&machine, .compareAndSwap("s", expected: .version(0), new: bytes("x"))).error == .compareFailed(currentVersion: 1))
        #expect(run(&machine, .setMany([KeyValuePair("s", bytes("x"))], onlyIfNoneExist: true)).error == .compareFailed(currentVersion: 1))
        #expect(run(&machine, .set("s", bytes("x"))).isSuccess)
        #expect(machine.type(of: "s") == .string && machine.collectionCount == 0 && machine.count == 1)
        run(&machine, "h", .hashSet([FieldValue(bytes("f"), bytes("v"))]))
        #expect(run(&machine, .deleteMany(["h", "s", "none"])).keyCount == 2)
        #expect(machine.isEmpty)
        run(&machine, "h", .hashSet([FieldValue(bytes("f"), bytes("v"))]))
        #expect(run(&machine, .delete("h")).previousValue != nil)
        #expect(machine.isEmpty)
    }

    @Test func test_collectionSize_isBounded() {
        var machine = StateMachine(limits: .init(maxValueSize: 4, maxCollectionSize: 3))
        run(&machine, "s", .setAdd(members("a", "b")))
        run(&machine, "h", .hashSet([FieldValue(bytes("a"), []), FieldValue(bytes("b"), [])]))
        let setBefore = machine.collection("s"), hashBefore = machine.collection("h"), revision = machine.revision
        #expect(run(&machine, "s", .setAdd(members("a", "c", "d"))).error == .collectionTooLarge(size: 4, limit: 3))
        #expect(run(&machine, "h", .hashSet([FieldValue(bytes("c"), []), FieldValue(bytes("d"), [])])).error
            == .collectionTooLarge(size: 4, limit: 3))
        #expect(run(&machine, "s", .setAdd(members("12345"))).error == .valueTooLarge(size: 5, limit: 4))
        #expect(machine.limits.violation(in: .collection("s", .setAdd(members("12345")))) == .valueTooLarge(size: 5, limit: 4))
        #expect(run(&machine, "h", .hashSet([FieldValue(bytes("a"), bytes("12345"))])).error == .valueTooLarge(size: 5, limit: 4))
        #expect(machine.collection("s") == setBefore && machine.collection("h") == hashBefore && machine.revision == revision)
        #expect(run(&machine, "s", .setCardinality).integer == 2 && run(&machine, "h", .hashLength).integer == 2)
        #expect(run(&machine, "s", .setAdd(members("a", "c"))).integer == 1)  // re-adding a member does not count
        #expect(run(&machine, "h", .hashIncrement(bytes("z"), by: 1)).isSuccess)
        #expect(run(&machine, "h", .hashIncrement(bytes("y"), by: 1)).error == .collectionTooLarge(size: 4, limit: 3))
    }

    @Test func test_hashTimestamps_comeFromTheEntry_andNeverGoBack() throws {
        var machine = StateMachine(replica: "eu")
        run(&machine, "h", .hashSet([FieldValue(bytes("f"), bytes("1"))]), timestamp: 5_000)
        guard case .hash(let first)? = machine.collection("h") else { throw KVError.wrongType }
        #expect(first[bytes("f")]?.timestamp == HLCTimestamp(physical: 5_000, logical: 0, replica: "eu"))
        // A leader whose clock is behind still writes after the previous timestamp.
        run(&machine, "h", .hashSet([FieldValue(bytes("f"), bytes("2"))]), timestamp: 4_000)
        guard case .hash(let second)? = machine.collection("h") else { throw KVError.wrongType }
        #expect(second[bytes("f")]?.timestamp == HLCTimestamp(physical: 5_000, logical: 1, replica: "eu"))
        #expect(second[bytes("f")]?.value == bytes("2"))
    }

    @Test func test_dots_areNeverReused_afterDeleteAndRecreate() throws {
        var machine = StateMachine(replica: "eu")
        run(&machine, "s", .setAdd(members("a")))
        guard case .set(let old)? = machine.collection("s") else { throw KVError.wrongType }
        run(&machine, .delete("s"))
        run(&machine, "s", .setAdd(members("a")))
        guard case .set(let new)? = machine.collection("s") else { throw KVError.wrongType }
        #expect(old.dots(of: bytes("a")) == [Dot(replica: "eu", counter: 1)])
        #expect(new.dots(of: bytes("a")) == [Dot(replica: "eu", counter: 2)])
        // A peer that saw the first add removed still keeps the second one.
        var removedThere = old
        removedThere.remove(bytes("a"))
        #expect(new.merged(with: removedThere).contains(bytes("a")))
    }

    @Test func test_replicasApplyingTheSameEntries_haveTheSameDigest() {
        var script = CommandScript(seed: 7)
        var entries: [LogEntry] = []
        for index in 1 ... 400 {
            let key = Key("k\(script.next() % 6)")
            let member = bytes("m\(script.next() % 5)")
            let command: Command
            switch script.next() % 9 {
            case 0: command = .collection(key, .setAdd([member]))
            case 1: command = .collection(key, .setRemove([member]))
            case 2: command = .collection(key, .hashSet([FieldValue(member, bytes("\(index)"))]))
            case 3: command = .collection(key, .hashDelete([member]))
            case 4: command = .collection(key, .hashIncrement(member, by: 3))
            case 5: command = .delete(key)
            case 6: command = .set(key, bytes("v"))
            case 7: command = .increment(key, by: 1)
            default: command = .collection(key, .type)
            }
            entries.append(LogEntry(index: LogIndex(index), term: 1, data: command.encoded(),
                                    timestamp: 1_000 + script.next() % 50))
        }
        var a = StateMachine(), b = StateMachine()
        for entry in entries {
            #expect(a.apply(entry) == b.apply(entry))
        }
        #expect(a.digest() == b.digest())
        #expect(a.collectionCount > 0)
    }
}

/// A plain model of Redis's sequential semantics for strings, sets and hashes.
struct TypedModel {
    enum Value: Equatable {
        case string([UInt8])
        case set(Set<[UInt8]>)
        case hash([[UInt8]: [UInt8]])
    }

    var keys: [Key: Value] = [:]

    /// The integer reply, the value reply and whether the command fails with WRONGTYPE.
    mutating func apply(_ command: Command) -> (integer: Int64, value: [UInt8]?, wrongType: Bool) {
        switch command {
        case .set(let key, let value):
            keys[key] = .string(value)
        case .delete(let key):
            keys[key] = nil
        case .collection(let key, let operation):
            return apply(key, operation)
        default:
            break
        }
        return (0, nil, false)
    }

    mutating func apply(_ key: Key, _ operation: CollectionOperation) -> (integer: Int64, value: [UInt8]?, wrongType: Bool) {
        let current = keys[key]
        var set: Set<[UInt8]> = []
        var hash: [[UInt8]: [UInt8]] = [:]
        switch (current, operation.valueType) {
        case (nil, _): break
        case (.set(let s)?, .set?): set = s
        case (.hash(let h)?, .hash?): hash = h
        case (_, nil): break
        default: return (0, nil, true)
        }
        var integer: Int64 = 0
        var value: [UInt8]?
        switch operation {
        case .setAdd(let members): integer = Int64(Set(members).subtracting(set).count); set.formUnion(members)
        case .setRemove(let members): integer = Int64(set.intersection(members).count); set.subtract(members)
        case .setIsMember(let member): integer = set.contains(member) ? 1 : 0
        case .setCardinality: integer = Int64(set.count)
        case .hashSet(let pairs):
            integer = Int64(Set(pairs.map(\.field)).count { hash[$0] == nil })
            for pair in pairs { hash[pair.field] = pair.value }
        case .hashGet(let field): value = hash[field]
        case .hashDelete(let fields): integer = Int64(Set(fields).count { hash[$0] != nil }); for field in fields { hash[field] = nil }
        case .hashLength: integer = Int64(hash.count)
        case .hashExists(let field): integer = hash[field] == nil ? 0 : 1
        case .type:
            switch current {
            case .string?: value = bytes("string")
            case .set?: value = bytes("set")
            case .hash?: value = bytes("hash")
            case nil: value = bytes("none")
            }
        default: break
        }
        switch operation.valueType {
        case .set?: keys[key] = set.isEmpty ? nil : .set(set)
        case .hash?: keys[key] = hash.isEmpty ? nil : .hash(hash)
        default: break
        }
        return (integer, value, false)
    }
}

@Suite struct CollectionModelTests {
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func test_sequentialResults_agreeWithAModel(seed: UInt64) {
        var script = CommandScript(seed: seed)
        var machine = StateMachine()
        var model = TypedModel()
        for step in 0 ..< 2_000 {
            let key = Key("k\(script.next() % 4)")
            let items = (0 ... script.next() % 3).map { _ in bytes("m\(script.next() % 5)") }
            let command: Command
            switch script.next() % 12 {
            case 0: command = .collection(key, .setAdd(items))
            case 1: command = .collection(key, .setRemove(items))
            case 2: command = .collection(key, .setIsMember(items[0]))
            case 3: command = .collection(key, .setCardinality)
            case 4: command = .collection(key, .hashSet(items.map { FieldValue($0, bytes("\(step)")) }))
            case 5: command = .collection(key, .hashGet(items[0]))
            case 6: command = .collection(key, .hashDelete(items))
            case 7: command = .collection(key, .hashLength)
            case 8: command = .collection(key, .hashExists(items[0]))
            case 9: command = .set(key, bytes("s"))
            case 10: command = .delete(key)
            default: command = .collection(key, .type)
            }
            let expected = model.apply(command)
            let result = run(&machine, command)
            if expected.wrongType {
                #expect(result.error == .wrongType, "step \(step): \(command)")
            } else {
                #expect(result.error == nil && result.integer == expected.integer, "step \(step): \(command)")
                if case .collection = command { #expect(result.value == expected.value, "step \(step): \(command)") }
            }
        }
        // Every key's final contents agree too.
        for (key, value) in model.keys {
            switch value {
            case .string(let bytes): #expect(machine.value(for: key) == bytes)
            case .set(let set): #expect(run(&machine, key, .setMembers).elements == set.sorted { $0.lexicographicallyPrecedes($1) })
            case .hash(let hash): #expect(run(&machine, key, .hashLength).integer == Int64(hash.count))
            }
        }
        #expect(machine.count == model.keys.count)
    }
}

@Suite struct StringCommandTests {
    @Test func test_getSetAndAppend_followRedis() {
        var machine = StateMachine(limits: .init(maxValueSize: 4))
        #expect(run(&machine, .append("k", bytes("ab"))).integer == 2)
        #expect(run(&machine, .append("k", bytes("cd"))).integer == 4)
        #expect(run(&machine, .append("k", bytes("e"))).error == .valueTooLarge(size: 5, limit: 4))
        #expect(machine.value(for: "k") == bytes("abcd"))
        #expect(run(&machine, .getSet("k", bytes("x"))).previousValue == bytes("abcd"))
        run(&machine, "s", .setAdd(members("m")))
        #expect(run(&machine, .getSet("s", bytes("x"))).error == .wrongType)
        #expect(run(&machine, .append("s", bytes("x"))).error == .wrongType)
        #expect(machine.type(of: "s") == .set)
    }
}

@Suite struct CollectionCostTests {
    /// A write changes a set or hash in place: copying it (O(size) per write) took 8 s
    /// and 32 s here for 500 writes to 100,000 members or fields (debug build); in
    /// place it takes milliseconds, so 2 s leaves room for a slow machine.
    @Test func test_writesToALargeSetOrHash_doNotCopyIt() {
        var machine = StateMachine()
        run(&machine, "s", .setAdd((0 ..< 100_000).map { bytes("m\($0)") }))
        run(&machine, "h", .hashSet((0 ..< 100_000).map { FieldValue(bytes("f\($0)"), []) }))
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for i in 0 ..< 500 {
                run(&machine, "s", .setAdd([bytes("x\(i)")]))
                run(&machine, "h", .hashSet([FieldValue(bytes("x\(i)"), [])]))
            }
        }
        #expect(elapsed < .seconds(2), "\(elapsed)")
        #expect(run(&machine, "s", .setCardinality).integer == 100_500)
        #expect(run(&machine, "h", .hashLength).integer == 100_500)
    }
}
