import AegisCluster
import AegisRaft
import Testing

@Suite struct FailureDetectorTests {
    static func at(_ milliseconds: Int) -> ClusterInstant { ClusterInstant(sinceOrigin: .milliseconds(milliseconds)) }

    @Test func test_phi_growsWithSilence() throws {
        var detector = FailureDetector(heartbeatInterval: .seconds(1), failureTimeout: .seconds(10))
        for second in 0 ... 20 { detector.heartbeat(from: "n", at: Self.at(second * 1000)) }
        let last = 20_000
        let phis = try [0, 500, 1000, 1500, 2000, 3000].map { try #require(detector.phi(of: "n", at: Self.at(last + $0))) }
        #expect(phis == phis.sorted())
        #expect(phis[0] < 0.1 && phis[2] < 1)  // on time: no suspicion
        #expect(detector.verdict(on: "n", at: Self.at(last + 1000)) == .alive)
        #expect(detector.verdict(on: "n", at: Self.at(last + 3000)) == .suspect)
        #expect(detector.verdict(on: "n", at: Self.at(last + 10_000)) == .down)
        #expect(detector.phi(of: "unknown", at: .zero) == nil && detector.verdict(on: "unknown", at: .zero) == .alive)
    }

    @Test func test_phi_adaptsToJitteryHeartbeats() {
        var steady = FailureDetector(heartbeatInterval: .seconds(1), failureTimeout: .seconds(30))
        var jittery = steady
        var t = 0, u = 0
        for i in 0 ..< 50 {
            steady.heartbeat(from: "n", at: Self.at(t))
            jittery.heartbeat(from: "n", at: Self.at(u))
            t += 1000
            u += i % 2 == 0 ? 200 : 1800  // same mean, large deviation
        }
        let silence = 2500
        let steadyPhi = steady.phi(of: "n", at: Self.at(t - 1000 + silence)) ?? 0
        let jitteryPhi = jittery.phi(of: "n", at: Self.at(u - 200 + silence)) ?? 0
        #expect(steadyPhi > 8 && jitteryPhi < 8, "steady \(steadyPhi), jittery \(jitteryPhi)")
    }

    @Test func test_watch_detectsANodeThatNeverSpeaks() {
        var detector = FailureDetector(heartbeatInterval: .seconds(1), failureTimeout: .seconds(5))
        detector.watch("n", at: Self.at(0))
        #expect(detector.verdict(on: "n", at: Self.at(1000)) == .alive)
        #expect(detector.verdict(on: "n", at: Self.at(4000)) == .suspect)
        #expect(detector.verdict(on: "n", at: Self.at(5000)) == .down)
        detector.forget("n")
        #expect(detector.verdict(on: "n", at: Self.at(9000)) == .alive)
    }

    @Test func test_heartbeat_ignoresOutagesAndOldHeartbeats() {
        var detector = FailureDetector(heartbeatInterval: .seconds(1), failureTimeout: .seconds(5))
        for second in 0 ... 10 { detector.heartbeat(from: "n", at: Self.at(second * 1000)) }
        detector.heartbeat(from: "n", at: Self.at(5000))  // late delivery of an old heartbeat
        #expect(detector.silence(of: "n", at: Self.at(10_000)) == .zero)
        let before = detector.phi(of: "n", at: Self.at(12_500)) ?? 0
        detector.heartbeat(from: "n", at: Self.at(60_000))  // back after an outage
        let after = detector.phi(of: "n", at: Self.at(62_500)) ?? 0
        #expect(abs(before - after) < 1e-9)  // the outage was not learnt as an interval
    }

    @Test func test_acceptablePause_delaysSuspicion() {
        var strict = FailureDetector(heartbeatInterval: .seconds(1), failureTimeout: .seconds(30))
        var tolerant = FailureDetector(heartbeatInterval: .seconds(1), failureTimeout: .seconds(30),
                                       config: FailureDetectorConfig(acceptablePause: .seconds(3)))
        for second in 0 ... 10 {
            strict.heartbeat(from: "n", at: Self.at(second * 1000))
            tolerant.heartbeat(from: "n", at: Self.at(second * 1000))
        }
        #expect(strict.verdict(on: "n", at: Self.at(14_000)) == .suspect)
        #expect(tolerant.verdict(on: "n", at: Self.at(14_000)) == .alive)
    }
}
