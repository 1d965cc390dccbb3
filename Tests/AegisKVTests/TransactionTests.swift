@testable import AegisKV
import AegisRaft
import Testing

/// Transactions (one entry, applied atomically, WATCH decided at apply time) and the
/// keyspace reads answered at apply time.
@Suite struct TransactionTests {
    @Test func test_transaction_isOneEntry_withPerCommandResults() {
        var machine = StateMachine()
        run(&machine, .set("s", bytes("text")))
        let before = machine.appliedIndex
        let result = run(&machine, .transaction(watches: [], commands: [
            .increment("n", by: 1), .increment("s", by: 1), .set("t", bytes("x")), .get("n"),
            .keyspace(.exists(["n", "t", "missing"])),
        ]))
        #expect(machine.appliedIndex == before + 1)
        #expect(result.error == nil && result.results.count == 5)
        #expect(result.results[0].value == bytes("1"))
        #expect(result.results[1].error == .notAnInteger)  // fails alone, as in Redis
        #expect(result.results[2].isSuccess && machine.get("t")?.value == bytes("x"))
        #expect(result.results[3].value == bytes("1"))      // reads see the earlier commands
        #expect(result.results[4].integer == 2)
    }

    @Test func test_watch_abortsWhenTheKeyChanged_atApplyTime() {
        var machine = StateMachine()
        run(&machine, .set("w", bytes("1")))
        let watched = WatchedKey("w", modRevision: machine.get("w")?.modRevision ?? 0)
        run(&machine, .set("w", bytes("2")))  // another client's write, before EXEC is applied
        let aborted = run(&machine, .transaction(watches: [watched], commands: [.set("x", bytes("1"))]))
        #expect(aborted.error == .transactionAborted && aborted.results.isEmpty && machine.get("x") == nil)
        let fresh = WatchedKey("w", modRevision: machine.get("w")?.modRevision ?? 0)
        let applied = run(&machine, .transaction(watches: [fresh, WatchedKey("absent", modRevision: 0)],
                                                 commands: [.set("x", bytes("1"))]))
        #expect(applied.error == nil && machine.get("x")?.value == bytes("1"))
    }

    @Test func test_watch_expiryOfTheWatchedKeyCountsAsAChange() {
        var machine = StateMachine()
        run(&machine, .setWith("lock", bytes("me"), condition: .always, returnPrevious: false,
                               expiry: .set(.after(milliseconds: 100))), timestamp: 1_000)
        let watched = WatchedKey("lock", modRevision: machine.get("lock")?.modRevision ?? 0)
        #expect(watched.modRevision > 0)
        let late = run(&machine, .transaction(watches: [watched], commands: [.increment("fence", by: 1)]), timestamp: 1_100)
        #expect(late.error == .transactionAborted && machine.get("fence") == nil)
    }

    @Test func test_transaction_refusesNestingAndPurges() {
        let nested = Command.transaction(watches: [], commands: [.transaction(watches: [], commands: [])])
        #expect(throws: KVError.malformedCommand("a transaction command cannot be part of a transaction")) {
            try Command(decoding: nested.encoded())
        }
        var machine = StateMachine()
        let result = machine.apply(.transaction(watches: [], commands: [.purgeExpired(["a"]), .set("b", bytes("1"))]), at: 1)
        #expect(result.results.first?.error == .notAllowedInTransaction && machine.get("b") != nil)
    }

    @Test func test_newCommands_roundTripThroughTheCodec() throws {
        let commands: [Command] = [
            .expire("k", .after(milliseconds: -5), .ifSomeAndLess), .expire("k", .at(milliseconds: 1 << 40), .always),
            .persist("k"), .timeToLive("k"),
            .setWith("k", bytes("v"), condition: .ifEqual(bytes("o")), returnPrevious: true, expiry: .set(.at(milliseconds: 9))),
            .setWith("k", [], condition: .ifAbsent, returnPrevious: false, expiry: .keep),
            .getAndExpire("k", .clear), .purgeExpired(["a", "b"]),
            .transaction(watches: [WatchedKey("w", modRevision: 7)], commands: [.set("a", bytes("1")), .keyspace(.count)]),
            .keyspace(.scan(after: "a", pattern: bytes("*x"), count: 5, type: .hash)),
            .keyspace(.scan(after: nil, pattern: nil, count: 1, type: nil)), .keyspace(.keys(pattern: bytes("*"), limit: 3)),
            .keyspace(.randomKey), .keyspace(.exists(["a", "a"])), .keyspace(.encoding("e")), .keyspace(.memoryUsage("m")),
            .rename("a", to: "b", onlyIfAbsent: true), .copy("a", to: "b", replace: false), .flushAll,
        ]
        for command in commands {
            let bytes = command.encoded()
            #expect(bytes.count == command.encodedSize)
            #expect(bytes[0] == 4 && (12 ... 39).contains(bytes[1]))
            #expect(try Command(decoding: bytes) == command)
            // Every strict prefix is refused (truncation is never misread).
            for length in 0 ..< bytes.count {
                #expect(throws: KVError.self) { try Command(decoding: Array(bytes.prefix(length))) }
            }
        }
        #expect(throws: KVError.malformedCommand("unknown command type 12 in encoding version 3")) {
            try Command(decoding: [3, 12, 1, 0x6B])
        }
    }

    @Test func test_scan_returnsEveryKeyPresentForTheWholeScan_once() {
        var machine = StateMachine()
        for index in 0 ..< 200 { run(&machine, .set(Key("k\(index)"), bytes("v"))) }
        for index in 0 ..< 20 { run(&machine, .collection(Key("h\(index)"), .hashSet([FieldValue(bytes("f"), bytes("v"))]))) }
        var seen: [Key: Int] = [:]
        var cursor: Key?
        var round = 0
        repeat {
            let result = run(&machine, .keyspace(.scan(after: cursor, pattern: nil, count: 7, type: nil)))
            for key in result.elements { seen[Key(key), default: 0] += 1 }
            cursor = result.value.map { Key($0) }
            // Between calls: remove some keys, add others (before and after the cursor).
            run(&machine, .delete(Key("k\(round * 3 % 200 + 100)")))
            run(&machine, .set(Key("a-new\(round)"), bytes("x")))
            run(&machine, .set(Key("z-new\(round)"), bytes("x")))
            round += 1
        } while cursor != nil && round < 1_000
        #expect(cursor == nil)
        let stable = (0 ..< 100).map { Key("k\($0)") } + (0 ..< 20).map { Key("h\($0)") }
        for key in stable { #expect(seen[key] == 1, "\(key)") }
        #expect(seen.values.allSatisfy { $0 == 1 })
        let hashes = run(&machine, .keyspace(.scan(after: nil, pattern: bytes("h1*"), count: 1_000, type: .hash)))
        #expect(hashes.elements.count == 11 && hashes.value == nil)
    }

    @Test func test_keys_isBoundedByItsLimit() {
        var machine = StateMachine()
        for index in 0 ..< 5 { run(&machine, .set(Key("k\(index)"), bytes("v"))) }
        #expect(run(&machine, .keyspace(.keys(pattern: bytes("k*"), limit: 5))).elements.count == 5)
        #expect(run(&machine, .keyspace(.keys(pattern: bytes("k*"), limit: 4))).error == .replyTooLarge(limit: 4))
    }

    @Test func test_renameCopyFlush_keepDeadlinesAndCounts() {
        var machine = StateMachine()
        run(&machine, .set("a", bytes("1")), timestamp: 100)
        run(&machine, .expire("a", .after(milliseconds: 1_000), .always), timestamp: 100)
        #expect(run(&machine, .rename("a", to: "b", onlyIfAbsent: false)).isSuccess)
        #expect(machine.get("a") == nil && machine.deadline(of: "b") == 1_100 && machine.expiringKeyCount == 1)
        #expect(run(&machine, .rename("a", to: "b", onlyIfAbsent: false)).error == .noSuchKey)
        #expect(run(&machine, .copy("b", to: "c", replace: false)).integer == 1)
        #expect(run(&machine, .copy("b", to: "c", replace: false)).integer == 0)
        #expect(machine.deadline(of: "c") == 1_100 && machine.get("c")?.value == bytes("1"))
        run(&machine, .collection("s", .setAdd([bytes("m")])))
        #expect(run(&machine, .copy("s", to: "s2", replace: false)).integer == 1 && machine.type(of: "s2") == .set)
        #expect(run(&machine, .flushAll).keyCount == 4)
        #expect(machine.isEmpty && machine.expiringKeyCount == 0)
        run(&machine, .set("after", bytes("x")))
        #expect(machine.sortedKeys() == ["after"])
    }
}
