import AegisKV
import AegisServer
import Testing

/// MSET, MSETNX, DEL and UNLINK of several keys: one command (one log entry) each,
/// applied all or nothing.
@Suite struct MultiKeyCommandTests {
    let backend = FakeBackend()

    private func session() -> RESPSession { RESPSession(backend: backend) }

    @Test func test_msetAndDel_areOneCommandEach() async throws {
        var s = session()
        #expect(try await send(&s, "MSET", "a", "1", "b", "2", "c", "3") == .ok)
        #expect(await backend.executedCount == 1)
        #expect(try await send(&s, "DEL", "a", "missing", "b") == .integer(2))
        #expect(try await send(&s, "UNLINK", "c", "c") == .integer(1))
        #expect(try await send(&s, "DEL", "c") == .integer(0))
        #expect(await backend.executedCount == 4)
        #expect(try await send(&s, "DBSIZE") == .integer(0))
    }

    @Test func test_msetnx_setsAllOrNothing() async throws {
        var s = session()
        #expect(try await send(&s, "MSETNX", "a", "1", "b", "1") == .integer(1))
        #expect(try await send(&s, "MSETNX", "c", "2", "b", "2") == .integer(0))
        #expect(try await send(&s, "MGET", "a", "b", "c") == .array([.bulk("1"), .bulk("1"), .null]))
        #expect(try await send(&s, "MSETNX", "a") == .error("ERR wrong number of arguments for 'msetnx' command"))
    }

    @Test func test_mset_withAnInvalidKey_changesNothing_andRepliesOneError() async throws {
        var s = session()
        #expect(try await send(&s, "MSET", "a", "old") == .ok)
        let reply = try await send(&s, "MSET", "a", "new", "", "x")
        #expect(reply == .error("ERR empty keys are not supported; keys need at least one byte"))
        #expect(try await send(&s, "GET", "a") == .bulk("old"))  // not half applied
    }

    /// Readers running MGET of every key while MSETs of new generations run never see
    /// keys of two generations at once. The fake backend lets other callers in between
    /// the commands of a batch, as a node applying entries one by one may; with one
    /// entry per key (before MSET became one command) this test sees partial MSETs.
    @Test func test_concurrentReaders_neverObserveAPartialMSET() async throws {
        await backend.setYieldsBetweenCommands(true)
        let keys = (0 ..< 20).map { "key-\($0)" }
        var setup = session()
        _ = try await send(&setup, [["MSET"] + keys.flatMap { [$0, "0"] }])
        let partial = try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                var writer = session()
                for generation in 1 ... 200 {
                    _ = try await send(&writer, [["MSET"] + keys.flatMap { [$0, "\(generation)"] }])
                }
                return 0
            }
            for _ in 0 ..< 3 {
                group.addTask {
                    var reader = session()
                    var partial = 0
                    for _ in 0 ..< 300 {
                        guard case .array(let values)? = try await send(&reader, [["MGET"] + keys]).first else {
                            throw TestFailure("MGET did not return an array")
                        }
                        if Set(values).count != 1 { partial += 1 }
                        await Task.yield()
                    }
                    return partial
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(partial == 0, "\(partial) MGETs saw a partial MSET")
    }
}
