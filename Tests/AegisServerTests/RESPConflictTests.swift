import AegisCRDT
import AegisKV
import AegisServer
import NIOCore
import Testing

/// The active-active conflict commands through a RESP session over a real state machine
/// (the cluster "aegis") that merged a concurrent write of a peer cluster.
@Suite struct RESPConflictTests {
    let backend = FakeBackend()

    func session() -> RESPSession {
        RESPSession(backend: backend, configuration: RESPServerConfiguration(port: 7001))
    }

    /// Enables active-active with `m:` manual and `v:` vector-clock, writes `key` here,
    /// and merges a concurrent write of the same key by cluster "peer".
    func conflict(_ key: Key) async throws {
        _ = try await backend.execute(.setActiveActive(ActiveActiveSettings(enabled: true)))
        let rules = [ActiveActiveStrategyRule(prefix: Array("m:".utf8), strategy: .manual),
                     ActiveActiveStrategyRule(prefix: Array("v:".utf8), strategy: .vectorClock)]
        #expect(try await backend.execute(.activeActiveConflict(.setStrategies(ActiveActiveConflictSettings(rules: rules)))).error == nil)
        var peer = StateMachine(replica: "peer")
        peer.apply(.setActiveActive(ActiveActiveSettings(enabled: true)), at: 1, timestamp: 1_000)
        peer.apply(.activeActiveConflict(.setStrategies(ActiveActiveConflictSettings(rules: rules))), at: 2, timestamp: 1_000)
        peer.apply(.set(key, Array("from peer".utf8)), at: 3, timestamp: 1_000)
        var s = session()
        #expect(try await send(&s, "SET", key.description, "from here") == .ok)
        let batch = ActiveActiveBatch(source: "peer", afterIndex: 0, lastIndex: 3, sourceCommit: 3, sourceTime: 1_000,
                                      states: peer.activeActiveStates(for: [key]))
        #expect(try await backend.execute(.activeActiveBatch(batch)).error == nil)
    }

    @Test func test_aManualConflictIsListedAndResolvedOverRESP() async throws {
        try await conflict("m:k")
        var s = session()
        guard case .array(let rows) = try await send(&s, "AEGIS.CONFLICTS"), rows.count == 1,
              case .array(let row) = rows[0], case .integer(let id) = row[0], case .array(let versions) = row[3] else {
            Issue.record("AEGIS.CONFLICTS did not list one conflict")
            return
        }
        #expect(row[1] == .bulk("m:k") && versions.count == 2)
        let values = versions.compactMap { version -> RESPValue? in
            if case .array(let fields) = version { return fields[2] }
            return nil
        }
        #expect(values == [.bulk("from here"), .bulk("from peer")])  // ascending origin: aegis, peer
        #expect(try await send(&s, "AEGIS.RESOLVE", "m:k", "\(id + 1)", "PICK", "1") != .ok)
        #expect(try await send(&s, "AEGIS.RESOLVE", "m:k", "\(id)", "KEEP", "1") != .ok)
        #expect(try await send(&s, "AEGIS.RESOLVE", "m:k", "\(id)", "PICK", "1") == .ok)
        #expect(try await send(&s, "GET", "m:k") == .bulk("from peer"))
        #expect(try await send(&s, "AEGIS.CONFLICTS") == .array([]))
        guard case .array(let audit) = try await send(&s, "AEGIS.AUDIT", "m:k", "5"), case .array(let entry)? = audit.first else {
            Issue.record("AEGIS.AUDIT returned no entry")
            return
        }
        #expect(entry[2] == .bulk("m:k") && entry[3] == .bulk("manual") && entry[4] == .bulk("from peer"))
        #expect(try await send(&s, "AEGIS.AUDIT", "m:k", "0") != .array([]))  // a limit below 1 is an error
    }

    @Test func test_siblingsAndAContextWriteOverRESP() async throws {
        try await conflict("v:k")
        var s = session()
        guard case .array(let reply) = try await send(&s, "AEGIS.SIBLINGS", "v:k"), case .bulkString(let token) = reply[0],
              case .array(let siblings) = reply[1] else {
            Issue.record("AEGIS.SIBLINGS returned no siblings")
            return
        }
        #expect(siblings.count == 2 && reply[2] == .integer(0))
        #expect(try await send(&s, "AEGIS.SETCTX", "v:k", "both", "not-hex") != .ok)
        #expect(try await send(&s, "AEGIS.SETCTX", "v:k", "both", String(decoding: token, as: UTF8.self)) == .ok)
        guard case .array(let after) = try await send(&s, "AEGIS.SIBLINGS", "v:k"), case .array(let left) = after[1] else {
            Issue.record("AEGIS.SIBLINGS returned nothing after the write")
            return
        }
        #expect(left.count == 1)
        #expect(try await send(&s, "GET", "v:k") == .bulk("both"))
        #expect(try await send(&s, "AEGIS.SIBLINGS", "plain") == .null)
        #expect(try await send(&s, "MULTI") == .ok)
        #expect(try await send(&s, "AEGIS.SETCTX", "v:k", "x", String(decoding: token, as: UTF8.self)) == .simpleString("QUEUED"))
    }
}
