import AegisKV
import AegisRaft
import AegisServer
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// `AEGIS.WATCH prefix [FROM index]` through RESP sessions over a backend whose log
/// is every executed command (FakeBackend).
@Suite struct RESPWatchTests {
    let backend = FakeBackend()

    /// A watching session that collects what is pushed to it, and a writer.
    func sessions(limits: RESPLimits = RESPLimits(), version3: Bool = false)
        -> (watcher: RESPSession, writer: RESPSession, pushed: NIOLockedValueBox<[RESPValue]>) {
        let hub = PubSubHub(fedByLog: false)
        var watcher = RESPSession(backend: backend, configuration: RESPServerConfiguration(port: 7001, limits: limits), pubsub: hub)
        let writer = watcher.sibling(clientID: 2)
        let pushed = NIOLockedValueBox<[RESPValue]>([])
        watcher.watchTarget = { values in
            pushed.withLockedValue { $0.append(contentsOf: values) }
            return true
        }
        return (watcher, writer, pushed)
    }

    /// Waits (bounded) until `pushed` holds at least `count` values; returns them.
    func collected(_ pushed: NIOLockedValueBox<[RESPValue]>, atLeast count: Int) async throws -> [RESPValue] {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let values = pushed.withLockedValue { $0 }
            if values.count >= count { return values }
            // Looked at once more after the deadline: a loaded machine may starve this task.
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestFailure("waited 30 s for \(count) pushed values, have \(pushed.withLockedValue { $0 })")
    }

    func change(_ index: Int64, _ event: String, _ key: String, _ argument: String?) -> RESPValue {
        .array([.bulk("change"), .integer(index), .bulk(event), .bulk(key), argument.map { .bulk($0) } ?? .null])
    }

    @Test func test_watchFromIndex_streamsEveryChangeOfThePrefixInLogOrder() async throws {
        var (watcher, writer, pushed) = sessions()
        _ = try await send(&writer, [["SET", "app:a", "1"], ["SET", "other", "x"], ["INCRBY", "app:n", "5"],
                                     ["MSET", "app:b", "2", "zzz", "3"], ["SADD", "app:s", "m"]])  // indices 1…5
        #expect(try await send(&watcher, "AEGIS.WATCH", "app:", "FROM", "2") == .array([.bulk("watch"), .bulk("app:"), .integer(2)]))
        var expected = [change(3, "incrby", "app:n", "5"), change(4, "set", "app:b", "2"), change(5, "sadd", "app:s", nil)]
        #expect(try await collected(pushed, atLeast: 3) == expected)
        // Live changes follow, in order; other prefixes never appear.
        _ = try await send(&writer, [["DEL", "app:a", "nope"], ["APPEND", "app:b", "!"], ["SET", "nope", "1"], ["FLUSHALL"]])
        expected += [change(6, "del", "app:a", nil), change(7, "append", "app:b", "!"), change(9, "flushall", "app:", nil)]
        #expect(try await collected(pushed, atLeast: 6) == expected)
        // In RESP2 the watching connection accepts only the watch commands.
        #expect(try await send(&watcher, "GET", "app:a") == .error(
            "ERR Can't execute 'get': only AEGIS.UNWATCH / PING / QUIT / RESET are allowed while watching"))
        #expect(try await send(&watcher, "PING") == .array([.bulk("pong"), .bulk("")]))
        #expect(try await send(&watcher, "AEGIS.WATCH", "x") == .error(
            "ERR Can't execute 'aegis.watch': only AEGIS.UNWATCH / PING / QUIT / RESET are allowed while watching"))
        #expect(try await send(&watcher, "AEGIS.UNWATCH") == .array([.bulk("unwatch"), .integer(10)]))
        #expect(try await send(&watcher, "GET", "app:a") == .null)
        #expect(try await send(&watcher, "AEGIS.UNWATCH") == .array([.bulk("unwatch"), .null]))
    }

    @Test func test_resumingFromTheNextIndex_seesEveryChangeExactlyOnce() async throws {
        var (watcher, writer, pushed) = sessions()
        #expect(try await send(&watcher, "AEGIS.WATCH", "k") == .array([.bulk("watch"), .bulk("k"), .integer(1)]))
        for round in 0..<3 {
            _ = try await send(&writer, [["SET", "k\(round)", "a"], ["INCR", "k-count"]])
        }
        _ = try await collected(pushed, atLeast: 6)
        let next = try await send(&watcher, "AEGIS.UNWATCH")
        guard case .array(let parts) = next, case .integer(let resume) = parts[1] else { throw TestFailure("unwatch: \(next)") }
        _ = try await send(&writer, [["SET", "k9", "b"], ["SET", "j", "b"], ["DEL", "k0"]])  // while nobody watches
        var again = watcher.sibling(clientID: 3)  // a new connection resumes
        let resumedPush = NIOLockedValueBox<[RESPValue]>([])
        again.watchTarget = { values in
            resumedPush.withLockedValue { $0.append(contentsOf: values) }
            return true
        }
        #expect(try await send(&again, "AEGIS.WATCH", "k", "FROM", "\(resume)") == .array([.bulk("watch"), .bulk("k"), .integer(resume)]))
        let all = try await collected(pushed, atLeast: 6) + (try await collected(resumedPush, atLeast: 2))
        let indices = all.compactMap { value -> Int64? in
            guard case .array(let parts) = value, case .integer(let index) = parts[1] else { return nil }
            return index
        }
        #expect(indices == [1, 2, 3, 4, 5, 6, 7, 9])  // 8 is `j`: not of the prefix
    }

    @Test func test_watchFromCompactedIndex_isRefusedAndAWatcherOvertakenByCompactionIsTold() async throws {
        var (watcher, writer, pushed) = sessions()
        for n in 0..<5 { _ = try await send(&writer, "SET", "k\(n)", "v") }
        await backend.compactLog(through: 3)
        #expect(try await send(&watcher, "AEGIS.WATCH", "k", "FROM", "3") == .error(
            "COMPACTED index 3 is compacted away: this node's log starts at 4; read the keys again and watch without FROM (or FROM 4)"))
        #expect(try await send(&watcher, "AEGIS.WATCH", "k", "FROM", "4") == .array([.bulk("watch"), .bulk("k"), .integer(4)]))
        _ = try await collected(pushed, atLeast: 2)
        _ = try await send(&watcher, "AEGIS.UNWATCH")
        #expect(try await send(&watcher, "AEGIS.WATCH", "k", "FROM", "x") == .error("ERR FROM needs a log index (a decimal integer from 0)"))
        #expect(try await send(&watcher, "AEGIS.WATCH", "k", "TO", "3") == .error("ERR syntax error"))
        #expect(try await send(&watcher, "AEGIS.WATCH", "k", "FROM", "18446744073709551616") == .error(
            "ERR FROM needs a log index (a decimal integer from 0)"))
        // A watch ahead of the log waits; a snapshot that jumps over it ends it.
        #expect(try await send(&watcher, "AEGIS.WATCH", "k", "FROM", "7") == .array([.bulk("watch"), .bulk("k"), .integer(7)]))
        try await Task.sleep(for: .milliseconds(100))
        await backend.compactLog(through: 9)
        let values = try await collected(pushed, atLeast: 3)
        #expect(values.last == .array([.bulk("compacted"), .integer(7), .integer(10)]))
        #expect(try await send(&watcher, "GET", "k1") == .bulk("v"))  // the watch ended: the connection is usable again
    }

    @Test func test_watches_areBoundedAndKeyPermissionsFilterEvents() async throws {
        var limits = RESPLimits()
        limits.maxWatches = 1
        var (watcher, writer, _) = sessions(limits: limits)
        #expect(try await send(&watcher, "AEGIS.WATCH", "") == .array([.bulk("watch"), .bulk(""), .integer(1)]))
        var second = watcher.sibling(clientID: 5)
        second.watchTarget = { _ in true }
        #expect(try await send(&second, "AEGIS.WATCH", "") == .error("ERR max number of watches reached (1, --max-watches)"))
        _ = try await send(&watcher, "AEGIS.UNWATCH")
        var plain = RESPSession(backend: backend)  // no push target: not a real connection
        #expect(try await send(&plain, "AEGIS.WATCH", "") == .error("ERR this connection cannot receive pushed messages"))
        _ = try await send(&writer, "SET", "k", "v")
    }

    @Test func test_resp3Watch_pushesPushValuesAndKeepsTheConnectionUsable() async throws {
        var (watcher, writer, pushed) = sessions()
        _ = try await send(&watcher, "HELLO", "3")
        #expect(try await send(&watcher, "AEGIS.WATCH", "p") == .push([.bulk("watch"), .bulk("p"), .integer(1)]))
        _ = try await send(&writer, "SET", "p1", "v")
        #expect(try await collected(pushed, atLeast: 1) == [.push([.bulk("change"), .integer(1), .bulk("set"), .bulk("p1"), .bulk("v")])])
        #expect(try await send(&watcher, "GET", "p1") == .bulk("v"))  // RESP3: other commands still run
        #expect(try await send(&watcher, "AEGIS.WATCH", "q") == .error(
            "ERR this connection watches already: one watch per connection (AEGIS.UNWATCH first)"))
        #expect(try await send(&watcher, "RESET") == .simpleString("RESET"))
        _ = try await send(&writer, "SET", "p2", "v")
        try await Task.sleep(for: .milliseconds(200))
        #expect(pushed.withLockedValue { $0.count } == 1)  // RESET stopped the watch
    }
}
