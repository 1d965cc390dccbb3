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
    /// Mean time units between membership changes (0: none).
    public var membershipInterval: UInt64 = 0
    /// Mean time units between leadership transfers (0: none).
    public var transferInterval: UInt64 = 0
    /// Mean time units between register operations (reads, writes, compare-and-sets).
    public var clientInterval: UInt64 = 0
    /// Applied entries between snapshots (0: never).
    public var snapshotThreshold: UInt64 = 0
    /// Entries kept behind a snapshot.
    public var snapshotTrailing: UInt64 = 0

    /// Draws a profile.
    public static func draw(_ rng: inout SplitMix64) -> FaultProfile {
        func unit(_ rng: inout SplitMix64) -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        let minDelay = 1 + rng.next() % 5
        var profile = FaultProfile(
            lossRate: unit(&rng) * 0.3,
            duplicateRate: unit(&rng) * 0.5,
            minDelay: minDelay,
            maxDelay: minDelay + rng.next() % 40,
            partitionInterval: rng.next() % 4 == 0 ? 0 : 500 + rng.next() % 3000,
            crashInterval: rng.next() % 4 == 0 ? 0 : 500 + rng.next() % 3000,
            maxDiskDelay: rng.next() % 20,
            proposalInterval: 2 + rng.next() % 30)
        profile.membershipInterval = rng.next() % 4 == 0 ? 0 : 300 + rng.next() % 1_500
        profile.transferInterval = rng.next() % 3 == 0 ? 0 : 400 + rng.next() % 2_000
        profile.clientInterval = 8 + rng.next() % 40
        profile.snapshotThreshold = rng.next() % 5 == 0 ? 0 : 10 + rng.next() % 150
        profile.snapshotTrailing = rng.next() % 20
        return profile
    }

    public var description: String {
        let loss = Int(lossRate * 100), dup = Int(duplicateRate * 100)
        return "loss \(loss)% dup \(dup)% delay \(minDelay)-\(maxDelay) partition/\(partitionInterval) crash/\(crashInterval) disk<=\(maxDiskDelay) propose/\(proposalInterval) member/\(membershipInterval) transfer/\(transferInterval) client/\(clientInterval) snapshot/\(snapshotThreshold)+\(snapshotTrailing)"
    }
}
