import AegisKV
import AegisServer
import NIOCore
import Testing

/// `AEGIS.SESSION` and `AEGIS.EXACTLY` through a RESP session over a real state machine.
@Suite struct RESPExactlyOnceTests {
    let backend = FakeBackend()

    func session() -> RESPSession {
        RESPSession(backend: backend, configuration: RESPServerConfiguration(port: 7001))
    }

    @Test func test_retriedIncrement_isAppliedOnce() async throws {
        var s = session()
        guard case .integer(let id) = try await send(&s, "AEGIS.SESSION") else {
            Issue.record("AEGIS.SESSION did not return an integer")
            return
        }
        let sid = String(id)
        #expect(try await send(&s, "AEGIS.EXACTLY", sid, "1", "0", "INCRBY", "c", "5") == .integer(5))
        #expect(try await send(&s, "AEGIS.EXACTLY", sid, "1", "0", "INCRBY", "c", "5") == .integer(5))
        #expect(try await send(&s, "AEGIS.EXACTLY", sid, "2", "1", "SET", "k", "v") == .ok)
        #expect(try await send(&s, "AEGIS.EXACTLY", sid, "3", "2", "SADD", "s", "a", "b") == .integer(2))
        #expect(try await send(&s, "AEGIS.EXACTLY", sid, "3", "2", "SADD", "s", "a", "b") == .integer(2))
        #expect(try await send(&s, "GET", "c") == .bulk("5"))
    }

    @Test func test_badRequests_areRefusedClearly() async throws {
        var s = session()
        let unknown = try await send(&s, "AEGIS.EXACTLY", "77", "1", "0", "INCR", "c")
        guard case .error(let text) = unknown else {
            Issue.record("expected an error, got \(unknown)")
            return
        }
        #expect(text.hasPrefix("SESSIONEXPIRED"))
        #expect(try await send(&s, "GET", "c") == .null)
        let read = try await send(&s, "AEGIS.EXACTLY", "1", "1", "0", "GET", "c")
        #expect(read == .error("ERR AEGIS.EXACTLY runs one write command that is a single log entry; GET is not one "
            + "(reads are safe to retry without it)"))
        let nested = try await send(&s, "AEGIS.EXACTLY", "1", "2", "0", "AEGIS.EXACTLY", "1", "3", "0", "INCR", "c")
        guard case .error = nested else {
            Issue.record("a nested AEGIS.EXACTLY was accepted: \(nested)")
            return
        }
        for bad in [["x", "1", "0"], ["1", "0", "0"], ["1", "2", "2"], ["1", "-1", "0"]] {
            let reply = try await send(&s, [["AEGIS.EXACTLY"] + bad + ["INCR", "c"]]).first
            #expect(reply == .error("ERR AEGIS.EXACTLY needs a session ID, a sequence number above 0 and an acknowledged "
                + "sequence number below it, as decimal integers"))
        }
        #expect(try await send(&s, "AEGIS.EXACTLY", "1", "1", "0", "NOSUCH", "c")
            == .error("ERR unknown command 'NOSUCH', with args beginning with: 'c' "))
        #expect(try await send(&s, "GET", "c") == .null)
    }
}
