@testable import AegisKV
import AegisRaft
import Testing

/// `setMany` and `deleteMany`: one log entry, applied all or nothing.
@Suite struct MultiKeyCommandTests {
    @Test func test_setMany_writesEveryKeyInOneEntry() {
        var machine = StateMachine()
        let result = machine.apply(entry(1, .setMany([KeyValuePair("a", bytes("1")), KeyValuePair("b", bytes("2")),
                                                      KeyValuePair("a", bytes("3"))], onlyIfNoneExist: false)))
        #expect(result.isSuccess && result.keyCount == 3 && result.index == 1)
        #expect(machine.value(for: "a") == bytes("3"))  // the last value of a repeated key wins, as in Redis
        #expect(machine.value(for: "b") == bytes("2"))
        #expect(machine.appliedIndex == 1)
    }

    @Test func test_setMany_withOneInvalidValue_changesNothing() {
        var machine = StateMachine(limits: .init(maxKeySize: 8, maxValueSize: 4))
        machine.apply(entry(1, .set("a", bytes("old"))))
        let tooBig = machine.apply(entry(2, .setMany([KeyValuePair("a", bytes("new")), KeyValuePair("b", bytes("12345"))],
                                                     onlyIfNoneExist: false)))
        #expect(tooBig.error == .valueTooLarge(size: 5, limit: 4))
        let badKey = machine.apply(entry(3, .setMany([KeyValuePair("a", bytes("new")), KeyValuePair("123456789", [])],
                                                     onlyIfNoneExist: false)))
        #expect(badKey.error == .keyTooLarge(size: 9, limit: 8))
        let emptyKey = machine.apply(entry(4, .setMany([KeyValuePair("a", bytes("new")), KeyValuePair(Key([]), [])],
                                                       onlyIfNoneExist: false)))
        #expect(emptyKey.error == .emptyKey)
        #expect(machine.value(for: "a") == bytes("old") && machine.count == 1 && machine.revision == 1)
        #expect(machine.appliedIndex == 4)
    }

    @Test func test_setManyIfNoneExist_setsAllOrNothing() {
        var machine = StateMachine()
        let first = machine.apply(entry(1, .setMany([KeyValuePair("a", bytes("1")), KeyValuePair("b", bytes("1"))],
                                                    onlyIfNoneExist: true)))
        #expect(first.isSuccess && first.keyCount == 2)
        let second = machine.apply(entry(2, .setMany([KeyValuePair("c", bytes("2")), KeyValuePair("b", bytes("2"))],
                                                     onlyIfNoneExist: true)))
        #expect(second.error == .compareFailed(currentVersion: 1) && second.keyCount == 0)
        #expect(machine.value(for: "c") == nil && machine.value(for: "b") == bytes("1"))
    }

    @Test func test_deleteMany_countsTheKeysThatExisted() {
        var machine = StateMachine()
        machine.apply(entry(1, .setMany([KeyValuePair("a", bytes("1")), KeyValuePair("b", bytes("1"))], onlyIfNoneExist: false)))
        let result = machine.apply(entry(2, .deleteMany(["a", "missing", "b", "a"])))
        #expect(result.isSuccess && result.keyCount == 2)
        #expect(machine.isEmpty)
        let invalid = machine.apply(entry(3, .deleteMany(["x", Key([])])))
        #expect(invalid.error == .emptyKey)
    }

    @Test func test_deleteMany_withAnInvalidKey_removesNothing() {
        var machine = StateMachine(limits: .init(maxKeySize: 4, maxValueSize: 16))
        machine.apply(entry(1, .set("a", bytes("1"))))
        let result = machine.apply(entry(2, .deleteMany(["a", "too-long"])))
        #expect(result.error == .keyTooLarge(size: 8, limit: 4))
        #expect(machine.value(for: "a") == bytes("1"))
    }

    /// A reader between any two entries sees every key of an MSET at the same
    /// generation: never part of one MSET and part of another.
    @Test func test_setMany_readersNeverSeeAPartialWrite() {
        var machine = StateMachine()
        let keys = (0 ..< 50).map { Key("key-\($0)") }
        for generation in 1 ... 200 {
            let value = bytes("g\(generation)")
            machine.apply(entry(LogIndex(generation), .setMany(keys.map { KeyValuePair($0, value) }, onlyIfNoneExist: false)))
            let seen = Set(keys.map { machine.value(for: $0) })
            #expect(seen == [value])
        }
    }
}
