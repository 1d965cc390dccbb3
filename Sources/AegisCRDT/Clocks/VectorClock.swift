/// How two clocks (or the events they stand for) are related by causality.
public enum CausalOrder: Sendable, Hashable, CustomStringConvertible {
    /// The left clock happened before the right one (the right has seen it).
    case before
    /// The left clock happened after the right one (it has seen the right one).
    case after
    /// The clocks are identical.
    case equal
    /// Neither has seen the other: the events are concurrent, a potential conflict.
    case concurrent

    public var description: String {
        switch self {
        case .before: "before"
        case .after: "after"
        case .equal: "equal"
        case .concurrent: "concurrent"
        }
    }
}

/// A vector clock: for each replica, how many of its events are known.
///
/// A vector clock is also a state-based CRDT: ``merge(_:)`` takes the entry-wise
/// maximum, and ``increment(_:)`` is an inflation.
///
/// ## Pruning
///
/// Clocks grow by one entry per replica that ever wrote. ``prune(retired:stable:)``
/// removes an entry only when both hold:
/// 1. the replica is *retired* (removed from the membership, it will never write
///    again), and
/// 2. its counter is *causally stable*: it is at or below the same entry of `stable`,
///    the entry-wise minimum of the latest clocks acknowledged by every live replica
///    (see ``stableCut(of:)``).
///
/// After (2) every clock a live replica will ever produce already includes every
/// event of the retired replica, so the entry can no longer tell two future clocks
/// apart. Clocks must be compared with clocks pruned under the same rule: prune a
/// stored clock with the same inputs before comparing it with a pruned one. There is
/// deliberately no size-based (lossy) pruning: dropping an entry that is not stable
/// can turn "after" into "before" and silently lose a write.
public struct VectorClock: Hashable, Sendable, CustomStringConvertible {
    /// The known event count of each replica.
    ///
    /// Invariant: no entry is 0 (an absent replica has count 0).
    public private(set) var entries: [ReplicaID: UInt64]

    /// Creates an empty clock (no events seen).
    public init() { entries = [:] }

    /// Creates a clock from counts; zero counts are dropped.
    public init(_ entries: [ReplicaID: UInt64]) {
        self.entries = entries.filter { $0.value > 0 }
    }

    /// The number of `replica`'s events this clock has seen (0 if none).
    public subscript(replica: ReplicaID) -> UInt64 { entries[replica] ?? 0 }

    /// Whether no event has been seen.
    public var isEmpty: Bool { entries.isEmpty }

    /// Records a new event of `replica` and returns its dot.
    @discardableResult
    public mutating func increment(_ replica: ReplicaID) throws(CRDTError) -> Dot {
        let current = self[replica]
        guard current < UInt64.max else {
            throw CRDTError(.overflow, "vector clock entry of \(replica) is at its maximum; retire the replica ID and use a new one")
        }
        entries[replica] = current + 1
        return Dot(replica: replica, counter: current + 1)
    }

    /// Whether the event `dot` is included in this clock.
    public func contains(_ dot: Dot) -> Bool { dot.counter <= self[dot.replica] }

    /// How this clock relates to `other`.
    public func compare(to other: VectorClock) -> CausalOrder {
        var selfAhead = false
        var otherAhead = false
        var shared = 0
        for (replica, count) in entries {
            let theirs = other[replica]
            if theirs > 0 { shared += 1 }
            if count > theirs { selfAhead = true } else if count < theirs { otherAhead = true }
            if selfAhead && otherAhead { return .concurrent }
        }
        // Entries of `other` for replicas this clock has never heard of.
        if other.entries.count > shared { otherAhead = true }
        switch (selfAhead, otherAhead) {
        case (false, false): return .equal
        case (true, false): return .after
        case (false, true): return .before
        case (true, true): return .concurrent
        }
    }

    /// Whether this clock has seen every event `other` has seen.
    public func dominates(_ other: VectorClock) -> Bool {
        let order = compare(to: other)
        return order == .after || order == .equal
    }

    /// Removes the entries of retired replicas that are causally stable; returns the
    /// replicas whose entries were removed. See "Pruning" above for the rule.
    @discardableResult
    public mutating func prune(retired: Set<ReplicaID>, stable: VectorClock) -> [ReplicaID] {
        var removed: [ReplicaID] = []
        for replica in retired {
            guard let count = entries[replica], count <= stable[replica] else { continue }
            entries[replica] = nil
            removed.append(replica)
        }
        return removed.sorted()
    }

    /// The entry-wise minimum of `clocks`: the events every one of them has seen.
    /// Pass the latest clock acknowledged by each live replica to get the stable cut.
    public static func stableCut(of clocks: some Sequence<VectorClock>) -> VectorClock {
        var iterator = clocks.makeIterator()
        guard var cut = iterator.next()?.entries else { return VectorClock() }
        while let clock = iterator.next() {
            for (replica, count) in cut {
                let theirs = clock[replica]
                cut[replica] = theirs == 0 ? nil : min(count, theirs)
            }
        }
        return VectorClock(cut)
    }

    public var description: String {
        let parts = entries.sorted { $0.key < $1.key }.map { "\($0.key.rawValue):\($0.value)" }
        return "[" + parts.joined(separator: ", ") + "]"
    }
}

extension VectorClock: StateBasedCRDT {
    /// Takes the entry-wise maximum.
    public mutating func merge(_ other: VectorClock) {
        for (replica, count) in other.entries where count > self[replica] {
            entries[replica] = count
        }
    }

    public static var encodingTag: EncodingTag { .vectorClock }

    /// Count, then (replica, count) pairs sorted by replica, counts ≥ 1.
    public func encodeBody(to writer: inout BinaryWriter) {
        writer.writeSorted(entries) { writer, count in writer.writeVarint(count) }
    }

    public init(decodingBody reader: inout BinaryReader) throws(CRDTError) {
        entries = try reader.readSorted("vector clock", minimumEntrySize: 2) { reader throws(CRDTError) in
            try reader.readPositiveVarint("vector clock entry")
        }
    }
}
