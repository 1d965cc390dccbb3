import AegisOperations
@testable import aegis
import Foundation
import Testing

/// Two one-node `aegis serve` clusters on loopback: a primary and its standby (write
/// lease 1 s). Ports from 17410 (RESP +0, admin +10, peer +20; the standby at +1).
final class DRPair: @unchecked Sendable {
    static let token = "dr-orchestrator-test-token"
    let aegis: String
    let work: URL
    let primaryRegion = "us-east-1", drRegion = "us-west-2"
    private var processes: [Int: Process] = [:]
    private let lock = NSLock()

    /// The built `aegis`, next to the test bundle.
    static func executable() -> String? {
        guard let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        let path = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("aegis").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    func admin(_ k: Int) -> String { "127.0.0.1:\(17420 + k)" }
    var regions: [String: String] { [primaryRegion: admin(0), drRegion: admin(1)] }

    init(aegis: String) throws {
        self.aegis = aegis
        work = FileManager.default.temporaryDirectory.appendingPathComponent("aegis-dr-orchestrator-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try (Self.token + "\n").write(to: work.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        try start(0, cluster: primaryRegion, extra: [])
        try start(1, cluster: drRegion, extra: ["--standby-of", admin(0), "--dr-lease", "1s"])
    }

    private func start(_ k: Int, cluster: String, extra: [String]) throws {
        let process = try startOneNodeCluster(aegis: aegis, work: work, cluster: cluster, resp: 17410 + k, admin: admin(k),
                                              peer: 17430 + k, extra: extra)
        lock.withLock { processes[k] = process }
    }

    func signal(_ k: Int, _ number: Int32) {
        guard let process = lock.withLock({ processes[k] }), process.isRunning else { return }
        kill(process.processIdentifier, number)
        if number == SIGKILL { process.waitUntilExit() }
    }

    func stopAll() {
        for k in [0, 1] {
            signal(k, SIGCONT)
            signal(k, SIGKILL)
        }
        try? FileManager.default.removeItem(at: work)
    }

    /// The library's access to the admin APIs (plain HTTP on loopback, the pair's token).
    var access: AdminAccess { AdminAccess(token: Self.token) }

    func role(_ k: Int) async throws -> String {
        try await access.drDocument(admin(k)).role
    }

    /// Waits until the standby follows the primary and the primary takes writes.
    func waitReady() async throws {
        // Generous: under the full parallel test run on a loaded machine starting two
        // processes can take long.
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if (try? await role(1)) == "standby",
               let (host, port) = try? parseAddress(admin(0)),
               let probe = try? await AdminHTTPClient.send(method: "GET", host: host, port: port, path: "/primary",
                                                           headers: [], body: nil, tls: nil, timeout: .seconds(2)),
               probe.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let logs = [primaryRegion, drRegion].map { cluster in
            let text = (try? String(contentsOf: work.appendingPathComponent("\(cluster).log"), encoding: .utf8)) ?? ""
            return "\(cluster): " + text.split(separator: "\n").suffix(5).joined(separator: " | ")
        }
        throw ToolError("the DR pair did not come up; " + logs.joined(separator: "; "))
    }
}

@Suite(.serialized) struct DrOrchestratorExampleTests {
    /// The seed's "Disaster Recovery" example, Swift-cased, over a real primary and standby.
    @Test(.enabled(if: DRPair.executable() != nil, "aegis is not built (swift build --build-tests)"))
    func test_seedDisasterRecoveryExample_executeFailover() async throws {
        let pair = try DRPair(aegis: try #require(DRPair.executable()))
        defer { pair.stopAll() }
        try await pair.waitReady()
        pair.signal(0, SIGKILL)  // the primary region is lost

        // --- the seed's example ---
        let config = DrConfig(primaryRegion: "us-east-1", drRegion: "us-west-2", rtoSeconds: 300, rpoSeconds: 60,
                              enableAutoFailover: false)
        let orchestrator = DrOrchestrator(config, regions: pair.regions, access: pair.access)
        // Execute DR failover
        let result = try await orchestrator.executeFailover()
        print("DR failover complete: \(result.oldPrimary) -> \(result.newPrimary) in \(result.rtoAchievedSeconds)s")
        // --- end of the example ---

        #expect(result.oldPrimary == "us-east-1" && result.newPrimary == "us-west-2")
        // The promotion waits out the 1 s write lease: the RTO is at least that, and within the objective.
        #expect(result.rtoAchievedSeconds >= 1 && result.rtoMet && result.epoch == 1)
        #expect(try await pair.role(1) == "primary")
        // A second failover finds no standby to promote.
        await #expect(throws: AdminAPIError.self) { try await orchestrator.executeFailover() }
    }

    /// `enableAutoFailover`: the primary region gone, the DR region is promoted after the
    /// detection time, by itself.
    @Test(.enabled(if: DRPair.executable() != nil, "aegis is not built (swift build --build-tests)"))
    func test_autoFailover_promotesTheStandbyOnceThePrimaryIsGoneForTheDetectionTime() async throws {
        let pair = try DRPair(aegis: try #require(DRPair.executable()))
        defer { pair.stopAll() }
        try await pair.waitReady()
        let config = DrConfig(primaryRegion: "us-east-1", drRegion: "us-west-2", rtoSeconds: 30, rpoSeconds: 60,
                              enableAutoFailover: true, detectionSeconds: 1.5, probeIntervalSeconds: 0.1)
        let orchestrator = DrOrchestrator(config, regions: pair.regions, access: pair.access)
        let watching = Task { try await orchestrator.monitor() }
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await pair.role(1) == "standby")
        let killed = ContinuousClock.now
        pair.signal(0, SIGKILL)
        let result = try #require(try await watching.value)
        let elapsed = DrOrchestrator.seconds(ContinuousClock.now - killed)
        #expect(elapsed >= 1.5 && result.newPrimary == "us-west-2" && result.rtoAchievedSeconds >= 1.5)
        #expect(try await pair.role(1) == "primary")
        // Without enableAutoFailover the monitor does nothing.
        var off = config
        off.enableAutoFailover = false
        #expect(try await DrOrchestrator(off, regions: pair.regions, access: pair.access).monitor() == nil)
    }

    /// Never while the primary region answers: a primary paused (slow) for less than the
    /// detection time, twice, is not replaced.
    @Test(.enabled(if: DRPair.executable() != nil, "aegis is not built (swift build --build-tests)"))
    func test_autoFailover_neverWhileThePrimaryAnswers_evenSlowly() async throws {
        let pair = try DRPair(aegis: try #require(DRPair.executable()))
        defer { pair.stopAll() }
        try await pair.waitReady()
        let config = DrConfig(primaryRegion: "us-east-1", drRegion: "us-west-2", rtoSeconds: 30, rpoSeconds: 60,
                              enableAutoFailover: true, detectionSeconds: 2.5, probeIntervalSeconds: 0.1)
        let orchestrator = DrOrchestrator(config, regions: pair.regions, access: pair.access)
        let watching = Task { try await orchestrator.monitor() }
        for _ in 0 ..< 2 {
            pair.signal(0, SIGSTOP)  // every request to it hangs
            try await Task.sleep(for: .milliseconds(1500))
            pair.signal(0, SIGCONT)
            try await Task.sleep(for: .milliseconds(700))
        }
        try await Task.sleep(for: .seconds(1))
        watching.cancel()
        #expect(try await watching.value == nil)
        #expect(try await pair.role(1) == "standby")
        #expect(try await pair.role(0) == "primary")
    }
}
