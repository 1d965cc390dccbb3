import AegisRaft
import AegisTestKit
import Testing

@Suite struct SimulatorTests {
    // A small slice of the simulator runs with every `swift test`; `.ci/run` and
    // `aegis-sim` run thousands of seeds in release mode.
    @Test(arguments: Array(UInt64(1)...12))
    func test_simulator_seedPassesSafetyAndLiveness(seed: UInt64) {
        var options = SimulationOptions(seed: seed)
        options.ticks = 600
        let result = Simulator(options: options).run()
        #expect(result.violations.isEmpty, "seed \(seed): \(result.violations)")
        #expect(result.livenessFailure == nil, "seed \(seed): \(result.livenessFailure ?? "")")
        #expect(result.unexpectedErrors.isEmpty, "seed \(seed): \(result.unexpectedErrors)")
        #expect(result.commits > 0)
    }

    @Test func test_simulator_sameSeedSameTrace() {
        var options = SimulationOptions(seed: 42)
        options.ticks = 400
        let a = Simulator(options: options).run()
        let b = Simulator(options: options).run()
        #expect(a.traceHash == b.traceHash)
        #expect(a.steps == b.steps)
        options.seed = 43
        let c = Simulator(options: options).run()
        #expect(c.traceHash != a.traceHash)
    }
}
