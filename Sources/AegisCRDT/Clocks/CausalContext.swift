/// The set of dots (events) a replica has seen, stored compactly: a vector clock for
/// the contiguous prefix of each replica's events plus a "dot cloud" for events seen
/// out of order (delta-state CRDTs, Almeida et al. §5).
///
/// The representation is canonical: two contexts holding the same dots are equal
/// field by field and encode to the same bytes.
public struct CausalContext: Hashable, Sendable {
    /// For each replica, the largest `n` such that events `1...n` are all included.
    public private(set) var compact: VectorClock
    /// Included events that are not part of a contiguous prefix.
    ///
    /// Invariant: every dot's counter is greater than `compact[dot.replica] + 1`.
    public private(set) var cloud: Set<Dot>

    /// Creates an empty context.
    public init() {
        compact = VectorClock()
        cloud = []
    }

    /// Creates a context holding exactly `dots`.
    public init(dots: some Sequence<Dot>) {
        self.init()
        cloud = Set(dots)
        normalize()
    }

    /// Whether no dot has been seen.
    public var isEmpty: Bool { compact.isEmpty && cloud.isEmpty }

    /// Whether `dot` has been seen.
    public func contains(_ dot: Dot) -> Bool { compact.contains(dot) || cloud.contains(dot) }

    /// The next unused dot of `replica`: one past the highest counter seen from it.
    public func nextDot(for replica: ReplicaID) throws(CRDTError) -> Dot {
        var highest = compact[replica]
        for dot in cloud where dot.replica == replica { highest = max(highest, dot.counter) }
        guard highest < UInt64.max else {
            throw CRDTError(.overflow, "the event counter of \(replica) is exhausted; use a new replica ID")
        }
        return Dot(replica: replica, counter: highest + 1)
    }

    /// Adds one dot.
    public mutating func insert(_ dot: Dot) {
        guard !contains(dot) else { return }
        if dot.counter == compact[dot.replica] + 1 {
            var clock = compact.entries
            clock[dot.replica] = dot.counter
            compact = VectorClock(clock)
            if !cloud.isEmpty { normalize() }
        } else {
            cloud.insert(dot)
        }
    }

    /// Adds every dot of `other`.
    public mutating func merge(_ other: CausalContext) {
        compact.merge(other.compact)
        if !other.cloud.isEmpty { cloud.formUnion(other.cloud) }
        if !cloud.isEmpty { normalize() }
    }

    /// Marks every dot of each replica up to `frontier[replica]` as seen (garbage
    /// collection under causal stability): the caller guarantees that every such dot
    /// that could ever reach this context is already in it, so the claim changes no
    /// join's result, and the cloud of out-of-order dots below the frontier folds into
    /// the compact clock. Returns `true` when the context changed.
    @discardableResult
    public mutating func fill(through frontier: [ReplicaID: UInt64]) -> Bool {
        var clock = compact.entries
        var changed = false
        for (replica, counter) in frontier where counter > (clock[replica] ?? 0) {
            clock[replica] = counter
            changed = true
        }
        guard changed else { return false }
        compact = VectorClock(clock)
        normalize()
        return true
    }

    /// Restores the invariant: folds cloud dots that extend a contiguous prefix into
    /// `compact` and drops cloud dots already covered by it.
    private mutating func normalize() {
        var clock = compact.entries
        var remaining: Set<Dot> = []
        for dot in cloud.sorted() {
            let prefix = clock[dot.replica] ?? 0
            if dot.counter <= prefix { continue }
            if dot.counter == prefix + 1 {
                clock[dot.replica] = dot.counter
            } else {
                remaining.insert(dot)
            }
        }
        // A later dot may have become contiguous only after an earlier one was folded;
        // the sorted pass folds in counter order, so one pass suffices per replica.
        compact = VectorClock(clock)
        cloud = remaining
    }

    /// Writes the compact clock, then the cloud's dots in ``Dot`` order.
    func encode(to writer: inout BinaryWriter) {
        compact.encodeBody(to: &writer)
        writer.writeDots(cloud.sorted())
    }

    /// Reads a context written by ``encode(to:)`` and checks its invariant.
    init(from reader: inout BinaryReader) throws(CRDTError) {
        compact = try VectorClock(decodingBody: &reader)
        let start = reader.position
        let dots = try reader.readDots("causal context cloud")
        for dot in dots where dot.counter <= compact[dot.replica] + 1 {
            throw CRDTError(.malformed, "causal context at byte \(start) lists dot \(dot) in its cloud although it extends or lies in the contiguous prefix")
        }
        cloud = Set(dots)
    }
}

extension BinaryWriter {
    /// Writes dots that are already sorted in ``Dot`` order.
    mutating func writeDots(_ dots: [Dot]) {
        writeCount(dots.count)
        for dot in dots {
            writeReplica(dot.replica)
            writeVarint(dot.counter)
        }
    }

    /// Writes one dot.
    mutating func writeDot(_ dot: Dot) {
        writeReplica(dot.replica)
        writeVarint(dot.counter)
    }
}

extension BinaryReader {
    /// Reads one dot (counter ≥ 1).
    mutating func readDot() throws(CRDTError) -> Dot {
        let replica = try readReplica()
        return Dot(replica: replica, counter: try readPositiveVarint("dot counter"))
    }

    /// Reads dots and checks they are in strictly increasing ``Dot`` order.
    mutating func readDots(_ what: String) throws(CRDTError) -> [Dot] {
        let count = try readCount(minimumItemSize: 2)
        var dots: [Dot] = []
        dots.reserveCapacity(count)
        for _ in 0..<count {
            let start = position
            let dot = try readDot()
            if let last = dots.last, !(last < dot) {
                throw CRDTError(.malformed, "\(what) dots are not in strictly increasing order at byte \(start)")
            }
            dots.append(dot)
        }
        return dots
    }
}
