import AegisClient
import Foundation
import NIOSSL
import Testing

/// Three `aegis serve` processes on loopback (RESP base+k, peers base+2000+k, admin
/// base+1000+k; base 7461 by default).
final class ProcessCluster: @unchecked Sendable {
    static let ids = ["n1", "n2", "n3"]
    let base: Int
    func resp(_ k: Int) -> Int { base + k }
    /// Extra `aegis serve` arguments per node index.
    let extra: @Sendable (Int) -> [String]
    let work: URL
    let aegis: String
    private var processes: [Int: Process] = [:]
    private let lock = NSLock()

    /// The built `aegis`, next to the test bundle or under `.build/debug`.
    static func executable() -> String? {
        var candidates: [String] = []
        if let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("aegis").path)
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/aegis").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    init(aegis: String, base: Int = 7461, extra: @escaping @Sendable (Int) -> [String] = { _ in [] },
         work: URL? = nil) throws {
        self.aegis = aegis
        self.base = base
        self.extra = extra
        self.work = work ?? FileManager.default.temporaryDirectory.appendingPathComponent("aegis-client-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.work, withIntermediateDirectories: true)
        let token = self.work.appendingPathComponent("admin-token")
        try "client-test-token\n".write(to: token, atomically: true, encoding: .utf8)
        for k in 0 ..< 3 { try start(k) }
    }

    func start(_ k: Int) throws {
        let peers = (0 ..< 3).map { "\(Self.ids[$0])=127.0.0.1:\(base + 2000 + $0)/127.0.0.1:\(resp($0))" }.joined(separator: ",")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: aegis)
        process.arguments = ["serve", "--id", Self.ids[k], "--data-dir", work.appendingPathComponent(Self.ids[k]).path,
                             "--cluster-id", "client-test", "--peer-listen", "127.0.0.1:\(base + 2000 + k)",
                             "--client-listen", "127.0.0.1:\(resp(k))", "--admin-listen", "127.0.0.1:\(base + 1000 + k)",
                             "--peers", peers, "--election-ticks", "10",
                             "--admin-token-file", work.appendingPathComponent("admin-token").path,
                             "--initial-cluster-state", "new"] + extra(k)
        let log = try FileHandle(forWritingTo: {
            let url = work.appendingPathComponent("\(Self.ids[k]).log")
            FileManager.default.createFile(atPath: url.path, contents: nil)
            return url
        }())
        process.standardOutput = log
        process.standardError = log
        try process.run()
        lock.withLock { processes[k] = process }
    }

    /// SIGKILLs the node whose RESP port is `port`.
    func kill(respPort port: Int) {
        guard let k = (0 ..< 3).first(where: { resp($0) == port }) else { return }
        let process = lock.withLock { processes.removeValue(forKey: k) }
        guard let process, process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stopAll() {
        let all = lock.withLock { () -> [Process] in
            defer { processes.removeAll() }
            return Array(processes.values)
        }
        for process in all where process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: work)
    }

    /// The RESP port of the node that says it is the leader, if one does.
    func leaderPort() async -> Int? {
        for k in 0 ..< 3 {
            let endpoint = AegisEndpoint(host: "127.0.0.1", port: resp(k))
            var configuration = AegisClientConfiguration(endpoints: [endpoint])
            configuration.followLeader = false
            configuration.retryWindow = .milliseconds(200)
            guard let probe = try? AegisClient(configuration: configuration) else { continue }
            defer { Task { await probe.shutdown() } }
            if let info = try? await probe.send(["INFO", "replication"], kind: .read).text, info.contains("role:master") {
                return resp(k)
            }
        }
        return nil
    }
}

/// `AegisClient` against a real three-node cluster.
@Suite(.serialized) struct ClientClusterTests {
    @Test(.enabled(if: ProcessCluster.executable() != nil, "aegis is not built (swift build --build-tests)"))
    func test_leaderKillDuringIncrements_countsEachExactlyOnce() async throws {
        let cluster = try ProcessCluster(aegis: try #require(ProcessCluster.executable()))
        defer { cluster.stopAll() }
        var configuration = AegisClientConfiguration(endpoints: (0 ..< 3).map {
            AegisEndpoint(host: "127.0.0.1", port: cluster.resp($0))
        })
        configuration.requestTimeout = .seconds(2)
        configuration.retryWindow = .seconds(30)
        let client = try AegisClient(configuration: configuration)
        // The cluster is up once a write goes through.
        try await client.set("ready", "1")
        // Eight tasks increment concurrently (pipelined over the pooled connections);
        // the leader is SIGKILLed while increments are in flight.
        let workers = 8, perWorker = 50, killAfter = 120
        let done = Counter()
        async let killer: Bool = {
            while done.value < killAfter { try? await Task.sleep(for: .milliseconds(5)) }
            guard let leader = await cluster.leaderPort() else { return false }
            cluster.kill(respPort: leader)
            return true
        }()
        let values = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for _ in 0 ..< workers {
                group.addTask {
                    var seen: [Int64] = []
                    for _ in 0 ..< perWorker {
                        seen.append(try await client.incr("counter"))
                        done.increment()
                    }
                    return seen
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let killed = await killer
        let increments = workers * perWorker
        // Each reply is a distinct count: no increment applied twice, none lost.
        #expect(values.sorted() == (1 ... Int64(increments)).map { $0 })
        #expect(killed)
        #expect(try await client.getString("counter") == String(increments))
        let statistics = client.statistics
        #expect(statistics.retries > 0, "the leader kill should have made the client retry")
        #expect(statistics.sessionsOpened == 1)
        // Typed commands of every type against the surviving nodes.
        #expect(try await client.sadd("s", [Array("a".utf8), Array("b".utf8)]) == 2)
        #expect(try await client.smembers("s") == [Array("a".utf8), Array("b".utf8)])
        #expect(try await client.hset("h", [(Array("f".utf8), Array("1".utf8))]) == 1)
        #expect(try await client.hincrby("h", Array("f".utf8), by: 4) == 5)
        #expect(try await client.type("h") == "hash")
        await #expect(throws: AegisClientError.self) { try await client.incr("h") }  // WRONGTYPE
        let replies = try await client.pipeline([["SET", "p", "1"], ["INCR", "p"], ["GET", "p"]])
        #expect(replies.last?.text == "2")
        // Expiry, the keyspace and transactions.
        try await client.set("temp", Array("x".utf8), expiresIn: .seconds(60))
        let left = try #require(try await client.timeToLive("temp"))
        #expect(left > .seconds(50) && left <= .seconds(60))
        #expect(try await client.persist("temp"))
        #expect(try await client.timeToLive("temp") == nil)
        try await client.rename("temp", to: "kept")
        #expect(Set(try await client.keys(matching: "k*").map { String(decoding: $0, as: UTF8.self) }) == ["kept"])
        let results = try await client.transaction([["INCR", "tx"], ["INCR", "tx"], ["GET", "tx"]])
        #expect(results == [.integer(1), .integer(2), .bulk("2")])
        await client.shutdown()
    }
}

/// `AegisClient` over TLS, with a password, against a real cluster.
@Suite(.serialized) struct ClientTLSTests {
    @Test(.enabled(if: ProcessCluster.executable() != nil, "aegis is not built (swift build --build-tests)"))
    func test_tlsAndPassword() async throws {
        let aegis = try #require(ProcessCluster.executable())
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("aegis-client-tls-\(UUID().uuidString)")
        let certs = work.appendingPathComponent("certs").path
        let create = Process()
        create.executableURL = URL(fileURLWithPath: aegis)
        create.arguments = ["certs", "create", "--out", certs, "--nodes", "n1,n2,n3"]
        create.standardOutput = FileHandle.nullDevice
        try create.run()
        create.waitUntilExit()
        #expect(create.terminationStatus == 0)
        let cluster = try ProcessCluster(aegis: aegis, base: 7481, extra: { k in
            let id = ProcessCluster.ids[k]
            return ["--tls-ca", "\(certs)/ca/ca.pem", "--tls-cert", "\(certs)/\(id)/\(id).pem",
                    "--tls-key", "\(certs)/\(id)/\(id)-key.pem", "--password", "s3cret"]
        }, work: work)
        defer { cluster.stopAll() }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file("\(certs)/ca/ca.pem")
        var configuration = AegisClientConfiguration(endpoints: (0 ..< 3).map { AegisEndpoint(host: "127.0.0.1", port: cluster.resp($0)) },
                                                     tls: tls, password: "s3cret")
        configuration.retryWindow = .seconds(30)
        let client = try AegisClient(configuration: configuration)
        try await client.set("secure", "yes")
        #expect(try await client.getString("secure") == "yes")
        #expect(try await client.incr("n") == 1)
        // A watch authenticates and reads over TLS too.
        var changes = client.watch(prefix: "secure", from: 1).makeAsyncIterator()
        let first = try await changes.next()
        #expect(first?.event == "set" && first?.argument == Array("yes".utf8))
        await client.shutdown()
        // The wrong password is refused on every node: nothing is reachable.
        configuration.password = "wrong"
        configuration.retryWindow = .milliseconds(300)
        let refused = try AegisClient(configuration: configuration)
        await #expect(throws: AegisClientError.self) { try await refused.get("secure") }
        await refused.shutdown()
        // Plain TCP to a TLS port fails too.
        configuration.tls = nil
        configuration.password = "s3cret"
        let plain = try AegisClient(configuration: configuration)
        await #expect(throws: AegisClientError.self) { try await plain.get("secure") }
        await plain.shutdown()
    }
}

/// A thread-safe counter for the test's tasks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment() { lock.withLock { count += 1 } }
}
