import AegisKV
import AegisServer
import NIOCore
import Testing

/// MULTI/EXEC/WATCH, SCAN's cursor and the keyspace bounds, through a session.
@Suite struct RESPTransactionTests {
    let backend = FakeBackend()

    func session(limits: RESPLimits = RESPLimits(), acl: ACLStore? = nil) -> RESPSession {
        RESPSession(backend: backend, configuration: RESPServerConfiguration(port: 7001, limits: limits), acl: acl)
    }

    @Test func test_multiExec_isOneCommand_withRedisReplies() async throws {
        var s = session()
        #expect(try await send(&s, "SET", "text", "abc") == .ok)
        let before = await backend.executedCount
        let replies = try await send(&s, [["MULTI"], ["INCR", "n"], ["INCR", "text"], ["GET", "n"], ["EXISTS", "n", "text"],
                                          ["PING"], ["SET", "k", "v", "NX", "XX"], ["EXEC"]])
        #expect(replies == [.ok, .simpleString("QUEUED"), .simpleString("QUEUED"), .simpleString("QUEUED"),
                            .simpleString("QUEUED"), .simpleString("QUEUED"), .simpleString("QUEUED"),
                            .array([.integer(1), .error("ERR value is not an integer or out of range"), .bulk("1"),
                                    .integer(2), .simpleString("PONG"), .error("ERR syntax error")])])
        #expect(await backend.executedCount == before + 1)  // one command: one log entry
    }

    @Test func test_queueTimeErrors_abortExec() async throws {
        var s = session()
        let replies = try await send(&s, [["MULTI"], ["INCR"], ["INCR", "n"], ["EXEC"], ["GET", "n"]])
        #expect(replies == [.ok, .error("ERR wrong number of arguments for 'incr' command"), .simpleString("QUEUED"),
                            .error("EXECABORT Transaction discarded because of previous errors."), .null])
        #expect(try await send(&s, [["EXEC"], ["DISCARD"], ["MULTI"], ["MULTI"], ["WATCH", "x"], ["DISCARD"]]) == [
            .error("ERR EXEC without MULTI"), .error("ERR DISCARD without MULTI"), .ok,
            .error("ERR MULTI calls can not be nested"), .error("ERR WATCH inside MULTI is not allowed"), .ok])
    }

    @Test func test_transactionSize_isBounded() async throws {
        var limits = RESPLimits()
        limits.maxTransactionCommands = 2
        var s = session(limits: limits)
        let replies = try await send(&s, [["MULTI"], ["SET", "a", "1"], ["SET", "b", "2"], ["SET", "c", "3"], ["EXEC"]])
        guard case .error(let text) = replies[3] else { Issue.record("\(replies)"); return }
        #expect(text.contains("over 2 commands"))
        #expect(replies[4] == .error("EXECABORT Transaction discarded because of previous errors."))
        #expect(try await send(&s, "EXISTS", "a") == .integer(0))
    }

    @Test func test_watch_changedKeyMakesExecNull_decidedByTheStateMachine() async throws {
        var one = session(), two = session()
        #expect(try await send(&one, "SET", "w", "1") == .ok)
        #expect(try await send(&one, "WATCH", "w") == .ok)
        #expect(try await send(&two, "SET", "w", "2") == .ok)
        #expect(try await send(&one, [["MULTI"], ["SET", "w", "mine"], ["EXEC"]]).last == .null)
        #expect(try await send(&one, "GET", "w") == .bulk("2"))
        // Expiry of a watched key is a change too.
        #expect(try await send(&one, "SET", "e", "1", "PX", "100") == .ok)
        #expect(try await send(&one, "WATCH", "e") == .ok)
        await backend.advanceClock(by: 100)
        #expect(try await send(&one, [["MULTI"], ["SET", "after", "1"], ["EXEC"]]).last == .null)
        #expect(try await send(&one, [["WATCH", "w"], ["UNWATCH"], ["SET", "w", "3"], ["MULTI"], ["GET", "w"], ["EXEC"]]).last
                == .array([.bulk("3")]))
    }

    @Test func test_scan_cursorIsDecimal_andVisitsEveryKeyOnce() async throws {
        var s = session()
        for index in 0 ..< 25 { _ = try await send(&s, "SET", "k\(index)", "v") }
        var cursor = "0", keys: [String] = []
        repeat {
            guard case .array(let parts) = try await send(&s, "SCAN", cursor, "COUNT", "4"),
                  case .bulkString(let next) = parts[0], case .array(let batch) = parts[1] else { Issue.record("bad reply"); return }
            cursor = String(decoding: next, as: UTF8.self)
            let decimal = cursor.allSatisfy { $0.isNumber }
            #expect(decimal)
            keys += batch.compactMap { if case .bulkString(let b) = $0 { String(decoding: b, as: UTF8.self) } else { nil } }
        } while cursor != "0"
        #expect(keys.count == 25 && Set(keys).count == 25)
        #expect(try await send(&s, "SCAN", "1999") == .error("ERR invalid cursor"))
        #expect(try await send(&s, "SCAN", "12") == .error("ERR invalid cursor"))
    }

    @Test func test_keys_isBoundedBySetting() async throws {
        var limits = RESPLimits()
        limits.maxKeysReply = 3
        var s = session(limits: limits)
        for index in 0 ..< 4 { _ = try await send(&s, "SET", "k\(index)", "v") }
        guard case .error(let text) = try await send(&s, "KEYS", "*") else { Issue.record("expected an error"); return }
        #expect(text.contains("more than 3 keys match"))
        guard case .array(let three) = try await send(&s, "KEYS", "k[012]") else { Issue.record("expected keys"); return }
        #expect(three.count == 3)
    }

    @Test func test_flushall_needsTheAdminCategory() async throws {
        let acl = ACLStore(defaultPassword: "pw")
        try acl.setUser("app", rules: ["on", ">app-pw", "allkeys", "+@all", "-@dangerous"])
        var s = session(acl: acl)
        #expect(try await send(&s, "AUTH", "app", "app-pw") == .ok)
        #expect(try await send(&s, "SET", "k", "v") == .ok)
        #expect(try await send(&s, "FLUSHALL") == .error("NOPERM User app has no permissions to run the 'flushall' command"))
        #expect(try await send(&s, "FLUSHDB") == .error("NOPERM User app has no permissions to run the 'flushdb' command"))
        #expect(try await send(&s, "DBSIZE") == .integer(1))
        var admin = session(acl: acl)
        #expect(try await send(&admin, "AUTH", "pw") == .ok)
        #expect(try await send(&admin, "FLUSHALL") == .ok)
        #expect(try await send(&admin, "DBSIZE") == .integer(0))
    }
}
