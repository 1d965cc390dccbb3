import AegisRaft

/// The network faults both simulators draw, in one place: which directed links a
/// partition cuts, and when (if at all) a message arrives. Links are keyed
/// `from * 16 + to` (node positions).
enum SimulatedNetwork {
    /// `true` with probability `p`.
    static func chance(_ p: Double, _ rng: inout SplitMix64) -> Bool {
        Double(rng.next() >> 11) / Double(1 << 53) < p
    }

    /// The arrival times of a message sent at `now` on an open link: none (lost), one,
    /// or two (duplicated), with the profile's delays (which reorder messages).
    static func arrivals(at now: UInt64, _ profile: FaultProfile, _ rng: inout SplitMix64) -> [UInt64] {
        if chance(profile.lossRate, &rng) { return [] }
        let spread = profile.maxDelay - profile.minDelay + 1
        let first = now + profile.minDelay + rng.next() % spread
        guard chance(profile.duplicateRate, &rng) else { return [first] }
        return [first, now + profile.minDelay + rng.next() % (spread * 2)]
    }

    /// The links a new partition of `n` nodes cuts: one node isolated both ways, two
    /// random groups split, or some directed links only (asymmetric).
    static func partition(nodes n: Int, _ rng: inout SplitMix64) -> Set<Int> {
        var blocked: Set<Int> = []
        switch rng.next() % 3 {
        case 0:
            let k = Int(rng.next() % UInt64(n))
            for j in 0..<n where j != k {
                blocked.insert(k * 16 + j)
                blocked.insert(j * 16 + k)
            }
        case 1:
            var side = [Bool](repeating: false, count: n)
            for j in 0..<n { side[j] = rng.next() % 2 == 0 }
            for a in 0..<n { for b in 0..<n where side[a] != side[b] { blocked.insert(a * 16 + b) } }
        default:
            for a in 0..<n { for b in 0..<n where a != b && rng.next() % 3 == 0 { blocked.insert(a * 16 + b) } }
        }
        return blocked
    }
}
