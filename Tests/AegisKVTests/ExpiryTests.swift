import AegisCRDT
@testable import AegisKV
import AegisRaft
import Testing

/// Expiring keys: deadlines resolved from the leader timestamps in the log, lazy and
/// purged expiry at the same place in the log on every replica, and deadlines in
/// snapshots (format 3; formats 1 and 2 still read).
@Suite struct ExpiryTests {
    /// `run` at leader timestamp `at`.
    @discardableResult
    func at(_ time: UInt64, _ machine: inout StateMachine, _ command: Command) -> CommandResult {
        run(&machine, command, timestamp: time)
    }

    @Test func test_relativeDeadline_isResolvedFromTheEntryTimestamp_notAClock() {
        var machine = StateMachine()
        at(10_000, &machine, .set("k", bytes("v")))
        #expect(at(10_000, &machine, .expire("k", .after(milliseconds: 500), .always)).integer == 1)
        #expect(machine.deadline(of: "k") == 10_500)
        // Still there at 10,499 (apply clock), gone at 10,500, for a get through the log.
        #expect(at(10_499, &machine, .get("k")).value == bytes("v"))
        #expect(at(10_500, &machine, .get("k")).value == nil)
        #expect(machine.count == 0 && machine.expiringKeyCount == 0)
    }

    @Test func test_applyClock_neverRunsBackwards() {
        var machine = StateMachine()
        at(20_000, &machine, .setWith("k", bytes("v"), condition: .always, returnPrevious: false,
                                       expiry: .set(.after(milliseconds: 1_000))))
        // A new leader whose clock is behind: its entries do not move the clock back,
        // and its relative deadlines count from the highest timestamp applied.
        at(5_000, &machine, .expire("j", .after(milliseconds: 1), .always))
        #expect(machine.expiryClock == 20_000)
        at(5_000, &machine, .set("other", bytes("x")))
        #expect(at(5_000, &machine, .setWith("other", bytes("y"), condition: .always, returnPrevious: false,
                                             expiry: .set(.after(milliseconds: 100)))).isSuccess)
        #expect(machine.deadline(of: "other") == 20_100)
        #expect(machine.get("k", now: 20_999) != nil && machine.get("k", now: 21_000) == nil)
    }

    @Test func test_sameEntries_sameStateOnEveryReplica() {
        var script = CommandScript(seed: 7)
        var entries: [LogEntry] = []
        var time: UInt64 = 1_000
        for index in 1 ... 600 {
            time += script.next() % 40
            let key = Key("k\(script.next() % 12)")
            let command: Command
            switch script.next() % 8 {
            case 0: command = .setWith(key, bytes("v\(index)"), condition: .always, returnPrevious: false,
                                       expiry: .set(.after(milliseconds: Int64(script.next() % 300))))
            case 1: command = .expire(key, .after(milliseconds: Int64(script.next() % 300) - 20),
                                      ExpireCondition.allCases[Int(script.next() % 6)])
            case 2: command = .increment(key, by: 1)
            case 3: command = .persist(key)
            case 4: command = .purgeExpired([key, Key("k\(script.next() % 12)")])
            case 5: command = .rename(key, to: Key("k\(script.next() % 12)"), onlyIfAbsent: false)
            case 6: command = .collection(key, .setAdd([bytes("m")]))
            default: command = .get(key)
            }
            entries.append(LogEntry(index: LogIndex(index), term: 1, data: command.encoded(), timestamp: time))
        }
        var a = StateMachine(), b = StateMachine()
        let resultsA = entries.map { a.apply($0) }
        let resultsB = entries.map { b.apply($0) }
        #expect(resultsA == resultsB)
        #expect(a.digest() == b.digest())
        #expect(a.expiringKeyCount <= a.count)
        // Deadlines are part of the digested state: the same keys and values with a
        // different deadline digest differently.
        var d = StateMachine(), e = StateMachine()
        run(&d, .set("x", bytes("1")), timestamp: 5)
        run(&e, .set("x", bytes("1")), timestamp: 5)
        run(&d, .expire("x", .at(milliseconds: 1_000), .always), timestamp: 5)
        run(&e, .expire("x", .at(milliseconds: 1_001), .always), timestamp: 5)
        #expect(d.digest() != e.digest())
    }

    @Test func test_overwriteClearsTheDeadline_incrementAndAppendKeepIt() {
        var machine = StateMachine()
        at(1_000, &machine, .set("n", bytes("1")))
        at(1_000, &machine, .expire("n", .after(milliseconds: 5_000), .always))
        at(1_000, &machine, .increment("n", by: 1))
        at(1_000, &machine, .append("n", bytes("0")))
        #expect(machine.deadline(of: "n") == 6_000 && machine.get("n")?.value == bytes("20"))
        at(1_000, &machine, .set("n", bytes("x")))
        #expect(machine.deadline(of: "n") == nil)
        at(1_000, &machine, .expire("n", .after(milliseconds: 5_000), .always))
        at(1_000, &machine, .setWith("n", bytes("y"), condition: .always, returnPrevious: false, expiry: .keep))
        #expect(machine.deadline(of: "n") == 6_000)
        at(1_000, &machine, .setMany([KeyValuePair("n", bytes("z"))], onlyIfNoneExist: false))
        #expect(machine.deadline(of: "n") == nil)
        // A removed key leaves no deadline behind: memory stays bounded by the keys.
        at(1_000, &machine, .expire("n", .after(milliseconds: 5_000), .always))
        at(1_000, &machine, .delete("n"))
        #expect(machine.expiringKeyCount == 0)
        at(1_000, &machine, .set("n", bytes("again")))
        #expect(machine.deadline(of: "n") == nil)
    }

    @Test func test_expireConditions_asRedis7() {
        var machine = StateMachine()
        at(0, &machine, .set("k", bytes("v")))
        func expire(_ ms: Int64, _ condition: ExpireCondition) -> Int64 {
            at(0, &machine, .expire("k", .after(milliseconds: ms), condition)).integer
        }
        #expect(expire(100, .ifSome) == 0)        // XX without a deadline
        #expect(expire(100, .ifGreater) == 0)     // GT: none is infinite
        #expect(expire(100, .ifSomeAndLess) == 0) // XX LT without a deadline
        #expect(expire(100, .ifLess) == 1)        // LT: anything is less than infinite
        #expect(expire(200, .ifNone) == 0)
        #expect(expire(200, .ifLess) == 0)
        #expect(expire(200, .ifGreater) == 1)
        #expect(expire(50, .ifSomeAndLess) == 1)
        #expect(machine.deadline(of: "k") == 50)
        #expect(at(0, &machine, .expire("missing", .after(milliseconds: 10), .always)).integer == 0)
        #expect(at(0, &machine, .expire("k", .after(milliseconds: .max), .always)).error == nil)
        at(10, &machine, .get("x"))
        #expect(at(10, &machine, .expire("k", .after(milliseconds: .max), .always)).error == .invalidExpireTime)
        // A deadline at or before the apply clock removes the key and answers 1.
        #expect(at(10, &machine, .expire("k", .at(milliseconds: 10), .always)).integer == 1)
        #expect(machine.get("k") == nil)
    }

    @Test func test_purge_removesOnlyKeysStillDue() {
        var machine = StateMachine()
        for name in ["a", "b", "c"] {
            at(1_000, &machine, .setWith(Key(name), bytes("v"), condition: .always, returnPrevious: false,
                                         expiry: .set(.after(milliseconds: 100))))
        }
        #expect(machine.dueForExpiry(at: 1_099, limit: 10).isEmpty)
        let due = machine.dueForExpiry(at: 1_100, limit: 2)
        #expect(due.count == 2)
        // "b" is written again before the purge is applied: it stays.
        at(1_050, &machine, .set("b", bytes("new")))
        let purge = at(1_100, &machine, .purgeExpired(["a", "b", "c"]))
        #expect(purge.keyCount == 2 && machine.get("b")?.value == bytes("new") && machine.count == 1)
        #expect(machine.dueForExpiry(at: .max, limit: 10).isEmpty)
    }

    @Test func test_dueForExpiry_findsDueKeysBehindManyStaleHeapEntries() {
        var machine = StateMachine()
        for index in 0 ..< 2_000 {
            at(0, &machine, .setWith(Key("k\(index)"), bytes("v"), condition: .always, returnPrevious: false,
                                     expiry: .set(.at(milliseconds: Int64(100 + index)))))
        }
        // Persist the earliest half: their heap entries go stale.
        for index in 0 ..< 1_000 { at(0, &machine, .persist(Key("k\(index)"))) }
        let due = machine.dueForExpiry(at: 5_000, limit: 8)
        #expect(due == (1_000 ..< 1_008).map { Key("k\($0)") })
    }

    @Test func test_snapshot_carriesDeadlinesAndTheApplyClock() throws {
        var source = StateMachine()
        at(7_000, &source, .set("a", bytes("1")))
        at(7_000, &source, .expire("a", .after(milliseconds: 900), .always))
        at(7_100, &source, .collection("s", .setAdd([bytes("m")])))
        at(7_200, &source, .expire("s", .at(milliseconds: 99_000), .always))
        at(7_300, &source, .set("plain", bytes("p")))
        var target = StateMachine()
        try target.restore(fromChunks: source.snapshotChunks(chunkSize: 5))
        #expect(target.digest() == source.digest())
        #expect(target.deadline(of: "a") == 7_900 && target.deadline(of: "s") == 99_000 && target.deadline(of: "plain") == nil)
        #expect(target.expiryClock == 7_300)
        #expect(source.snapshotChunks().byteCount == source.snapshotData().count)
        #expect(KVSnapshotSummary(source.snapshotData())?.keyCount == 3)
        // The restored machine expires "a" at the same place as the source.
        #expect(at(7_900, &target, .get("a")).value == nil)
    }

    @Test func test_snapshotFormat2_isStillRead_withoutDeadlines() throws {
        var machine = StateMachine()
        try machine.restore(from: Snapshot(data: Self.snapshot(format: 2, expiry: [])))
        #expect(machine.get("a")?.value == Array("v".utf8) && machine.expiringKeyCount == 0 && machine.expiryClock == 0)
        #expect(machine.snapshotData()[4] == 3)
    }

    /// A snapshot of one string key "a" (format 2 or 3) with `expiry` as its expiry
    /// section, with a valid checksum.
    static func snapshot(format: UInt8, expiry: [UInt8]) -> [UInt8] {
        var bytes = Array("AKVS".utf8) + [format]
        bytes.appendUInt64LE(4)
        bytes.appendUInt64LE(1)
        bytes.appendUInt64LE(1)
        bytes.appendLengthPrefixed(Array("a".utf8))
        bytes.appendLengthPrefixed(Array("v".utf8))
        // Version, create and modify revisions; the HLC, the dot counter, no collections.
        for field: UInt64 in [1, 1, 1, 0, 0, 0, 0] { bytes.appendVarint(field) }
        bytes += expiry
        if format >= 3 { bytes.appendVarint(0) }  // no tagged sections (KVSnapshotSections.swift)
        bytes.appendUInt32LE(CRC32C.checksum(bytes))
        return bytes
    }

    @Test func test_expirySection_isValidated_evenWithAValidChecksum() throws {
        func section(_ clock: UInt64, _ entries: [(String, UInt64)], count: Int? = nil) -> [UInt8] {
            var bytes: [UInt8] = []
            bytes.appendVarint(clock)
            bytes.appendVarint(UInt64(count ?? entries.count))
            for (key, deadline) in entries {
                bytes.appendLengthPrefixed(Array(key.utf8))
                bytes.appendVarint(deadline)
            }
            return bytes
        }
        var machine = StateMachine()
        try machine.restore(from: Snapshot(data: Self.snapshot(format: 3, expiry: section(5, [("a", 9)]))))
        #expect(machine.deadline(of: "a") == 9 && machine.expiryClock == 5)
        let bad: [([UInt8], KVError)] = [
            (section(5, [("b", 9)]), .malformedSnapshot("expiry entry 0 names a key the snapshot does not hold")),
            (section(5, [("a", 0)]), .malformedSnapshot("expiry entry 0 has deadline 0")),
            (section(5, [("a", 9)], count: 2), .malformedSnapshot("2 deadlines for a snapshot of 1 keys")),
        ]
        for (expiry, error) in bad {
            var target = StateMachine()
            #expect(throws: error) { try target.restore(from: Snapshot(data: Self.snapshot(format: 3, expiry: expiry))) }
            #expect(target.isEmpty)
        }
    }

    @Test func test_timeToLive_reportsDeadlineAndClock() {
        var machine = StateMachine()
        #expect(at(100, &machine, .timeToLive("k")).integer == -2)
        at(100, &machine, .set("k", bytes("v")))
        #expect(at(100, &machine, .timeToLive("k")).integer == -1)
        at(100, &machine, .expire("k", .after(milliseconds: 1_000), .always))
        let ttl = at(300, &machine, .timeToLive("k"))
        #expect(ttl.integer == 1_100 && ttl.time == 300)
        #expect(at(300, &machine, .getAndExpire("k", .clear)).value == bytes("v"))
        #expect(machine.deadline(of: "k") == nil)
    }
}
