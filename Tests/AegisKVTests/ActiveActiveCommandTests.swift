@testable import AegisKV
import AegisCRDT
import AegisRaft
import Testing

/// Active-active: sequential behaviour, refusals, codecs and snapshots.
@Suite("Active-active commands")
struct ActiveActiveCommandTests {
    static func cluster(_ id: String, skew: UInt64 = ActiveActiveSettings.defaultMaxClockSkewMillis) -> StateMachine {
        var machine = StateMachine(replica: ReplicaID(id))
        machine.apply(.setActiveActive(ActiveActiveSettings(enabled: true, maxClockSkewMillis: skew)), at: 1, timestamp: 1_000)
        return machine
    }

    /// Applies `command` as the next entry with leader time `time`.
    @discardableResult
    static func run(_ machine: inout StateMachine, _ command: Command, time: UInt64 = 1_000) -> CommandResult {
        machine.apply(command, at: machine.appliedIndex + 1, timestamp: time)
    }

    /// Ships every state of `keys` from `source` to `target` (cursor-free: after 0, last 1).
    static func exchange(_ source: StateMachine, into target: inout StateMachine, keys: [Key], last: UInt64,
                         time: UInt64 = 1_000) -> CommandResult {
        let batch = ActiveActiveBatch(source: source.replica.rawValue, afterIndex: 0, lastIndex: last, sourceCommit: last,
                                      sourceTime: time, states: source.activeActiveStates(for: keys))
        return run(&target, .activeActiveBatch(batch), time: time)
    }

    // MARK: Sequential behaviour is Redis's

    /// A random command over a few keys, of every type, including wrong-type ones.
    static func randomCommand(_ script: inout CommandScript) -> Command {
        let keys: [Key] = ["a", "b", "c", "d"]
        let key = keys[Int(script.next() % 4)]
        let other = keys[Int(script.next() % 4)]
        let item = bytes("\(script.next() % 3)")
        switch script.next() % 20 {
        case 0: return .set(key, bytes("v\(script.next() % 5)"))
        case 1: return .set(key, bytes("\(script.next() % 9)"))
        case 2: return .increment(key, by: Int64(script.next() % 7) - 3)
        case 3: return .delete(key)
        case 4: return .append(key, item)
        case 5: return .getSet(key, item)
        case 6: return .compareAndSwap(key, expected: .version(0), new: item)
        case 7: return .collection(key, .setAdd([item, bytes("x")]))
        case 8: return .collection(key, .setRemove([item]))
        case 9: return .collection(key, .setMembers)
        case 10: return .collection(key, .hashSet([FieldValue(item, bytes("\(script.next() % 4)"))]))
        case 11: return .collection(key, .hashDelete([item]))
        case 12: return .collection(key, .hashIncrement(item, by: 2))
        case 13: return .collection(key, .hashGetAll)
        case 14: return .collection(key, .type)
        case 15: return .rename(key, to: other, onlyIfAbsent: script.next() % 2 == 0)
        case 16: return .copy(key, to: other, replace: script.next() % 2 == 0)
        case 17: return .deleteMany([key, other])
        case 18: return .setMany([KeyValuePair(key, item), KeyValuePair(other, item)], onlyIfNoneExist: script.next() % 2 == 0)
        default: return .get(key)
        }
    }

    @Test(arguments: 0 ..< 200)
    func enabledCluster_answersEveryCommandAsAPlainOne(seed: UInt64) {
        var plain = StateMachine(replica: "a")
        var tracked = Self.cluster("a")
        plain.apply(.get("a"), at: 1, timestamp: 1_000)
        var script = CommandScript(seed: seed)
        for step in 0 ..< 200 {
            let command = Self.randomCommand(&script)
            let time = 1_000 + UInt64(step)
            let expected = Self.run(&plain, command, time: time)
            let got = Self.run(&tracked, command, time: time)
            #expect(got.error == expected.error && got.value == expected.value && got.integer == expected.integer
                    && got.elements == expected.elements && got.keyCount == expected.keyCount,
                    "seed \(seed) step \(step): \(command): \(got) != \(expected)")
        }
        for key: Key in ["a", "b", "c", "d"] {
            #expect(Self.content(tracked.activeActiveState(of: key).view) == Self.content(Self.plainView(plain, key)),
                    "seed \(seed): \(key)")
        }
    }

    static func plainView(_ machine: StateMachine, _ key: Key) -> ActiveActiveView {
        if let value = machine.value(for: key) { return .string(value) }
        if let collection = machine.collection(key) { return .collection(collection) }
        return .absent
    }

    /// What a client can read of a view (a set's members, a hash's fields and values).
    static func content(_ view: ActiveActiveView) -> [[UInt8]]? {
        switch view {
        case .absent: return nil
        case .string(let value): return [value]
        case .collection(.set(let set)): return set.elements.sorted { $0.lexicographicallyPrecedes($1) }
        case .collection(.hash(let map)):
            return map.keys.sorted { $0.lexicographicallyPrecedes($1) }.flatMap { [$0, map[$0]?.value ?? []] }
        }
    }

    @Test func plainCluster_keepsNoMetadata_andTakesTheFastPath() {
        var plain = StateMachine(replica: "a")
        applyAll(&plain, [.set("k", bytes("1")), .increment("k", by: 2), .collection("s", .setAdd([bytes("m")])), .delete("k")])
        #expect(plain.activeActiveMetadataCount == 0 && plain.activeActiveSettings.enabled == false)
        #expect(!plain.snapshotSections().contains { $0.tag == KVSnapshotSection.activeActiveTag })
        var tracked = Self.cluster("a")
        Self.run(&tracked, .set("k", bytes("1")))
        Self.run(&tracked, .delete("k"))
        #expect(tracked.activeActiveMetadataCount == 1, "a deleted key leaves a tombstone")
    }

    // MARK: Merge rules

    @Test func counters_addUp_andASetResetsThem() {
        var a = Self.cluster("a"), b = Self.cluster("b")
        Self.run(&a, .increment("n", by: 5))
        Self.run(&b, .increment("n", by: 7))
        Self.run(&b, .increment("n", by: -2))
        #expect(Self.exchange(a, into: &b, keys: ["n"], last: 1).error == nil)
        #expect(Self.exchange(b, into: &a, keys: ["n"], last: 1).error == nil)
        #expect(a.value(for: "n") == bytes("10") && b.value(for: "n") == bytes("10"))
        // A later SET wins over the counter, and increments concurrent with it are dropped.
        Self.run(&a, .set("n", bytes("100")), time: 2_000)
        Self.run(&b, .increment("n", by: 1), time: 1_500)
        _ = Self.exchange(a, into: &b, keys: ["n"], last: 2, time: 2_100)
        _ = Self.exchange(b, into: &a, keys: ["n"], last: 2, time: 2_100)
        #expect(a.value(for: "n") == bytes("100") && b.value(for: "n") == bytes("100"))
        Self.run(&b, .increment("n", by: 1), time: 2_200)
        _ = Self.exchange(b, into: &a, keys: ["n"], last: 3, time: 2_300)
        #expect(a.value(for: "n") == bytes("101"))
    }

    @Test func strings_lastWriterWins_onTheHybridClock() {
        var a = Self.cluster("a"), b = Self.cluster("b")
        Self.run(&a, .set("k", bytes("old")), time: 1_000)
        Self.run(&b, .set("k", bytes("new")), time: 1_001)
        _ = Self.exchange(a, into: &b, keys: ["k"], last: 1, time: 1_002)
        _ = Self.exchange(b, into: &a, keys: ["k"], last: 1, time: 1_002)
        #expect(a.value(for: "k") == bytes("new") && b.value(for: "k") == bytes("new"))
        // `a` saw 1001; its next write, though its leader clock says 500, is later.
        Self.run(&a, .set("k", bytes("after")), time: 500)
        _ = Self.exchange(a, into: &b, keys: ["k"], last: 3, time: 1_003)
        #expect(b.value(for: "k") == bytes("after"))
    }

    @Test func sets_addWins_andDeleteIsAnObservedRemove() {
        var a = Self.cluster("a"), b = Self.cluster("b")
        Self.run(&a, .collection("s", .setAdd([bytes("x"), bytes("y")])))
        _ = Self.exchange(a, into: &b, keys: ["s"], last: 1)
        Self.run(&a, .delete("s"))                                  // removes the x and y it saw
        Self.run(&b, .collection("s", .setAdd([bytes("x"), bytes("z")])))  // concurrent re-add of x, and z
        _ = Self.exchange(a, into: &b, keys: ["s"], last: 2)
        _ = Self.exchange(b, into: &a, keys: ["s"], last: 2)
        let members = Self.run(&a, .collection("s", .setMembers)).elements
        #expect(members == [bytes("x"), bytes("z")])
        #expect(Self.run(&b, .collection("s", .setMembers)).elements == members)
    }

    @Test func aTypeConflict_convergesToTheLaterWrite() {
        var a = Self.cluster("a"), b = Self.cluster("b")
        Self.run(&a, .set("k", bytes("text")), time: 1_000)
        Self.run(&b, .collection("k", .hashSet([FieldValue(bytes("f"), bytes("v"))])), time: 1_001)
        _ = Self.exchange(a, into: &b, keys: ["k"], last: 1, time: 1_002)
        _ = Self.exchange(b, into: &a, keys: ["k"], last: 1, time: 1_002)
        for machine in [a, b] {
            #expect(machine.type(of: "k") == .hash)
            #expect(machine.value(for: "k") == nil)
        }
        #expect(a.activeActiveState(of: "k") == b.activeActiveState(of: "k"))
        // Sequential Redis rules hold on the view: a string command is WRONGTYPE now.
        #expect(Self.run(&a, .append("k", bytes("x")), time: 1_003).error == .wrongType)
    }

    @Test func joinLaws_holdForStatesOfRandomHistories() {
        var group = [Self.cluster("a"), Self.cluster("b"), Self.cluster("c")]
        var script = CommandScript(seed: 99)
        var samples: [ActiveActiveKeyState] = []
        for step in 0 ..< 300 {
            let c = Int(script.next() % 3)
            let command = Self.randomCommand(&script)
            Self.run(&group[c], command, time: 1_000 + UInt64(step))
            if step % 10 == 9 {
                let target = (c + 1) % 3
                _ = Self.exchange(group[c], into: &group[target], keys: ["a", "b", "c", "d"], last: UInt64(step),
                                  time: 1_000 + UInt64(step))
            }
            if step % 7 == 0 { samples.append(group[Int(script.next() % 3)].activeActiveState(of: "a")) }
        }
        #expect(samples.count > 10)
        func join(_ x: ActiveActiveKeyState, _ y: ActiveActiveKeyState) -> ActiveActiveKeyState {
            var merged = x
            merged.merge(y)
            return merged
        }
        for (i, x) in samples.enumerated() {
            let y = samples[(i * 7 + 3) % samples.count], z = samples[(i * 11 + 5) % samples.count]
            #expect(join(x, x) == x)
            #expect(join(x, y) == join(y, x))
            #expect(join(join(x, y), z) == join(x, join(y, z)))
        }
    }

    // MARK: Refusals

    @Test func aBatchTooFarAhead_isRefusedWhole_andTakenOnceTheClockCatchesUp() {
        var a = Self.cluster("a"), b = Self.cluster("b", skew: 5_000)
        Self.run(&a, .set("k", bytes("future")), time: 100_000)
        Self.run(&a, .set("j", bytes("fine")), time: 100_000)
        let refused = Self.exchange(a, into: &b, keys: ["j", "k"], last: 2, time: 90_000)
        #expect(refused.error == .clockSkew(source: "a", aheadMillis: 10_000, limitMillis: 5_000))
        #expect(b.value(for: "j") == nil && b.activeActiveCursors.isEmpty)
        #expect(Self.exchange(a, into: &b, keys: ["j", "k"], last: 2, time: 95_000).error == nil)
        #expect(b.value(for: "k") == bytes("future") && b.value(for: "j") == bytes("fine"))
    }

    @Test func batches_followTheCursor_andNeedActiveActive() {
        var a = Self.cluster("a"), b = Self.cluster("b")
        Self.run(&a, .set("k", bytes("1")))
        var plain = StateMachine(replica: "p")
        #expect(Self.exchange(a, into: &plain, keys: ["k"], last: 1).error == .activeActiveDisabled)
        let gap = ActiveActiveBatch(source: "a", afterIndex: 5, lastIndex: 6, sourceCommit: 6, sourceTime: 0, states: [])
        #expect(Self.run(&b, .activeActiveBatch(gap)).error == .streamGap(source: "a", cursor: 0, afterIndex: 5))
        #expect(Self.exchange(a, into: &b, keys: ["k"], last: 2).keyCount == 1)
        #expect(Self.exchange(a, into: &b, keys: ["k"], last: 2).keyCount == 0, "at or below the cursor: skipped")
        #expect(b.activeActiveCursors["a"]?.lastIndex == 2)
        let own = ActiveActiveBatch(source: "b", afterIndex: 0, lastIndex: 1, sourceCommit: 1, sourceTime: 0, states: [])
        #expect(Self.run(&b, .activeActiveBatch(own)).error != nil)
        // The shipper covers only what this state machine applied, and skips merged batches.
        let entries = [LogEntry(index: 1, term: 1, data: Command.set("k", []).encoded()),
                       LogEntry(index: 2, term: 1, data: Command.activeActiveBatch(gap).encoded()),
                       LogEntry(index: 9, term: 1, data: Command.set("late", []).encoded())]
        let shipped = a.activeActiveBatch(source: "a", after: 0, entries: entries, sourceCommit: 9, sourceTime: 0)
        #expect(shipped.lastIndex == 2 && shipped.states.map(\.key) == ["k"] && shipped.sourceCommit == 9)
    }

    // MARK: Codecs and snapshots

    @Test func commands_roundTrip_andMalformedOnesAreRefused() throws {
        var a = Self.cluster("a")
        Self.run(&a, .increment("n", by: -3))
        Self.run(&a, .collection("s", .setAdd([bytes("m")])))
        Self.run(&a, .collection("h", .hashSet([FieldValue(bytes("f"), bytes("v"))])))
        Self.run(&a, .set("t", bytes("x")))
        Self.run(&a, .delete("t"))
        let batch = ActiveActiveBatch(source: "a", afterIndex: 1, lastIndex: 6, sourceCommit: 7, sourceTime: 42,
                                      states: a.activeActiveStates(for: ["n", "s", "h", "t"]))
        #expect(batch.states.count == 4)
        for command in [Command.activeActiveBatch(batch), .setActiveActive(ActiveActiveSettings(enabled: true, maxClockSkewMillis: 9))] {
            let encoded = command.encoded()
            #expect(encoded.count == command.encodedSize)
            #expect(try Command(decoding: encoded) == command)
            // Every truncation is refused.
            for cut in 0 ..< encoded.count { #expect(throws: KVError.self) { try Command(decoding: Array(encoded[..<cut])) } }
        }
        // Hand-made bad inputs: an unknown parts bit, unsorted keys, a deleted string with counters.
        var header: [UInt8] = [4, 71]
        header.appendLengthPrefixed(bytes("a"))
        for value in [UInt64(0), 1, 1, 0] { header.appendVarint(value) }
        var unknownPart = header + [1]
        unknownPart.appendKey("k")
        unknownPart.append(8)
        #expect(throws: KVError.self) { try Command(decoding: unknownPart) }
        var unsorted = header + [2]
        unsorted.appendKeyState(ActiveActiveKeyState(key: "z", string: ActiveActiveString(stamp: .counterBase, value: [])))
        unsorted.appendKeyState(ActiveActiveKeyState(key: "a", string: ActiveActiveString(stamp: .counterBase, value: [])))
        #expect(throws: KVError.self) { try Command(decoding: unsorted) }
        var deadCounter = header + [1]
        deadCounter.appendKey("k")
        deadCounter.append(1)
        deadCounter.appendStamp(.counterBase)
        deadCounter.append(0)
        deadCounter.appendVarint(1)
        deadCounter.appendLengthPrefixed(bytes("a"))
        deadCounter.appendVarint(1)
        deadCounter.appendVarint(0)
        #expect(throws: KVError.self) { try Command(decoding: deadCounter) }
    }

    @Test func snapshots_carryTheMetadata_andRestoreTheSameState() throws {
        var a = Self.cluster("a"), b = Self.cluster("b")
        Self.run(&a, .increment("n", by: 4))
        Self.run(&b, .increment("n", by: 1))
        Self.run(&b, .collection("s", .setAdd([bytes("m")])))
        Self.run(&b, .delete("s"))
        _ = Self.exchange(b, into: &a, keys: ["n", "s"], last: 4)
        let data = a.snapshotData()
        var restored = StateMachine(replica: "a")
        try restored.restore(from: Snapshot(data: data))
        #expect(restored.digest() == a.digest())
        for key: Key in ["n", "s"] { #expect(restored.activeActiveState(of: key) == a.activeActiveState(of: key)) }
        #expect(restored.activeActiveCursors == a.activeActiveCursors && restored.activeActiveSettings == a.activeActiveSettings)
        #expect(restored.value(for: "n") == bytes("5"))
        // A damaged section is refused, and the target is unchanged.
        let section = a.activeActive.snapshotSection { a.value(for: $0) }
        var bad = section
        bad[0] = 7  // the enabled byte
        #expect(throws: KVError.self) { try ActiveActiveState(section: bad) }
        #expect(throws: KVError.self) { try ActiveActiveState(section: section + [0]) }
    }
}

extension ActiveActiveCommandTests {
    /// Strings written before active-active was enabled have one stamp (`counterBase`)
    /// in every cluster: the join still picks the same value everywhere.
    @Test func valuesFromBeforeEnabling_joinTheSameWayEverywhere() {
        var a = StateMachine(replica: "a"), b = StateMachine(replica: "b")
        Self.run(&a, .increment("n", by: 5))
        Self.run(&b, .increment("n", by: 7))
        Self.run(&a, .setActiveActive(ActiveActiveSettings(enabled: true)))
        Self.run(&b, .setActiveActive(ActiveActiveSettings(enabled: true)))
        Self.run(&a, .increment("n", by: 1))
        _ = Self.exchange(a, into: &b, keys: ["n"], last: 3)
        _ = Self.exchange(b, into: &a, keys: ["n"], last: 3)
        #expect(a.value(for: "n") == b.value(for: "n"))
        #expect(a.activeActiveState(of: "n") == b.activeActiveState(of: "n"))
    }

    /// A decoded stamp reuses the previous stamp's replica when the bytes match: stamps
    /// of other replicas in between are read as they are, and bytes of the cached
    /// replica's length that are not valid UTF-8 are still refused.
    @Test func stampReplicas_readBackExactly_andBadOnesAreRefused() throws {
        func state(_ key: String, _ replica: String) -> ActiveActiveKeyState {
            ActiveActiveKeyState(key: Key(Array(key.utf8)), string: ActiveActiveString(
                stamp: HLCTimestamp(physical: 5, logical: 1, replica: ReplicaID(replica)), value: bytes("v")))
        }
        let batch = ActiveActiveBatch(source: "b", afterIndex: 0, lastIndex: 4, sourceCommit: 4, sourceTime: 1,
                                      states: [state("k1", "ab"), state("k2", "ab"), state("k3", "cd"), state("k4", "ab"),
                                               state("k5", "")])
        let body = batch.encodedBody()
        #expect(try ActiveActiveBatch(decodingBody: body) == batch)
        // The command a receiver proposes from a frame's body is the batch's command.
        #expect(ActiveActiveBatch.encodedCommand(body: body) == Command.activeActiveBatch(batch).encoded())
        // The fourth state's replica "ab" made two bytes that are not UTF-8.
        let replica = Array("ab".utf8)
        var positions: [Int] = []
        for start in 0 ..< body.count - 2 where body[start] == 2 && Array(body[start + 1 ... start + 2]) == replica {
            positions.append(start + 1)
        }
        #expect(positions.count == 3)
        var bad = body
        if let last = positions.last { bad[last] = 0xC3; bad[last + 1] = 0x28 }
        #expect(throws: KVError.self) { try ActiveActiveBatch(decodingBody: bad) }
        // A key twice is refused (the encoder sorts; the reader wants strictly ascending keys).
        for states in [[state("k1", "ab"), state("k1", "cd")]] {
            let unordered = ActiveActiveBatch(source: "b", afterIndex: 0, lastIndex: 1, sourceCommit: 1, sourceTime: 1,
                                              states: states)
            #expect(throws: KVError.self) { try ActiveActiveBatch(decodingBody: unordered.encodedBody()) }
        }
    }
}
