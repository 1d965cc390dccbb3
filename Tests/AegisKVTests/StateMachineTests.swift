@testable import AegisKV
import AegisRaft
import Testing

@Suite struct StateMachineTests {
    @Test func test_set_createsThenVersionsTheKey() {
        var machine = StateMachine()
        let first = machine.apply(entry(1, .set("key", bytes("value"))))
        #expect(first == CommandResult(index: 1, value: bytes("value"), version: 1, revision: 1))
        let second = machine.apply(entry(2, .set("key", bytes("other"))))
        #expect(second == CommandResult(index: 2, value: bytes("other"), previousValue: bytes("value"), version: 2, revision: 2))
        machine.apply(entry(3, .set("b", bytes("x"))))
        #expect(machine.get("key") == KeyValue(key: "key", value: bytes("other"), version: 2, createRevision: 1, modRevision: 2))
        #expect(machine.get("b")?.createRevision == 3)
        #expect(machine.revision == 3 && machine.appliedIndex == 3 && machine.count == 2)
    }

    @Test func test_get_readsThroughTheLogWithoutWriting() {
        var machine = StateMachine()
        #expect(machine.apply(entry(1, .get("missing"))) == CommandResult(index: 1, revision: 0))
        machine.apply(entry(2, .set("k", bytes("v"))))
        let read = machine.apply(entry(3, .get("k")))
        #expect(read.value == bytes("v") && read.version == 1 && read.revision == 1 && read.isSuccess)
        #expect(machine.revision == 1 && machine.appliedIndex == 3)
    }

    @Test func test_delete_removesAndResetsTheVersion() {
        var machine = StateMachine()
        applyAll(&machine, [.set("k", bytes("1")), .set("k", bytes("2"))])
        let deleted = machine.apply(entry(3, .delete("k")))
        #expect(deleted == CommandResult(index: 3, previousValue: bytes("2"), revision: 3))
        #expect(machine.get("k") == nil && machine.isEmpty)
        let missing = machine.apply(entry(4, .delete("k")))
        #expect(missing == CommandResult(index: 4, revision: 3))  // no revision bump
        machine.apply(entry(5, .set("k", bytes("again"))))
        #expect(machine.get("k") == KeyValue(key: "k", value: bytes("again"), version: 1, createRevision: 4, modRevision: 4))
    }

    @Test func test_compareAndSwap_byValue() {
        var machine = StateMachine()
        let absent = machine.apply(entry(1, .compareAndSwap("k", expected: .value(bytes("a")), new: bytes("b"))))
        #expect(absent.error == .compareFailed(currentVersion: 0) && machine.isEmpty && machine.revision == 0)
        machine.apply(entry(2, .set("k", bytes("a"))))
        let swapped = machine.apply(entry(3, .compareAndSwap("k", expected: .value(bytes("a")), new: bytes("b"))))
        #expect(swapped.isSuccess && swapped.value == bytes("b") && swapped.version == 2)
        let stale = machine.apply(entry(4, .compareAndSwap("k", expected: .value(bytes("a")), new: bytes("c"))))
        #expect(stale.error == .compareFailed(currentVersion: 2))
        #expect(stale.value == bytes("b"))  // the current value, so the caller can retry
        #expect(machine.value(for: "k") == bytes("b") && machine.revision == 2)
    }

    @Test func test_compareAndSwap_byVersion() {
        var machine = StateMachine()
        let create = machine.apply(entry(1, .compareAndSwap("k", expected: .version(0), new: bytes("first"))))
        #expect(create.isSuccess && create.version == 1)
        let again = machine.apply(entry(2, .compareAndSwap("k", expected: .version(0), new: bytes("second"))))
        #expect(again.error == .compareFailed(currentVersion: 1))
        let update = machine.apply(entry(3, .compareAndSwap("k", expected: .version(1), new: bytes("second"))))
        #expect(update.isSuccess && update.previousValue == bytes("first"))
        let wrong = machine.apply(entry(4, .compareAndSwap("k", expected: .version(1), new: bytes("third"))))
        #expect(wrong.error == .compareFailed(currentVersion: 2) && machine.value(for: "k") == bytes("second"))
    }

    @Test func test_increment_addsToDecimalIntegers() {
        var machine = StateMachine()
        #expect(machine.apply(entry(1, .increment("n", by: 5))).value == bytes("5"))  // missing counts as 0
        #expect(machine.apply(entry(2, .increment("n", by: -7))).value == bytes("-2"))
        #expect(machine.get("n")?.version == 2)
        machine.apply(entry(3, .set("n", bytes("9223372036854775806"))))
        #expect(machine.apply(entry(4, .increment("n", by: 1))).value == bytes("9223372036854775807"))
        let overflow = machine.apply(entry(5, .increment("n", by: 1)))
        #expect(overflow.error == .incrementOverflow(current: Int64.max, amount: 1))
        #expect(machine.value(for: "n") == bytes("9223372036854775807") && machine.revision == 4)
        machine.apply(entry(6, .set("n", bytes("-9223372036854775808"))))
        #expect(machine.apply(entry(7, .increment("n", by: -1))).error == .incrementOverflow(current: Int64.min, amount: -1))
    }

    @Test func test_increment_refusesNonIntegers() {
        for text in ["", "abc", "1.5", "+1", "01", "-0", " 1", "1 ", "-", "99999999999999999999", "9223372036854775808"] {
            var machine = StateMachine()
            machine.apply(entry(1, .set("n", bytes(text))))
            let result = machine.apply(entry(2, .increment("n", by: 1)))
            #expect(result.error == .notAnInteger, "\(text)")
            #expect(machine.value(for: "n") == bytes(text) && machine.revision == 1)
        }
        #expect(parseDecimalInt64(bytes("0")) == 0)
        #expect(parseDecimalInt64(bytes("-42")) == -42)
        #expect(parseDecimalInt64(bytes("-9223372036854775808")) == Int64.min)
    }

    @Test func test_custom_runsTheRegisteredHandler() {
        let append = CustomCommandHandler(name: "append") { current, payload in
            payload.isEmpty ? .reject("nothing to append") : .set((current?.value ?? []) + payload)
        }
        let clear = CustomCommandHandler(name: "clear-if") { current, payload in
            current?.value == payload ? .delete : .keep
        }
        var machine = StateMachine(customCommands: [append])
        machine.register(clear)
        #expect(machine.apply(entry(1, .custom(name: "append", key: "k", payload: bytes("ab")))).value == bytes("ab"))
        #expect(machine.apply(entry(2, .custom(name: "append", key: "k", payload: bytes("c")))).value == bytes("abc"))
        let rejected = machine.apply(entry(3, .custom(name: "append", key: "k", payload: [])))
        #expect(rejected.error == .customCommandRejected(name: "append", reason: "nothing to append"))
        let kept = machine.apply(entry(4, .custom(name: "clear-if", key: "k", payload: bytes("zzz"))))
        #expect(kept.isSuccess && kept.value == bytes("abc") && machine.revision == 2)
        let cleared = machine.apply(entry(5, .custom(name: "clear-if", key: "k", payload: bytes("abc"))))
        #expect(cleared.isSuccess && machine.get("k") == nil && machine.revision == 3)
        let unknown = machine.apply(entry(6, .custom(name: "nope", key: "k", payload: [])))
        #expect(unknown.error == .unknownCustomCommand(name: "nope"))
    }

    @Test func test_limits_refuseEmptyAndOversizedKeysAndValues() {
        let big = CustomCommandHandler(name: "big") { _, _ in .set([UInt8](repeating: 0, count: 9)) }
        var machine = StateMachine(limits: .init(maxKeySize: 4, maxValueSize: 8), customCommands: [big])
        let results = applyAll(&machine, [
            .set(Key([]), bytes("v")),
            .set("12345", bytes("v")),
            .get("12345"),
            .set("k", [UInt8](repeating: 1, count: 9)),
            .compareAndSwap("k", expected: .version(0), new: [UInt8](repeating: 1, count: 9)),
            .custom(name: "big", key: "k", payload: []),
            .set("1234", [UInt8](repeating: 1, count: 8)),
        ])
        #expect(results.map(\.error) == [
            .emptyKey, .keyTooLarge(size: 5, limit: 4), .keyTooLarge(size: 5, limit: 4),
            .valueTooLarge(size: 9, limit: 8), .valueTooLarge(size: 9, limit: 8), .valueTooLarge(size: 9, limit: 8), nil,
        ])
        #expect(machine.count == 1 && machine.revision == 1 && machine.appliedIndex == 7)
    }

    @Test func test_apply_reappliedIndexIsANoOp() {
        var machine = StateMachine()
        machine.apply(entry(1, .set("k", bytes("a"))))
        machine.apply(entry(2, .increment("n", by: 1)))
        let digest = machine.digest()
        let again = machine.apply(entry(2, .increment("n", by: 1)))
        #expect(again.error == .alreadyApplied(index: 2, appliedIndex: 2))
        let older = machine.apply(entry(1, .set("k", bytes("b"))))
        #expect(older.error == .alreadyApplied(index: 1, appliedIndex: 2))
        #expect(machine.apply(.delete("k"), at: 0).error == .alreadyApplied(index: 0, appliedIndex: 2))
        #expect(machine.digest() == digest && machine.value(for: "n") == bytes("1"))
    }

    @Test func test_apply_nonCommandEntriesOnlyAdvanceTheIndex() {
        var machine = StateMachine()
        machine.apply(entry(1, .set("k", bytes("a"))))
        let noOp = machine.apply(LogEntry(index: 2, term: 2, type: .noOp))
        let config = machine.apply(LogEntry(index: 3, term: 2, type: .configChange, data: [9, 9, 9]))
        #expect(noOp == CommandResult(index: 2, revision: 1) && config == CommandResult(index: 3, revision: 1))
        #expect(machine.appliedIndex == 3 && machine.revision == 1)
    }

    @Test func test_apply_malformedEntryFailsWithoutChangingState() {
        var machine = StateMachine()
        machine.apply(entry(1, .set("k", bytes("a"))))
        let digestBefore = machine.digest()
        let result = machine.apply(LogEntry(index: 2, term: 1, data: [1, 2, 1]))
        #expect(result.error == .malformedCommand("truncated in the key (1 bytes left)"))
        #expect(machine.appliedIndex == 2 && machine.revision == 1 && machine.value(for: "k") == bytes("a"))
        var expected = StateMachine()
        expected.apply(entry(1, .set("k", bytes("a"))))
        expected.apply(LogEntry(index: 2, term: 1, type: .noOp))
        #expect(machine.digest() == expected.digest())
        #expect(machine.digest() != digestBefore)  // the applied index is part of the state
    }

    @Test func test_range_readsInKeyOrderWithBounds() {
        var machine = StateMachine()
        for key in ["b", "a", "d", "c", "e"] { applyAll(&machine, [.set(Key(key), bytes(key))]) }
        #expect(machine.range().map(\.key) == ["a", "b", "c", "d", "e"])
        #expect(machine.range(from: "b", to: "d").map(\.key) == ["b", "c"])
        #expect(machine.range(from: "bb").map(\.key) == ["c", "d", "e"])
        #expect(machine.range(to: "c", limit: 1).map(\.key) == ["a"])
        applyAll(&machine, [.delete("c"), .set("ca", bytes("x")), .delete("a"), .set("a", bytes("again"))])
        #expect(machine.range().map(\.key) == ["a", "b", "ca", "d", "e"])
        #expect(machine.range(from: "a", to: "b").first?.value == bytes("again"))
        #expect(machine.sortedKeys().count == machine.count)
    }

    @Test func test_scan_readsKeysWithAPrefix() {
        var machine = StateMachine()
        let long = String(repeating: "z", count: 20)
        let keys = ["user:2", "user:10", "user", "users", "user:1:\(long)", "usea", "user:1"]
        for key in keys { applyAll(&machine, [.set(Key(key), [])]) }
        #expect(machine.scan(prefix: "user:").map(\.key) == [Key("user:1"), Key("user:10"), Key("user:1:\(long)"), Key("user:2")])  // "0" < ":"
        #expect(machine.scan(prefix: "user:", limit: 2).count == 2)
        #expect(machine.scan(prefix: "nothing").isEmpty)
        #expect(machine.scan(prefix: Key("user:1:\(long)")).count == 1)
    }

    @Test func test_table_survivesManyCreatesAndRemovals() {
        var machine = StateMachine()
        var model: [Key: [UInt8]] = [:]
        var script = CommandScript(seed: 7)
        for i in 0 ..< 20_000 {
            let key = Key("key-\(script.next() % 3000)")
            if i % 3 == 0 {
                machine.apply(entry(machine.appliedIndex + 1, .delete(key)))
                model[key] = nil
            } else {
                machine.apply(entry(machine.appliedIndex + 1, .set(key, bytes("\(i)"))))
                model[key] = bytes("\(i)")
            }
        }
        #expect(machine.count == model.count)
        for (key, value) in model { #expect(machine.value(for: key) == value) }
        #expect(machine.range().map(\.key) == model.keys.sorted())
    }
}
