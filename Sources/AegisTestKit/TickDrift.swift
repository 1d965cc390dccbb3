public import AegisRaft

/// Which read path the simulated nodes use.
public enum SimulatedReadMode: String, Sendable, CaseIterable {
    /// ReadIndex with a heartbeat round for every batch of reads.
    case safe
    /// Lease reads (`ReadOnlyOption.leaseBased`) wherever check-quorum is on.
    case lease
    /// Lease reads on odd seeds, safe reads on even ones (the default).
    case mixed

    /// `true` if a run with this seed uses lease reads (check-quorum permitting).
    public func usesLease(seed: UInt64) -> Bool {
        switch self {
        case .safe: return false
        case .lease: return true
        case .mixed: return seed % 2 == 1
        }
    }
}

/// Per-node clock rates of a simulation: every node ticks with its own period, up to
/// `maxDriftPercent` longer or shorter than the true tick. A node's rate wanders: it
/// is drawn again every 20 to 200 of its ticks (load that comes and goes, a clock
/// being slewed), so a node that won an election because its clock ran fast can run
/// slow while it leads — the case that ends a lease too late (the fastest clock
/// would otherwise nearly always win, and hide it). Half the draws sit at one of the
/// two extremes, the others anywhere between. Periods are kept in thousandths of
/// a time unit and the remainders carried, so a drift finer than one time unit per
/// tick still adds up.
public struct TickDrift: Sendable {
    /// Each node's current tick period, in thousandths of a time unit, by node index.
    public private(set) var periods: [UInt64] = []
    private var carry: [UInt64] = []
    /// Ticks left before each node's rate is drawn again.
    private var ticksLeft: [Int] = []
    private var rng: SplitMix64
    private let tickUnits: UInt64
    private let boundPermille: UInt64

    /// Prepares the periods for nodes by index, drawn from `seed` (its own generator,
    /// so that the rest of the run's draws are the same whatever the drift); nodes
    /// added later draw theirs when they first tick.
    public init(nodes: Int, tickUnits: UInt64, maxDriftPercent: Int, seed: UInt64) {
        rng = SplitMix64(seed: seed ^ 0xD81F_7C0C_4B1E_55A3)
        self.tickUnits = tickUnits
        boundPermille = UInt64(min(max(maxDriftPercent, 0), 99)) * 10
        for _ in 0..<max(nodes, 0) { addNode() }
    }

    private mutating func addNode() {
        periods.append(drawPeriod())
        carry.append(0)
        ticksLeft.append(drawLifetime())
    }

    private mutating func drawPeriod() -> UInt64 {
        let bound = boundPermille
        let offset: Int64
        if bound == 0 {
            offset = 0
        } else if rng.next() % 2 == 0 {
            offset = rng.next() % 2 == 0 ? Int64(bound) : -Int64(bound)
        } else {
            offset = Int64(rng.next() % (2 * bound + 1)) - Int64(bound)
        }
        return UInt64(Int64(tickUnits) * (1_000 + offset))
    }

    private mutating func drawLifetime() -> Int { 20 + Int(rng.next() % 181) }

    /// Time units until node `k`'s next tick (at least 1).
    public mutating func nextInterval(node k: Int) -> UInt64 {
        guard k >= 0 else { return tickUnits }
        while periods.count <= k { addNode() }
        ticksLeft[k] -= 1
        if ticksLeft[k] <= 0 && boundPermille > 0 {
            periods[k] = drawPeriod()
            ticksLeft[k] = drawLifetime()
        }
        let total = carry[k] + periods[k]
        carry[k] = total % 1_000
        return max(total / 1_000, 1)
    }

    /// The periods as drift in permille, for reports.
    public func driftPermille(tickUnits: UInt64) -> [Int] {
        periods.map { Int($0 / max(tickUnits, 1)) - 1_000 }
    }
}
