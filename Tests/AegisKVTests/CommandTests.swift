@testable import AegisKV
import AegisCRDT
import PropertyBased
import Testing

@Suite struct CommandTests {
    static let samples: [Command] = [
        .get("a"),
        .set("key", bytes("value")),
        .set(Key([0, 255, 7]), []),
        .delete("gone"),
        .compareAndSwap("k", expected: .value(bytes("old")), new: bytes("new")),
        .compareAndSwap("k", expected: .version(0), new: bytes("first")),
        .compareAndSwap("k", expected: .version(UInt64.max), new: []),
        .increment("counter", by: -5),
        .increment("counter", by: Int64.min),
        .increment("counter", by: Int64.max),
        .custom(name: "append", key: Key(String(repeating: "long-key-", count: 10)), payload: [1, 2, 3]),
        .setMany([KeyValuePair("a", bytes("1")), KeyValuePair(Key(String(repeating: "b", count: 20)), [])], onlyIfNoneExist: false),
        .setMany([KeyValuePair("a", bytes("1"))], onlyIfNoneExist: true),
        .setMany([], onlyIfNoneExist: false),
        .deleteMany(["a", "b", Key(String(repeating: "c", count: 30))]),
        .deleteMany([]),
        .collection("s", .setAdd([bytes("a"), []])),
        .collection("h", .hashIncrement(bytes("f"), by: -3)),
        .getSet("k", bytes("new")),
        .append("k", []),
        .openSession,
        .publish(channel: "news", message: bytes("hello")),
        .session(ClientSessionRequest(session: 3, sequence: 4, acknowledged: 2), .collection("s", .setRemove([bytes("a")]))),
        .expire("k", .after(milliseconds: 10), .ifGreater),
        .persist("k"),
        .timeToLive("k"),
        .setWith("k", bytes("v"), condition: .ifPresent, returnPrevious: false, expiry: .clear),
        .getAndExpire("k", .set(.at(milliseconds: 5))),
        .purgeExpired(["a"]),
        .transaction(watches: [], commands: [.get("k")]),
        .keyspace(.randomKey),
        .rename("a", to: "b", onlyIfAbsent: false),
        .copy("a", to: "b", replace: true),
        .flushAll,
        .streamBatch(StreamBatch(source: "east", epoch: 3, afterIndex: 10, lastIndex: 14, sourceCommit: 20, changes: [
            StreamChange(sourceIndex: 12, origin: "east", timestamp: HLCTimestamp(physical: 1_700_000_000_000, logical: 2, replica: "east"),
                         command: .set("k", bytes("v"))),
            StreamChange(sourceIndex: 14, origin: "east", timestamp: HLCTimestamp(physical: 1_700_000_000_001, replica: "east"),
                         command: .collection("s", .setAdd([bytes("m")]))),
        ])),
        .streamBatch(StreamBatch(source: "e", epoch: 0, afterIndex: 0, lastIndex: 0, sourceCommit: 0, changes: [])),
        .setDRState(DRTransition(epoch: 7, role: .fenced, primary: "127.0.0.1:7001,127.0.0.1:7002", leaseMillis: 2000)),
        .setDRState(DRTransition(epoch: 1, role: .standby, resumeSource: "west", resumeIndex: 99)),
        .setActiveActive(ActiveActiveSettings(enabled: true, maxClockSkewMillis: 30_000)),
        .activeActiveBatch(ActiveActiveBatch(source: "east", afterIndex: 3, lastIndex: 9, sourceCommit: 12, sourceTime: 5, states: [
            ActiveActiveKeyState(key: "a", string: ActiveActiveString(stamp: HLCTimestamp(physical: 9, logical: 2, replica: "east"),
                                                                      value: Array("4".utf8),
                                                                      counters: ["east": CounterContribution(increments: 3)])),
            ActiveActiveKeyState(key: "b", set: ActiveActiveCollection(value: .set(ORSet()), stamp: .counterBase)),
        ])),
        .activeActiveCatchUp(ActiveActiveCatchUpPage(batch: ActiveActiveBatch(
            source: "east", afterIndex: 0, lastIndex: 40, sourceCommit: 41, sourceTime: 5, states: [
                ActiveActiveKeyState(key: "c", hash: ActiveActiveCollection(value: .hash(ORMap()), stamp: .counterBase)),
            ]), afterKey: "b", complete: true)),
        .activeActiveTopology(.set(ActiveActiveTopology(kind: .tree, clusters: ["east": ["127.0.0.1:1"], "west": []],
                                                        links: [ActiveActiveLink("west", "east")]))),
        .activeActiveConflict(.setStrategies(ActiveActiveConflictSettings(
            rules: [ActiveActiveStrategyRule(prefix: Array("m:".utf8), strategy: .manual),
                    ActiveActiveStrategyRule(prefix: Array("p:".utf8), strategy: .priority(["east", "west"]))]))),
        .activeActiveConflict(.resolve(key: "m:k", id: 3, choice: .pick(1))),
        .activeActiveConflict(.setWithContext(key: "v:k", value: Array("v".utf8), token: ActiveActiveContextToken(
            ["east": HLCTimestamp(physical: 9, logical: 2, replica: "east")]))),
        .drSeedChunk(DRSeedChunk(source: "east", epoch: 3, snapshotIndex: 120, total: 5000, offset: 4096, bytes: [9, 8, 7])),
        .drRejoin(DRTransition(epoch: 4, role: .standby, primary: "127.0.0.1:7001", primaryAdmin: "127.0.0.1:8001",
                               leaseMillis: 1000, resumeSource: "west")),
    ]

    @Test func test_encoding_roundTripsEveryCommandType() throws {
        for command in Self.samples {
            let encoded = command.encoded()
            #expect(encoded.count == command.encodedSize)
            #expect(try Command(decoding: encoded) == command)
        }
        #expect(Set(Self.samples.map(\.type)) == Set(CommandType.allCases))
    }

    @Test func test_encoding_setHasTheDocumentedLayout() {
        // version 1, type set (2), key length 3 "key", value length 5 "value"
        #expect(Command.set("key", bytes("value")).encoded() == [1, 2, 3] + bytes("key") + [5] + bytes("value"))
        // zig-zag: -1 is 1, 1 is 2
        #expect(Command.increment("n", by: -1).encoded() == [1, 5, 1, UInt8(ascii: "n"), 1])
        #expect(Command.increment("n", by: 1).encoded() == [1, 5, 1, UInt8(ascii: "n"), 2])
    }

    @Test func test_encoding_versionOneTypesKeepVersionOne_multiKeyTypesUseVersionTwo() throws {
        // Entries written before version 2 existed still decode, and the old types are
        // still written as version 1 (readable by older builds).
        #expect(Command.delete("k").encoded() == [1, 3, 1, UInt8(ascii: "k")])
        #expect(try Command(decoding: [1, 3, 1, UInt8(ascii: "k")]) == .delete("k"))
        // setMany: version 2, type 7, flags, count, then key/value pairs.
        #expect(Command.setMany([KeyValuePair("k", bytes("v"))], onlyIfNoneExist: true).encoded()
                == [2, 7, 1, 1, 1, UInt8(ascii: "k"), 1, UInt8(ascii: "v")])
        #expect(Command.deleteMany(["a", "b"]).encoded() == [2, 8, 2, 1, UInt8(ascii: "a"), 1, UInt8(ascii: "b")])
        // Version 2 also reads the version-1 types.
        #expect(try Command(decoding: [2, 3, 1, UInt8(ascii: "k")]) == .delete("k"))
    }

    @Test func test_decoding_rejectsMalformedBytes() {
        let good = Command.set("key", bytes("value")).encoded()
        let cases: [([UInt8], KVError)] = [
            ([], .malformedCommand("no bytes")),
            ([5, 2], .unsupportedEncodingVersion(5)),
            ([3, 60], .malformedCommand("unknown command type 60 in encoding version 3")),
            ([3, 12, 1, 65], .malformedCommand("unknown command type 12 in encoding version 3")),
            ([4, 39], .malformedCommand("unknown command type 39 in encoding version 4")),
            ([3, 40], .malformedCommand("unknown command type 40 in encoding version 3")),
            ([2, 9, 1, 65, 13], .malformedCommand("unknown command type 9 in encoding version 2")),
            ([3, 9, 1, 65], .malformedCommand("truncated before the collection operation")),
            ([3, 9, 1, 65, 1, 2, 1, 65], .malformedCommand("truncated in the member (0 bytes left)")),
            ([0, 2], .unsupportedEncodingVersion(0)),
            ([1, 7, 0, 0], .malformedCommand("unknown command type 7 in encoding version 1")),
            ([2, 8, 0x80, 0x80, 0x04], .malformedCommand("the delete-many key count 65536 is more than the 0 bytes left can hold")),
            ([2, 7, 2, 0], .malformedCommand("unknown set-many flags 2")),
            ([2, 7, 0, 1, 1, 65], .malformedCommand("truncated in the value (0 bytes left)")),
            ([1], .malformedCommand("missing the command type")),
            ([1, 9, 0], .malformedCommand("unknown command type 9 in encoding version 1")),
            ([1, 0, 0], .malformedCommand("unknown command type 0 in encoding version 1")),
            (Array(good.dropLast()), .malformedCommand("truncated in the value (5 bytes left)")),
            (good + [0], .malformedCommand("1 unexpected bytes after the set command")),
            ([1, 1, 0x80, 0x80], .malformedCommand("truncated in the key (2 bytes left)")),
            ([1, 1] + [UInt8](repeating: 0xFF, count: 10) + [1],
             .malformedCommand("the length of the key is not a valid varint")),
            ([1, 4, 1, 65, 7], .malformedCommand("unknown compare-and-swap expectation tag 7")),
            ([1, 4, 1, 65], .malformedCommand("truncated before the compare-and-swap expectation")),
            ([1, 6, 0, 1, 65, 0], .malformedCommand("the custom command name must be 1 to 255 bytes of UTF-8")),
            ([1, 6, 1, 0xFF, 1, 65, 0], .malformedCommand("the custom command name must be 1 to 255 bytes of UTF-8")),
            ([1, 5, 1, 65], .malformedCommand("truncated in the increment amount")),
        ]
        for (bytes, expected) in cases {
            #expect(throws: expected, "\(bytes)") { try Command(decoding: bytes) }
        }
    }

    @Test func test_decoding_errorsHaveActionableMessages() {
        #expect(KVError.unsupportedEncodingVersion(9).description.contains("this build reads versions 1 to 4"))
        #expect(KVError.unknownCustomCommand(name: "x").description.contains("register it on every replica"))
    }

    @Test func test_encoding_roundTripsRandomCommands() async {
        await propertyCheck(input: Gen.uint64(in: 0 ... UInt64.max)) { seed in
            var script = CommandScript(seed: seed)
            for _ in 0 ..< 20 {
                let command = script.command()
                #expect((try? Command(decoding: command.encoded())) == command)
            }
        }
    }

    @Test func test_decoding_neverAcceptsATruncatedCommand() throws {
        for command in Self.samples {
            let encoded = command.encoded()
            for length in 0 ..< encoded.count {
                #expect(throws: KVError.self) { try Command(decoding: Array(encoded.prefix(length))) }
            }
        }
    }

    @Test func test_key_ordersByUnsignedBytesAcrossInlineAndSpilledKeys() {
        let texts = ["", "a", "a\u{0}", "a\u{0}b", "ab", "b", String(repeating: "a", count: 16),
                     String(repeating: "a", count: 17), String(repeating: "a", count: 16) + "b",
                     String(repeating: "a", count: 30), "\u{7F}", "é"]
        let keys = texts.map { Key($0) }
        let expected = texts.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(keys.sorted().map(\.bytes) == expected)
        for text in texts {
            #expect(Key(text).bytes == Array(text.utf8))
            #expect(Key(text) == Key(Array(text.utf8)))
        }
        #expect(Key(String(repeating: "a", count: 17)) != Key(String(repeating: "a", count: 16) + "b"))
        #expect(Key("user:1").hasPrefix("user:"))
        #expect(!Key("user").hasPrefix("user:"))
        #expect(Key([0xFF, 0x00]).description == "0xff00")
    }
}
