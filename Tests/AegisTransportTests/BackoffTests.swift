import AegisRaft
import AegisTransport
import Testing

@Suite struct BackoffTests {
    @Test func test_backoff_growsExponentiallyUpToTheCap() {
        let backoff = Backoff(initial: .milliseconds(50), maximum: .seconds(2), multiplier: 2)
        #expect(backoff.nominalDelay(afterFailures: 1) == .milliseconds(50))
        #expect(backoff.nominalDelay(afterFailures: 2) == .milliseconds(100))
        #expect(backoff.nominalDelay(afterFailures: 6) == .milliseconds(1600))
        #expect(backoff.nominalDelay(afterFailures: 7) == .seconds(2))
        #expect(backoff.nominalDelay(afterFailures: 10_000) == .seconds(2))
    }

    @Test func test_backoff_jitterStaysInTheUpperHalfAndVaries() {
        let backoff = Backoff()
        var rng = SplitMix64(seed: 42)
        var seen = Set<Duration>()
        for failures in 1...12 {
            let nominal = backoff.nominalDelay(afterFailures: failures)
            for _ in 0..<50 {
                let delay = backoff.delay(afterFailures: failures, using: &rng)
                #expect(delay >= nominal / 2 && delay <= nominal)
                seen.insert(delay)
            }
        }
        #expect(seen.count > 100)
    }

    @Test func test_backoff_sameSeedSameDelays() {
        let backoff = Backoff()
        var first = SplitMix64(seed: 9)
        var second = SplitMix64(seed: 9)
        let a = (1...20).map { backoff.delay(afterFailures: $0, using: &first) }
        let b = (1...20).map { backoff.delay(afterFailures: $0, using: &second) }
        #expect(a == b)
    }
}
