import AegisKV
import AegisServer
import NIOCore
import Testing

/// Sets, hashes, TYPE and WRONGTYPE through a RESP session over a real state machine.
@Suite struct RESPCollectionTests {
    let backend = FakeBackend()

    func session() -> RESPSession {
        RESPSession(backend: backend, configuration: RESPServerConfiguration(port: 7001))
    }

    static let wrongType = RESPValue.error("WRONGTYPE Operation against a key holding the wrong kind of value")

    @Test func test_setCommands() async throws {
        var s = session()
        #expect(try await send(&s, "SADD", "s", "b", "a", "b") == .integer(2))
        #expect(try await send(&s, "SMEMBERS", "s") == .array([.bulk("a"), .bulk("b")]))  // RESP2: an array
        #expect(try await send(&s, "SISMEMBER", "s", "a") == .integer(1))
        #expect(try await send(&s, "SCARD", "s") == .integer(2))
        #expect(try await send(&s, "SREM", "s", "a", "z") == .integer(1))
        #expect(try await send(&s, "TYPE", "s") == .simpleString("set"))
        #expect(try await send(&s, "SADD", "s") == .error("ERR wrong number of arguments for 'sadd' command"))
    }

    @Test func test_hashCommands() async throws {
        var s = session()
        #expect(try await send(&s, "HSET", "h", "f", "1", "g", "2") == .integer(2))
        #expect(try await send(&s, "HGET", "h", "f") == .bulk("1"))
        #expect(try await send(&s, "HGET", "h", "z") == .null)
        #expect(try await send(&s, "HINCRBY", "h", "f", "41") == .integer(42))
        #expect(try await send(&s, "HGETALL", "h") == .array([.bulk("f"), .bulk("42"), .bulk("g"), .bulk("2")]))
        #expect(try await send(&s, "HLEN", "h") == .integer(2))
        #expect(try await send(&s, "HEXISTS", "h", "g") == .integer(1))
        #expect(try await send(&s, "HDEL", "h", "g", "z") == .integer(1))
        #expect(try await send(&s, "HSET", "h", "a", "1", "b") == .error("ERR wrong number of arguments for 'hset' command"))
        #expect(try await send(&s, "HINCRBY", "h", "f", "x") == .error("ERR value is not an integer or out of range"))
        #expect(try await send(&s, "HSET", "h", "t", "text") == .integer(1))
        #expect(try await send(&s, "HINCRBY", "h", "t", "1") == .error("ERR hash value is not an integer"))
        #expect(try await send(&s, "HINCRBY", "h", "f", String(Int64.max)) == .error("ERR increment or decrement would overflow"))
        #expect(try await send(&s, "TYPE", "h") == .simpleString("hash"))
    }

    @Test func test_wrongTypeAndKeyspace() async throws {
        var s = session()
        #expect(try await send(&s, "SADD", "s", "m") == .integer(1))
        #expect(try await send(&s, "SET", "str", "v") == .ok)
        #expect(try await send(&s, "GET", "s") == Self.wrongType)
        #expect(try await send(&s, "INCR", "s") == Self.wrongType)
        #expect(try await send(&s, "HSET", "s", "f", "v") == Self.wrongType)
        #expect(try await send(&s, "SADD", "str", "m") == Self.wrongType)
        #expect(try await send(&s, "MGET", "s", "str") == .array([.null, .bulk("v")]))
        #expect(try await send(&s, "EXISTS", "s", "str", "none") == .integer(2))
        #expect(try await send(&s, "DBSIZE") == .integer(2))
        #expect(try await send(&s, "TYPE", "str") == .simpleString("string"))
        #expect(try await send(&s, "TYPE", "none") == .simpleString("none"))
        #expect(try await send(&s, "SET", "s", "x", "NX") == .null)
        #expect(try await send(&s, "SET", "s", "x", "XX") == .ok)
        #expect(try await send(&s, "TYPE", "s") == .simpleString("string"))
        #expect(try await send(&s, "SADD", "t", "m") == .integer(1))
        #expect(try await send(&s, "DEL", "t", "str", "none") == .integer(2))
        #expect(try await send(&s, "TYPE", "t") == .simpleString("none"))
    }
}

/// The string commands added with the data types: SETNX, GETSET, APPEND, STRLEN.
@Suite struct RESPStringCommandTests {
    let backend = FakeBackend()

    @Test func test_stringCommands() async throws {
        var s = RESPSession(backend: backend, configuration: RESPServerConfiguration(port: 7001))
        #expect(try await send(&s, "SETNX", "k", "a") == .integer(1))
        #expect(try await send(&s, "SETNX", "k", "b") == .integer(0))
        #expect(try await send(&s, "APPEND", "k", "bc") == .integer(3))
        #expect(try await send(&s, "APPEND", "new", "xy") == .integer(2))
        #expect(try await send(&s, "STRLEN", "k") == .integer(3))
        #expect(try await send(&s, "STRLEN", "missing") == .integer(0))
        #expect(try await send(&s, "GETSET", "k", "z") == .bulk("abc"))
        #expect(try await send(&s, "GETSET", "fresh", "1") == .null)
        #expect(try await send(&s, "SADD", "set", "m") == .integer(1))
        #expect(try await send(&s, "GETSET", "set", "v") == RESPCollectionTests.wrongType)
        #expect(try await send(&s, "SET", "set", "v", "GET") == RESPCollectionTests.wrongType)
        #expect(try await send(&s, "APPEND", "set", "v") == RESPCollectionTests.wrongType)
        #expect(try await send(&s, "STRLEN", "set") == RESPCollectionTests.wrongType)
        #expect(try await send(&s, "TYPE", "set") == .simpleString("set"))
        #expect(try await send(&s, "SETNX", "set", "v") == .integer(0))
    }
}
