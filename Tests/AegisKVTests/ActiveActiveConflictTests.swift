@testable import AegisKV
import AegisCRDT
import AegisRaft
import Testing

// Conflict resolution per key space: one test per strategy (the conflict resolved as
// documented and its audit entry), the manual queue, the audit's retention, the codecs,
// and random interleavings across 2 and 3 clusters converging under every strategy.

/// The strategy table the tests use.
let aaConflictRules: [ActiveActiveStrategyRule] = [
    ActiveActiveStrategyRule(prefix: Array("l:".utf8), strategy: .lww),
    ActiveActiveStrategyRule(prefix: Array("p:".utf8), strategy: .priority(["c", "b", "a"])),
    ActiveActiveStrategyRule(prefix: Array("v:".utf8), strategy: .vectorClock),
    ActiveActiveStrategyRule(prefix: Array("x:".utf8), strategy: .custom("concat")),
    ActiveActiveStrategyRule(prefix: Array("m:".utf8), strategy: .manual),
]

/// The merge function of the tests' `custom` prefix: the values joined by `|`, in the
/// resolver's (ascending stamp) order; a deleted version counts as empty.
let aaConcat = ActiveActiveMergeFunction(name: "concat") { accumulated, next in
    (accumulated.value ?? []) + Array("|".utf8) + (next.value ?? [])
}

@Suite("Active-active conflict resolution")
struct ActiveActiveConflictTests {
    typealias C = ActiveActiveCommandTests

    /// An active-active cluster with the tests' strategy table (and merge function).
    static func cluster(_ id: String, settings: ActiveActiveConflictSettings = ActiveActiveConflictSettings(rules: aaConflictRules))
        -> StateMachine {
        var machine = C.cluster(id)
        machine.register(aaConcat)
        let result = C.run(&machine, .activeActiveConflict(.setStrategies(settings)))
        #expect(result.error == nil, "\(String(describing: result.error))")
        return machine
    }

    /// Ships the states of `keys` both ways between `a` and `b`, at `time`.
    static func exchange(_ a: inout StateMachine, _ b: inout StateMachine, keys: [Key], time: UInt64 = 5_000) {
        let fromA = a.activeActiveStates(for: keys), fromB = b.activeActiveStates(for: keys)
        for (states, source) in [(fromA, a.replica.rawValue), (fromB, b.replica.rawValue)] {
            // The source's applied index as the batch's end: past the link's cursor each time.
            let last = source == a.replica.rawValue ? a.appliedIndex : b.appliedIndex
            let batch = ActiveActiveBatch(source: source, afterIndex: 0, lastIndex: last, sourceCommit: last,
                                          sourceTime: time, states: states)
            let result = source == a.replica.rawValue ? C.run(&b, .activeActiveBatch(batch), time: time)
                : C.run(&a, .activeActiveBatch(batch), time: time)
            #expect(result.error == nil, "\(String(describing: result.error))")
        }
    }

    // MARK: One test per strategy

    @Test func priority_aConcurrentWriteOfAHigherPriorityClusterWins_whateverTheClock() {
        var a = Self.cluster("a"), b = Self.cluster("b")
        C.run(&b, .set("p:k", bytes("from b")), time: 1_000)
        C.run(&a, .set("p:k", bytes("from a")), time: 3_000)  // later clock, lower priority (c, b, a)
        Self.exchange(&a, &b, keys: ["p:k"])
        for machine in [a, b] {
            #expect(machine.value(for: "p:k") == bytes("from b"))
            let entry = machine.activeActiveAudit(key: "p:k").first
            #expect(entry?.rule == "priority:c,b,a")
            #expect(entry?.winner == bytes("from b"))
            #expect(entry?.versions.map(\.origin) == ["a", "b"])
            #expect(entry?.versions.map(\.value) == [bytes("from a"), bytes("from b")])
        }
        // A write that saw both is not concurrent with either: it wins on any cluster.
        C.run(&a, .set("p:k", bytes("after both")), time: 6_000)
        Self.exchange(&a, &b, keys: ["p:k"], time: 7_000)
        #expect(a.value(for: "p:k") == bytes("after both") && b.value(for: "p:k") == bytes("after both"))
        #expect(a.activeActiveAudit(key: "p:k").first?.rule == "overwrite")
        #expect(b.activeActiveSiblings(of: "p:k")?.versions.count == 1)
    }

    @Test func priority_theWinnersCountersSurviveAConcurrentWriteWithALaterStamp() {
        var a = Self.cluster("a"), b = Self.cluster("b")
        C.run(&b, .set("p:n", bytes("10")), time: 1_000)
        C.run(&b, .increment("p:n", by: 5), time: 1_100)
        C.run(&a, .set("p:n", bytes("1")), time: 3_000)  // later stamp, lower priority
        Self.exchange(&a, &b, keys: ["p:n"])
        #expect(a.value(for: "p:n") == bytes("15") && b.value(for: "p:n") == bytes("15"))
        #expect(a.activeActiveState(of: "p:n") == b.activeActiveState(of: "p:n"))
    }

    @Test func lww_aNamedPrefixPicksTheLatestStamp_andAuditsIt() {
        var a = Self.cluster("a"), b = Self.cluster("b")
        C.run(&b, .set("l:k", bytes("old")), time: 1_000)
        C.run(&a, .set("l:k", bytes("new")), time: 2_000)
        C.run(&a, .set("plain", bytes("x")), time: 2_000)
        Self.exchange(&a, &b, keys: ["l:k", "plain"])
        #expect(a.value(for: "l:k") == bytes("new") && b.value(for: "l:k") == bytes("new"))
        #expect(b.activeActiveAudit(key: "l:k").first.map { ($0.rule, $0.winner) } ?? ("", nil) == ("lww", bytes("new")))
        // A key under no prefix keeps no causal context and is not audited.
        #expect(b.activeActiveSiblings(of: "plain") == nil && b.activeActiveAudit(key: "plain").isEmpty)
    }

    @Test func custom_theRegisteredFunctionFoldsTheVersions_inStampOrder() {
        var a = Self.cluster("a"), b = Self.cluster("b")
        C.run(&a, .set("x:k", bytes("one")), time: 1_000)
        C.run(&b, .set("x:k", bytes("two")), time: 2_000)
        Self.exchange(&a, &b, keys: ["x:k"])
        #expect(a.value(for: "x:k") == bytes("one|two") && b.value(for: "x:k") == bytes("one|two"))
        #expect(a.activeActiveAudit(key: "x:k").first?.rule == "custom:concat")
        // A name no node registered is refused when the setting is applied.
        var c = C.cluster("c")
        let refused = C.run(&c, .activeActiveConflict(.setStrategies(ActiveActiveConflictSettings(rules: aaConflictRules))))
        guard case .activeActiveConflict(let why)? = refused.error else {
            Issue.record("expected a refusal, got \(String(describing: refused.error))")
            return
        }
        #expect(why.contains("concat"))
        #expect(c.activeActiveConflictSettings == ActiveActiveConflictSettings())
    }

    @Test func vectorClock_keepsSiblings_andAWriteWithTheirContextResolvesThem() throws {
        var a = Self.cluster("a"), b = Self.cluster("b")
        C.run(&a, .set("v:k", bytes("A")), time: 1_000)
        C.run(&b, .set("v:k", bytes("B")), time: 2_000)
        Self.exchange(&a, &b, keys: ["v:k"])
        let siblings = try #require(a.activeActiveSiblings(of: "v:k"))
        #expect(siblings.versions.map(\.value) == [bytes("B"), bytes("A")])  // latest first
        #expect(a.value(for: "v:k") == bytes("B"))
        #expect(b.activeActiveAudit(key: "v:k").first?.rule == "siblings")
        // A write carrying the token replaces both; the peer takes it as an overwrite.
        let token = try ActiveActiveContextToken(parsing: siblings.token.description)
        let written = C.run(&a, .activeActiveConflict(.setWithContext(key: "v:k", value: bytes("AB"), token: token)), time: 6_000)
        #expect(written.error == nil)
        Self.exchange(&a, &b, keys: ["v:k"], time: 7_000)
        #expect(a.activeActiveSiblings(of: "v:k")?.versions.map(\.value) == [bytes("AB")])
        #expect(b.value(for: "v:k") == bytes("AB") && b.activeActiveSiblings(of: "v:k")?.versions.count == 1)
        #expect(a.activeActiveAudit(key: "v:k").first?.rule == "context-write")
        for bad in ["zz", "abc", "", siblings.token.description.uppercased(), siblings.token.description + "00"] {
            #expect(throws: KVError.self) { try ActiveActiveContextToken(parsing: bad) }
        }
        #expect(hexBytes("00ff7a") == [0, 255, 0x7a] && hexBytes("0g") == nil)
    }

    @Test func vectorClock_aStaleTokenKeepsWhatItDidNotSee_andTheCapHidesTheOldest() throws {
        let settings = ActiveActiveConflictSettings(rules: aaConflictRules, maxSiblings: 2)
        var a = Self.cluster("a", settings: settings), b = Self.cluster("b", settings: settings)
        var c = Self.cluster("c", settings: settings)
        C.run(&a, .set("v:k", bytes("A")), time: 1_000)
        C.run(&b, .set("v:k", bytes("B")), time: 2_000)
        Self.exchange(&a, &b, keys: ["v:k"])
        let token = try #require(a.activeActiveSiblings(of: "v:k")).token
        C.run(&c, .set("v:k", bytes("C")), time: 3_000)
        Self.exchange(&a, &c, keys: ["v:k"], time: 5_500)
        let three = try #require(a.activeActiveSiblings(of: "v:k"))
        #expect(three.versions.map(\.value) == [bytes("C"), bytes("B")] && three.hidden == 1)
        #expect(a.activeActiveAudit(key: "v:k").first?.rule == "sibling-cap")
        C.run(&a, .activeActiveConflict(.setWithContext(key: "v:k", value: bytes("AB"), token: token)), time: 6_000)
        let left = try #require(a.activeActiveSiblings(of: "v:k"))
        #expect(Set(left.versions.map(\.value)) == [bytes("AB"), bytes("C")])
    }

    @Test func manual_queuesTheConflict_andItsResolutionConverges() {
        var a = Self.cluster("a"), b = Self.cluster("b")
        C.run(&a, .set("m:k", bytes("A")), time: 1_000)
        C.run(&b, .set("m:k", bytes("B")), time: 2_000)
        Self.exchange(&a, &b, keys: ["m:k"])
        #expect(a.value(for: "m:k") == bytes("B") && b.value(for: "m:k") == bytes("B"))  // provisional: latest stamp
        let open = a.activeActiveOpenConflicts
        #expect(open.count == 1 && open.first?.versions.map(\.value) == [bytes("A"), bytes("B")])
        #expect(b.activeActiveOpenConflicts.map(\.key) == ["m:k"])
        #expect(a.activeActiveAudit(key: "m:k").isEmpty)  // nothing resolved yet
        guard let id = open.first?.id else { return }
        let wrong = C.run(&a, .activeActiveConflict(.resolve(key: "m:k", id: id + 1, choice: .pick(0))), time: 6_000)
        #expect(wrong.error != nil)
        let outOfRange = C.run(&a, .activeActiveConflict(.resolve(key: "m:k", id: id, choice: .pick(2))), time: 6_000)
        #expect(outOfRange.error != nil)
        let resolved = C.run(&a, .activeActiveConflict(.resolve(key: "m:k", id: id, choice: .pick(0))), time: 6_000)
        #expect(resolved.error == nil)
        #expect(a.activeActiveOpenConflicts.isEmpty && a.value(for: "m:k") == bytes("A"))
        let entry = a.activeActiveAudit(key: "m:k").first
        #expect(entry?.rule == "manual" && entry?.winner == bytes("A") && entry?.detail == "conflict \(id)")
        Self.exchange(&a, &b, keys: ["m:k"], time: 7_000)
        #expect(b.activeActiveOpenConflicts.isEmpty && b.value(for: "m:k") == bytes("A"))
        #expect(b.activeActiveAudit(key: "m:k").first?.rule == "overwrite")
    }

    @Test func manual_theQueueIsBounded_andEvictionIsAudited() {
        let settings = ActiveActiveConflictSettings(rules: aaConflictRules, maxConflicts: 1)
        var a = Self.cluster("a", settings: settings), b = Self.cluster("b", settings: settings)
        for key: Key in ["m:1", "m:2"] {
            C.run(&a, .set(key, bytes("A")), time: 1_000)
            C.run(&b, .set(key, bytes("B")), time: 2_000)
        }
        Self.exchange(&a, &b, keys: ["m:1", "m:2"])
        #expect(a.activeActiveOpenConflicts.map(\.key) == ["m:2"])
        #expect(a.activeActiveAudit(key: "m:1").first?.rule == "queue-full")
        #expect(a.value(for: "m:1") == bytes("B"))
    }

    @Test func audit_isBoundedByCountAndByAge() {
        let settings = ActiveActiveConflictSettings(rules: aaConflictRules, auditMaxEntries: 2, auditMaxAgeMillis: 10_000)
        var a = Self.cluster("a", settings: settings), b = Self.cluster("b", settings: settings)
        let keys: [Key] = ["l:1", "l:2", "l:3"]
        for key in keys {
            C.run(&a, .set(key, bytes("A")), time: 1_000)
            C.run(&b, .set(key, bytes("B")), time: 2_000)
        }
        Self.exchange(&a, &b, keys: keys)
        #expect(a.activeActiveAudit().map(\.key) == ["l:3", "l:2"])
        #expect(a.activeActiveAudit(limit: 1).count == 1)
        C.run(&a, .get("l:1"), time: 20_000)  // the apply clock moves past the age
        #expect(a.activeActiveAudit().isEmpty)
    }

    @Test func everyNodeOfAClusterDecidesTheSame_andSnapshotsCarryIt() throws {
        var a = Self.cluster("a"), b = Self.cluster("b")
        for key: Key in ["p:k", "m:k", "v:k", "x:k", "l:k"] {
            C.run(&a, .set(key, bytes("A")), time: 1_000)
            C.run(&b, .set(key, bytes("B")), time: 2_000)
        }
        Self.exchange(&a, &b, keys: ["p:k", "m:k", "v:k", "x:k", "l:k"])
        var restored = StateMachine(replica: "a")
        try restored.restore(from: Snapshot(data: a.snapshotData()))
        #expect(restored.activeActiveConflicts == a.activeActiveConflicts)
        #expect(restored.activeActiveAudit().count == 4 && restored.activeActiveOpenConflicts.count == 1)  // manual: queued, not audited
        for key: Key in ["p:k", "v:k"] { #expect(restored.activeActiveState(of: key) == a.activeActiveState(of: key)) }
        let body = a.activeActiveConflicts.snapshotSection()
        #expect(throws: KVError.self) { try ActiveActiveConflictState(section: body + [0]) }
        #expect(throws: KVError.self) { try ActiveActiveConflictState(section: Array(body.dropLast())) }
    }

    @Test func commands_roundTrip_andMalformedOnesAreRefused() throws {
        let context: ActiveActiveContext = ["a": HLCTimestamp(physical: 5, logical: 1, replica: "a")]
        let commands: [Command] = [
            .activeActiveConflict(.setStrategies(ActiveActiveConflictSettings(rules: aaConflictRules, maxSiblings: 3))),
            .activeActiveConflict(.resolve(key: "m:k", id: 7, choice: .pick(1))),
            .activeActiveConflict(.resolve(key: "m:k", id: 7, choice: .value(bytes("v")))),
            .activeActiveConflict(.setWithContext(key: "v:k", value: bytes("v"), token: ActiveActiveContextToken(context))),
        ]
        for command in commands {
            let encoded = command.encoded()
            #expect(try Command(decoding: encoded) == command)
            #expect(encoded.count == command.encodedSize)
            #expect(throws: KVError.self) { try Command(decoding: encoded + [0]) }
            #expect(throws: KVError.self) { try Command(decoding: Array(encoded.dropLast())) }
        }
        #expect(Command.peekType(commands[0].encoded())?.isReplicationControl == true)
        #expect(commands[1].isWrite && !commands[1].isReplicationControl && commands[1].keys == ["m:k"])
        // Parsing the settings' text form.
        let rule = try ActiveActiveStrategyRule(parsing: "orders:=priority:eu,us")
        #expect(rule.prefix == Array("orders:".utf8) && rule.strategy == .priority(["eu", "us"]))
        #expect(rule.description == "orders:=priority:eu,us")
        for bad in ["x", "k=nope", "k=priority:", "k=priority:a,a", "k=custom:", "k=lww:extra"] {
            #expect(throws: KVError.self) { try ActiveActiveStrategyRule(parsing: bad) }
        }
        let settings = ActiveActiveConflictSettings(rules: [rule, ActiveActiveStrategyRule(prefix: Array("orders:eu".utf8), strategy: .manual)])
        #expect(settings.strategy(for: "orders:eu:1") == .manual)
        #expect(settings.strategy(for: "orders:us:1") == .priority(["eu", "us"]))
        #expect(settings.strategy(for: "other") == nil)
        // A key state with versions round-trips; one whose version its context misses is refused.
        var machine = Self.cluster("a")
        C.run(&machine, .set("v:k", bytes("A")))
        let state = machine.activeActiveState(of: "v:k")
        #expect(state.string?.versions?.count == 1)
        let batch = ActiveActiveBatch(source: "a", afterIndex: 0, lastIndex: 1, sourceCommit: 1, sourceTime: 1, states: [state])
        #expect(try ActiveActiveBatch(decodingBody: batch.encodedBody()) == batch)
        var broken = state
        broken.string?.context = ["z": HLCTimestamp(physical: 1, logical: 0, replica: "z")]
        let brokenBatch = ActiveActiveBatch(source: "a", afterIndex: 0, lastIndex: 1, sourceCommit: 1, sourceTime: 1,
                                            states: [broken])
        #expect(throws: KVError.self) { try ActiveActiveBatch(decodingBody: brokenBatch.encodedBody()) }
    }
}
