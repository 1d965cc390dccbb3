import AegisClient
import Foundation
import Testing

/// `AegisClient.watch` against a real three-node cluster.
@Suite(.serialized) struct ClientWatchTests {
    @Test(.enabled(if: ProcessCluster.executable() != nil, "aegis is not built (swift build --build-tests)"))
    func test_watchAcrossALeaderKill_deliversEveryChangeOnceInOrder() async throws {
        let cluster = try ProcessCluster(aegis: try #require(ProcessCluster.executable()), base: 7501)
        defer { cluster.stopAll() }
        let endpoints = (0 ..< 3).map { AegisEndpoint(host: "127.0.0.1", port: cluster.resp($0)) }
        var configuration = AegisClientConfiguration(endpoints: endpoints)
        configuration.requestTimeout = .seconds(2)
        configuration.retryWindow = .seconds(30)
        let writer = try AegisClient(configuration: configuration)
        try await writer.set("ready", "1")
        // The watch connects to the leader first: the kill breaks its connection.
        let leader = try #require(await cluster.leaderPort())
        var watchConfiguration = configuration
        watchConfiguration.endpoints = endpoints.filter { $0.port == leader } + endpoints.filter { $0.port != leader }
        watchConfiguration.watchBufferEvents = 8  // small: the watch pauses while the consumer lags
        let watcher = try AegisClient(configuration: watchConfiguration)
        let total = 300
        async let collected: [AegisWatchEvent] = {
            var events: [AegisWatchEvent] = []
            for try await event in watcher.watch(prefix: "cfg/", from: 1) {
                events.append(event)
                if events.count % 50 == 0 { try await Task.sleep(for: .milliseconds(50)) }  // a slow consumer
                if event.key == Array("cfg/last".utf8) { break }
            }
            return events
        }()
        for n in 0 ..< total {
            if n == total / 2 { cluster.kill(respPort: leader) }
            try await writer.set("cfg/k\(n % 20)", "v\(n)")
            try await writer.set("other/\(n)", "x")
        }
        try await writer.set("cfg/last", "end")
        let events = try await collected
        let values = events.filter { $0.event == "set" }.compactMap { $0.argument.map { String(decoding: $0, as: UTF8.self) } }
        // Exactly-once writes through the client session: every value once, in the order written.
        #expect(values == (0 ..< total).map { "v\($0)" } + ["end"])
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.index < $1.index })
        #expect(events.allSatisfy { $0.key.starts(with: Array("cfg/".utf8)) })
        #expect(watcher.statistics.watchReconnects > 0, "the watch should have reconnected after the kill")
        await writer.shutdown()
        await watcher.shutdown()
    }
}
