public import AegisRaft

/// The fault rates of one simulated run, drawn from its seed so that every seed
/// explores a different mix.
public struct FaultProfile: Sendable, Hashable, CustomStringConvertible {
    /// Probability that a message is dropped (0–0.3).
    public var lossRate: Double
    /// Probability that a message is delivered twice (0–0.5).
    public var duplicateRate: Double
    /// Message delay range in time units (a tick is `Simulator.tickUnits`); delays
    /// larger than the gap between messages reorder them.
    public var minDelay: UInt64
    public var maxDelay: UInt64
    /// Mean time units between partitions (0: none).
    public var partitionInterval: UInt64
    /// Mean time units between crashes (0: none).
    public var crashInterval: UInt64
    /// Maximum time units a disk write takes (the window in which a crash tears it).
    public var maxDiskDelay: UInt64
    /// Mean time units between client proposals.
    public var proposalInterval: UInt64

    /// Draws a profile.
    public static func draw(_ rng: inout SplitMix64) -> FaultProfile {
        func unit(_ rng: inout SplitMix64) -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        let minDelay = 1 + rng.next() % 5
        return FaultProfile(
            lossRate: unit(&rng) * 0.3,
            duplicateRate: unit(&rng) * 0.5,
            minDelay: minDelay,
            maxDelay: minDelay + rng.next() % 40,
            partitionInterval: rng.next() % 4 == 0 ? 0 : 500 + rng.next() % 3000,
            crashInterval: rng.next() % 4 == 0 ? 0 : 500 + rng.next() % 3000,
            maxDiskDelay: rng.next() % 20,
            proposalInterval: 2 + rng.next() % 30)
    }

    public var description: String {
        let loss = Int(lossRate * 100), dup = Int(duplicateRate * 100)
        return "loss \(loss)% dup \(dup)% delay \(minDelay)-\(maxDelay) partition/\(partitionInterval) crash/\(crashInterval) disk<=\(maxDiskDelay) propose/\(proposalInterval)"
    }
}
