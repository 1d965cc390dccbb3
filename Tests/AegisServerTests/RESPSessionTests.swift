import AegisKV
import AegisServer
import NIOCore
import Testing

@Suite struct RESPSessionTests {
    let backend = FakeBackend()

    func session(password: String? = nil) -> RESPSession {
        RESPSession(backend: backend, configuration: RESPServerConfiguration(port: 7001, password: password))
    }

    @Test func test_getSetDel_roundTrip() async throws {
        var s = session()
        #expect(try await send(&s, "GET", "k") == .null)
        #expect(try await send(&s, "SET", "k", "v1") == .ok)
        #expect(try await send(&s, "GET", "k") == .bulk("v1"))
        #expect(try await send(&s, "DEL", "k", "missing", "k") == .integer(1))
        #expect(try await send(&s, "GET", "k") == .null)
    }

    @Test func test_set_options() async throws {
        var s = session()
        #expect(try await send(&s, "SET", "k", "a", "XX") == .null)              // absent: XX does nothing
        #expect(try await send(&s, "SET", "k", "a", "NX") == .ok)
        #expect(try await send(&s, "SET", "k", "b", "NX") == .null)              // present: NX does nothing
        #expect(try await send(&s, "SET", "k", "b", "NX", "GET") == .bulk("a"))  // NX GET: the current value
        #expect(try await send(&s, "SET", "k", "b", "XX", "GET") == .bulk("a"))
        #expect(try await send(&s, "SET", "k", "c", "GET") == .bulk("b"))
        #expect(try await send(&s, "SET", "new", "x", "GET") == .null)
        #expect(try await send(&s, "SET", "k2", "z", "XX", "GET") == .null)
        #expect(try await send(&s, "GET", "k2") == .null)
        #expect(try await send(&s, "SET", "k", "d", "xx") == .ok)                  // options are case-insensitive
        #expect(try await send(&s, "GET", "k") == .bulk("d"))
    }

    @Test func test_set_ifeq_compareAndSwap() async throws {
        var s = session()
        #expect(try await send(&s, "SET", "k", "v1", "IFEQ", "v0") == .null)     // absent: not set
        #expect(try await send(&s, "GET", "k") == .null)
        #expect(try await send(&s, "SET", "k", "v1") == .ok)
        #expect(try await send(&s, "SET", "k", "v2", "IFEQ", "nope") == .null)
        #expect(try await send(&s, "GET", "k") == .bulk("v1"))
        #expect(try await send(&s, "SET", "k", "v2", "IFEQ", "v1") == .ok)
        #expect(try await send(&s, "SET", "k", "v3", "IFEQ", "v2", "GET") == .bulk("v2"))
        #expect(try await send(&s, "SET", "k", "v4", "IFEQ", "wrong", "GET") == .bulk("v3"))
        #expect(try await send(&s, "GET", "k") == .bulk("v3"))
    }

    @Test(arguments: [
        ["SET", "k", "v", "NX", "XX"], ["SET", "k", "v", "IFEQ"], ["SET", "k", "v", "IFEQ", "a", "NX"],
        ["SET", "k", "v", "XX", "IFEQ", "a"], ["SET", "k", "v", "BOGUS"],
    ])
    func test_set_conflictingOrUnknownOptions_areSyntaxErrors(command: [String]) async throws {
        var s = session()
        #expect(try await send(&s, [command]) == [.error("ERR syntax error")])
        #expect(try await send(&s, "DBSIZE") == .integer(0))
    }

    @Test func test_set_ttlOptions_setADeadlineFromTheLeaderClock() async throws {
        var s = session()
        #expect(try await send(&s, "SET", "k", "v", "PX", "500") == .ok)
        #expect(try await send(&s, "PTTL", "k") == .integer(500))
        #expect(try await send(&s, "PEXPIRETIME", "k") == .integer(1_000_500))
        #expect(try await send(&s, "SET", "k", "w", "KEEPTTL") == .ok)
        await backend.advanceClock(by: 200)
        #expect(try await send(&s, "TTL", "k") == .integer(0))  // 300 ms rounds to 0 s, as in Redis
        await backend.advanceClock(by: 300)
        #expect(try await send(&s, "GET", "k") == .null)
        #expect(try await send(&s, "TTL", "k") == .integer(-2))
        #expect(try await send(&s, "SET", "k", "v", "EX", "0") == .error("ERR invalid expire time in 'set' command"))
        #expect(try await send(&s, "SET", "k", "v", "KEEPTTL", "PX", "5") == .error("ERR syntax error"))
    }

    @Test func test_incrementFamily() async throws {
        var s = session()
        #expect(try await send(&s, "INCR", "n") == .integer(1))
        #expect(try await send(&s, "INCRBY", "n", "41") == .integer(42))
        #expect(try await send(&s, "DECR", "n") == .integer(41))
        #expect(try await send(&s, "DECRBY", "n", "-9") == .integer(50))
        #expect(try await send(&s, "GET", "n") == .bulk("50"))
        #expect(try await send(&s, "SET", "s", "abc") == .ok)
        #expect(try await send(&s, "INCR", "s") == .error("ERR value is not an integer or out of range"))
        #expect(try await send(&s, "INCRBY", "n", "1.5") == .error("ERR value is not an integer or out of range"))
        #expect(try await send(&s, "INCRBY", "n", "99999999999999999999") == .error("ERR value is not an integer or out of range"))
        #expect(try await send(&s, "SET", "max", String(Int64.max)) == .ok)
        #expect(try await send(&s, "INCR", "max") == .error("ERR increment or decrement would overflow"))
        #expect(try await send(&s, "DECRBY", "n", String(Int64.min)) == .error("ERR decrement would overflow"))
        #expect(try await send(&s, "GET", "s") == .bulk("abc"))
    }

    @Test func test_multiKeyCommands() async throws {
        var s = session()
        #expect(try await send(&s, "MSET", "a", "1", "b", "2") == .ok)
        #expect(try await send(&s, "MGET", "a", "missing", "b") == .array([.bulk("1"), .null, .bulk("2")]))
        #expect(try await send(&s, "EXISTS", "a", "b", "a", "missing") == .integer(3))
        #expect(try await send(&s, "DBSIZE") == .integer(2))
        #expect(try await send(&s, "MSET", "a", "1", "b") == .error("ERR wrong number of arguments for 'mset' command"))
    }

    @Test func test_pipeline_answersInOrder_andBatchesConsecutiveWrites() async throws {
        var s = session()
        let replies = try await send(&s, [
            ["SET", "a", "1"], ["SET", "b", "2"], ["INCR", "c"], ["PING"], ["GET", "a"], ["MGET", "b", "c"],
            ["DEL", "a"], ["GET", "a"], ["ECHO", "done"],
        ])
        #expect(replies == [.ok, .ok, .integer(1), .simpleString("PONG"), .bulk("1"), .array([.bulk("2"), .bulk("1")]),
                            .integer(1), .null, .bulk("done")])
        // SET, SET, INCR went in one batch; DEL alone (between reads). Single commands skip the batch call.
        #expect(await backend.batchSizes == [3])
    }

    @Test func test_readonly_makesReadsStale_readwriteRestores() async throws {
        var s = session()
        _ = try await send(&s, "GET", "k")
        #expect(try await send(&s, "READONLY") == .ok)
        _ = try await send(&s, [["GET", "k"], ["EXISTS", "k"]])
        #expect(try await send(&s, "READWRITE") == .ok)
        _ = try await send(&s, "MGET", "k")
        #expect(await backend.readStaleFlags == [false, true, false])
    }

    @Test func test_backendErrors_becomeRedisStyleErrors() async throws {
        var s = session()
        await backend.setFailure(.noLeader(lastKnownLeader: LeaderHint(id: "node2", clientAddress: "127.0.0.1:7002")))
        #expect(try await send(&s, "SET", "k", "v") == .error(
            "CLUSTERDOWN no leader elected (last known leader: node2 at 127.0.0.1:7002); retry shortly"))
        #expect(try await send(&s, "GET", "k") == .error(
            "CLUSTERDOWN no leader elected (last known leader: node2 at 127.0.0.1:7002); retry shortly"))
        await backend.setFailure(.notLeader(leader: nil))
        let replies = try await send(&s, [["SET", "a", "1"], ["SET", "b", "2"], ["PING"]])
        #expect(replies.count == 3)
        #expect(replies[0] == .error("TRYAGAIN not the leader and forwarding to the leader failed (leader unknown); retry, or connect to the leader"))
        #expect(replies[2] == .simpleString("PONG"))
        // A write whose log position another entry took: nothing was applied, so a
        // retryable TRYAGAIN (the client library retries it), not UNAVAILABLE.
        await backend.setFailure(.notCommitted)
        #expect(try await send(&s, "SET", "k", "v") == .error(
            "TRYAGAIN the write was not committed because leadership changed; nothing was applied, retry"))
        await backend.setFailure(.timeout(milliseconds: 500))
        guard case .error(let text) = try await send(&s, "DBSIZE") else { Issue.record("expected an error"); return }
        #expect(text.hasPrefix("TIMEOUT"))
        await backend.setFailure(.command(.keyTooLarge(size: 20000, limit: 16384)))
        #expect(try await send(&s, "INCR", "k") == .error("ERR key too large: 20000 bytes, the limit is 16384"))
        await backend.setFailure(nil)
        #expect(try await send(&s, "SET", "", "v") == .error("ERR empty keys are not supported; keys need at least one byte"))
    }

    @Test func test_unknownCommandsAndArity() async throws {
        var s = session()
        #expect(try await send(&s, "NOSUCH", "x") == .error("ERR unknown command 'NOSUCH', with args beginning with: 'x' "))
        #expect(try await send(&s, "GET") == .error("ERR wrong number of arguments for 'get' command"))
        #expect(try await send(&s, "GET", "a", "b") == .error("ERR wrong number of arguments for 'get' command"))
        #expect(try await send(&s, "ping") == .simpleString("PONG"))
        #expect(try await send(&s, "PING", "hi") == .bulk("hi"))
        #expect(try await send(&s, "ECHO", "x") == .bulk("x"))
    }

    @Test func test_auth_withPassword() async throws {
        var s = session(password: "secret")
        #expect(try await send(&s, "GET", "k") == .error("NOAUTH Authentication required."))
        #expect(try await send(&s, "AUTH", "wrong") == .error("WRONGPASS invalid username-password pair or user is disabled."))
        #expect(try await send(&s, "AUTH", "other", "secret") == .error("WRONGPASS invalid username-password pair or user is disabled."))
        #expect(try await send(&s, "PING") == .error("NOAUTH Authentication required."))
        #expect(try await send(&s, "AUTH", "default", "secret") == .ok)
        #expect(try await send(&s, "PING") == .simpleString("PONG"))
        #expect(try await send(&s, "RESET") == .simpleString("RESET"))
        #expect(try await send(&s, "PING") == .error("NOAUTH Authentication required."))
        #expect(try await send(&s, "AUTH", "secret") == .ok)
    }

    @Test func test_auth_withoutPassword_isRedisError() async throws {
        var s = session()
        #expect(try await send(&s, "AUTH", "x") == .error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"))
    }

    @Test func test_hello_switchesProtocolAndAuthenticates() async throws {
        var s = session(password: "pw")
        guard case .error(let noauth) = try await send(&s, "HELLO", "3") else { Issue.record("expected NOAUTH"); return }
        #expect(noauth.hasPrefix("NOAUTH HELLO must be called"))
        #expect(s.protocolVersion == .resp2)
        #expect(try await send(&s, "HELLO", "4") == .error("NOPROTO unsupported protocol version"))
        let reply = try await send(&s, "HELLO", "3", "AUTH", "default", "pw", "SETNAME", "app")
        guard case .map(let entries) = reply else { Issue.record("expected a map, got \(reply)"); return }
        #expect(entries.contains(RESPMapEntry(.bulk("proto"), .integer(3))))
        #expect(entries.contains(RESPMapEntry(.bulk("server"), .bulk("redis"))))
        #expect(s.protocolVersion == .resp3)
        #expect(try await send(&s, "CLIENT", "GETNAME") == .bulk("app"))
        // RESP3 nulls on the wire.
        var out = ByteBuffer()
        _ = await s.handle([RESPRequest("GET", "missing")], into: &out)
        #expect(String(buffer: out) == "_\r\n")
    }

    @Test func test_clientSelectCommandConfig() async throws {
        var s = session()
        #expect(try await send(&s, "CLIENT", "ID") == .integer(1))
        #expect(try await send(&s, "CLIENT", "GETNAME") == .null)
        #expect(try await send(&s, "CLIENT", "SETNAME", "my-app") == .ok)
        #expect(try await send(&s, "CLIENT", "SETNAME", "bad name") == .error("ERR Client names cannot contain spaces, newlines or special characters."))
        #expect(try await send(&s, "CLIENT", "SETINFO", "LIB-NAME", "redis-py") == .ok)
        #expect(try await send(&s, "CLIENT", "SETINFO", "LIB-VER", "5.0.0") == .ok)
        #expect(try await send(&s, "CLIENT", "SETINFO", "OTHER", "x") == .error("ERR Unrecognized option 'OTHER'"))
        #expect(try await send(&s, "CLIENT", "KILL") == .error("ERR unknown subcommand 'KILL'. Try CLIENT HELP."))
        #expect(try await send(&s, "SELECT", "0") == .ok)
        #expect(try await send(&s, "SELECT", "1") == .error("ERR DB index is out of range"))
        #expect(try await send(&s, "SELECT", "x") == .error("ERR value is not an integer or out of range"))
        guard case .integer(let count) = try await send(&s, "COMMAND", "COUNT"), count >= 20 else { Issue.record("COMMAND COUNT"); return }
        guard case .array(let all) = try await send(&s, "COMMAND"), all.count == Int(count) else { Issue.record("COMMAND"); return }
        // Maps are flat arrays in RESP2.
        guard case .array(let docs) = try await send(&s, "COMMAND", "DOCS", "get", "nosuch"), docs.count == 2 else {
            Issue.record("COMMAND DOCS"); return
        }
        #expect(docs[0] == .bulk("get"))
        #expect(try await send(&s, "CONFIG", "GET", "save") == .array([.bulk("save"), .bulk("")]))
        #expect(try await send(&s, "CONFIG", "GET", "append*") == .array([
            .bulk("appendfsync"), .bulk("always"), .bulk("appendonly"), .bulk("yes"),
        ]))
        #expect(try await send(&s, "CONFIG", "GET", "nothing") == .array([]))
        guard case .error = try await send(&s, "CONFIG", "SET", "save", "") else { Issue.record("CONFIG SET must fail"); return }
    }

    @Test func test_quit_repliesAndCloses() async throws {
        var s = session()
        #expect(try await send(&s, [["PING"], ["QUIT"], ["PING"]], keepOpen: false) == [.simpleString("PONG"), .ok])
    }

    @Test func test_info_sections() async throws {
        var s = session()
        _ = try await send(&s, "SET", "k", "v")
        let all = try #require(try await send(&s, "INFO").text)
        for line in ["# Server", "redis_version:", "# Clients", "# Replication", "role:master", "aegis_role:leader",
                     "leader_id:node1", "leader_address:127.0.0.1:7001", "term:3", "commit_index:1", "applied_index:1",
                     "# Keyspace", "db0:keys=1,expires=0,avg_ttl=0"] {
            #expect(all.contains(line), "INFO lacks \(line)")
        }
        let replication = try #require(try await send(&s, "INFO", "replication").text)
        #expect(!replication.contains("# Server"))
        #expect(replication.contains("member1:id=node2,role=follower"))
        #expect(replication.contains("read_mode:safe"))
        await backend.setStatus { $0.readMode = .lease }
        #expect(try #require(try await send(&s, "INFO", "replication").text).contains("read_mode:lease"))
        await backend.setStatus { $0.role = .follower; $0.leader = LeaderHint(id: "node2", clientAddress: "127.0.0.1:7002") }
        let follower = try #require(try await send(&s, "INFO", "replication").text)
        #expect(follower.contains("role:slave"))
        #expect(follower.contains("master_host:127.0.0.1"))
        #expect(follower.contains("master_port:7002"))
    }
}
