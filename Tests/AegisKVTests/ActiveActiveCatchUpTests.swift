@testable import AegisKV
import AegisCRDT
import AegisRaft
import Testing

/// Active-active catch-up from a peer's whole state (command 76, snapshot section 6).
@Suite("Active-active catch-up")
struct ActiveActiveCatchUpTests {
    typealias T = ActiveActiveCommandTests

    /// A source with strings, counters, a set, a hash and a tombstone over `count` keys.
    static func source(keys count: Int) -> StateMachine {
        var a = T.cluster("a")
        for k in 0 ..< count {
            switch k % 5 {
            case 0: T.run(&a, .set(Key("k\(k)"), bytes("v\(k)")))
            case 1: T.run(&a, .increment(Key("k\(k)"), by: Int64(k)))
            case 2: T.run(&a, .collection(Key("k\(k)"), .setAdd([bytes("m\(k)")])))
            case 3: T.run(&a, .collection(Key("k\(k)"), .hashSet([FieldValue(bytes("f"), bytes("\(k)"))])))
            default:
                T.run(&a, .set(Key("k\(k)"), bytes("gone")))
                T.run(&a, .delete(Key("k\(k)")))
            }
        }
        return a
    }

    /// Pages `source`'s state into `target` through command 76 until complete; the pages' sizes.
    @discardableResult
    static func catchUp(_ source: StateMachine, into target: inout StateMachine, maxStates: Int,
                        maxBytes: Int = 1 << 20) -> [Int] {
        var sizes: [Int] = []
        var after: Key?
        while true {
            let page = source.activeActiveCatchUpPage(source: "a", after: after, maxStates: maxStates, maxBytes: maxBytes,
                                                      sourceCommit: source.appliedIndex, sourceTime: 1_000)
            let result = T.run(&target, .activeActiveCatchUp(page))
            #expect(result.error == nil, "\(String(describing: result.error))")
            sizes.append(page.batch.states.count)
            if page.complete { return sizes }
            after = page.batch.states.last?.key
            if sizes.count > 10_000 { return sizes }  // a page that makes no progress: the expectations above fail
        }
    }

    @Test func pagedCatchUp_convergesOnEveryKey_andSetsTheCursor() {
        let a = Self.source(keys: 53)
        var b = T.cluster("b")
        T.run(&b, .set("k0", bytes("local")))  // a concurrent write the join decides
        let sizes = Self.catchUp(a, into: &b, maxStates: 10)
        #expect(sizes == [10, 10, 10, 10, 10, 3])
        for k in 1 ..< 53 {
            let key = Key("k\(k)")
            #expect(T.content(b.activeActiveState(of: key).view) == T.content(a.activeActiveState(of: key).view), "k\(k)")
        }
        // k0 was written on both: the join keeps one of the two values, as it would on a.
        #expect([bytes("v0"), bytes("local")].contains(b.value(for: "k0") ?? []))
        #expect(b.activeActiveCursors["a"]?.lastIndex == a.appliedIndex)
        #expect(b.activeActiveCatchUps.isEmpty)
        // The tombstones came too: deleted keys stay deleted on b.
        #expect(b.value(for: "k4") == nil && b.activeActiveState(of: "k4").string?.isLive == false)
        // Then the stream resumes after the snapshot index: a batch after it is taken.
        let batch = ActiveActiveBatch(source: "a", afterIndex: a.appliedIndex, lastIndex: a.appliedIndex + 1,
                                      sourceCommit: a.appliedIndex + 1, sourceTime: 1_000, states: [])
        #expect(T.run(&b, .activeActiveBatch(batch)).error == nil)
    }

    @Test func pagesAreBoundedByBytes_andNeverEmptyWhileKeysRemain() {
        let a = Self.source(keys: 20)
        var b = T.cluster("b")
        let sizes = Self.catchUp(a, into: &b, maxStates: 1_000, maxBytes: 1)
        #expect(sizes == Array(repeating: 1, count: 20))
    }

    @Test func aPageThatDoesNotContinueTheCatchUp_isRefusedAndChangesNothing() {
        let a = Self.source(keys: 30)
        var b = T.cluster("b")
        let first = a.activeActiveCatchUpPage(source: "a", after: nil, maxStates: 10, maxBytes: 1 << 20,
                                              sourceCommit: a.appliedIndex, sourceTime: 1_000)
        #expect(T.run(&b, .activeActiveCatchUp(first)).error == nil)
        #expect(b.activeActiveCatchUps["a"] == ActiveActiveCatchUpProgress(snapshotIndex: a.appliedIndex,
                                                                           lastKey: first.batch.states.last?.key))
        // Skipping a page: refused, nothing merged, the progress kept.
        let third = a.activeActiveCatchUpPage(source: "a", after: Key("k3"), maxStates: 10, maxBytes: 1 << 20,
                                              sourceCommit: a.appliedIndex, sourceTime: 1_000)
        let keys = (0 ..< 30).map { Key("k\($0)") }
        let before = b.activeActiveStates(for: keys)
        #expect(T.run(&b, .activeActiveCatchUp(third)).error != nil)
        #expect(b.activeActiveStates(for: keys) == before && b.activeActiveCatchUps["a"]?.lastKey == first.batch.states.last?.key)
        // Another snapshot index with an after key: refused too.
        var moved = a.activeActiveCatchUpPage(source: "a", after: first.batch.states.last?.key, maxStates: 10,
                                              maxBytes: 1 << 20, sourceCommit: a.appliedIndex, sourceTime: 1_000)
        moved.batch.lastIndex += 5
        moved.batch.sourceCommit += 5
        #expect(T.run(&b, .activeActiveCatchUp(moved)).error != nil)
        // A page from this cluster itself, or on a plain cluster: refused.
        var own = first
        own.batch.source = "b"
        #expect(T.run(&b, .activeActiveCatchUp(own)).error != nil)
        var plain = StateMachine(replica: "p")
        #expect(T.run(&plain, .activeActiveCatchUp(first)).error == .activeActiveDisabled)
        // A restart from the first key is always taken (a new catch-up).
        #expect(T.run(&b, .activeActiveCatchUp(first)).error == nil)
    }

    @Test func commandAndSection_roundTrip_andMalformedOnesAreRefused() throws {
        let a = Self.source(keys: 12)
        var b = T.cluster("b")
        let page = a.activeActiveCatchUpPage(source: "a", after: Key("k1"), maxStates: 4, maxBytes: 1 << 20,
                                             sourceCommit: a.appliedIndex, sourceTime: 7)
        #expect(page.afterKey == Key("k1") && !page.complete && page.batch.states.count == 4)
        let command = Command.activeActiveCatchUp(page)
        let encoded = command.encoded()
        #expect(encoded.count == command.encodedSize)
        #expect(try Command(decoding: encoded) == command)
        for cut in 0 ..< encoded.count { #expect(throws: KVError.self) { try Command(decoding: Array(encoded[..<cut])) } }
        var badFlag = encoded
        badFlag[2] = 2  // the after-key flag
        #expect(throws: KVError.self) { try Command(decoding: badFlag) }
        // A catch-up in progress is in the snapshot (section 6) and restored.
        let first = a.activeActiveCatchUpPage(source: "a", after: nil, maxStates: 4, maxBytes: 1 << 20,
                                              sourceCommit: a.appliedIndex, sourceTime: 7)
        #expect(T.run(&b, .activeActiveCatchUp(first)).error == nil)
        var restored = StateMachine(replica: "b")
        try restored.restore(from: Snapshot(data: b.snapshotData()))
        #expect(restored.activeActiveCatchUps == b.activeActiveCatchUps && !restored.activeActiveCatchUps.isEmpty)
        let section = try #require(b.activeActiveCatchUpSection())
        #expect(try StateMachine.activeActiveCatchUps(section: section) == b.activeActiveCatchUps)
        #expect(throws: KVError.self) { try StateMachine.activeActiveCatchUps(section: section + [0]) }
        var unknownFlag = section
        unknownFlag[unknownFlag.count - 1 - (first.batch.states.last.map { $0.key.count + 1 } ?? 0)] = 9
        #expect(throws: KVError.self) { try StateMachine.activeActiveCatchUps(section: unknownFlag) }
        // The next page continues on the restored node exactly as on the original.
        let next = a.activeActiveCatchUpPage(source: "a", after: first.batch.states.last?.key, maxStates: 4,
                                             maxBytes: 1 << 20, sourceCommit: a.appliedIndex, sourceTime: 7)
        #expect(T.run(&restored, .activeActiveCatchUp(next)).error == nil)
        #expect(T.run(&b, .activeActiveCatchUp(next)).error == nil)
        #expect(restored.digest() == b.digest() && restored.activeActiveCatchUps == b.activeActiveCatchUps)
    }
}

extension ActiveActiveCatchUpTests {
    /// The shipper reads a command's type from its first two bytes to skip merged batches
    /// without decoding them (`Command.peekType`).
    @Test func peekType_readsTheTypeOfEveryCommand_andNothingElse() {
        for command in CommandTests.samples {
            let encoded = command.encoded()
            #expect(Command.peekType(encoded) == command.type, "\(command.type)")
            #expect(Command.peekType(encoded).map(\.isReplicationControl) == command.isReplicationControl)
        }
        #expect(Command.peekType([]) == nil && Command.peekType([4]) == nil)
        #expect(Command.peekType([9, 1]) == nil)  // an unknown version
        #expect(Command.peekType([1, 71]) == nil)  // a version-4 type in version 1
        #expect(Command.peekType([4, 250]) == nil)  // an unknown type
        // A source skips a merged batch: it is not shipped back.
        var a = T.cluster("a")
        T.run(&a, .set("mine", bytes("1")))
        let merged = Command.activeActiveBatch(ActiveActiveBatch(
            source: "b", afterIndex: 0, lastIndex: 5, sourceCommit: 5, sourceTime: 1_000,
            states: [ActiveActiveKeyState(key: "theirs", string: ActiveActiveString(stamp: .counterBase, value: bytes("2")))]))
        T.run(&a, merged)
        let entries = [LogEntry(index: 2, term: 1, data: Command.set("mine", bytes("1")).encoded()),
                       LogEntry(index: 3, term: 1, data: merged.encoded())]
        let batch = a.activeActiveBatch(source: "a", after: 1, entries: entries, sourceCommit: 3, sourceTime: 1_000)
        #expect(batch.states.map(\.key) == ["mine"] && batch.lastIndex == 3)
    }
}
