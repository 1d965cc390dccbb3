public import AegisCRDT

// Hash counter fields on an active-active cluster (HINCRBY, issue 17 item 1): a field
// that HINCRBY changed is a PN-counter, like a string counter (ActiveActive.swift),
// so concurrent HINCRBYs in several clusters add up.
//
// - The field's register (the hash's OR-map of LWW registers) keeps its stamp: the
//   *base*. A `HashFieldCounter` holds the value written at that stamp and, per origin
//   cluster, what its HINCRBYs added and took away on top of it.
// - The register's value is always the visible one (base value plus every
//   contribution), recomputed after every join (`settleCounters`), so the tables and
//   every read path see a plain hash; equal stamps with different partial sums are
//   settled the same way in every cluster.
// - A register write (HSET, a moved hash) gives the field a later stamp: the counter on
//   the older base is dropped, as a SET drops a string's counters.
// - HINCRBY on a field never written counts on a "0" at `counterBase`, the same base
//   in every cluster, so concurrent first increments add up. On a removed field (its
//   register is kept by the OR-map), it counts on a "0" written at the HINCRBY's own
//   stamp, so the removed value does not come back; concurrent first increments of a
//   removed field in two clusters are then two register writes, and the later wins.

/// A hash field's PN-counter: the register write it counts on and each origin
/// cluster's contribution.
public struct HashFieldCounter: Sendable, Hashable {
    /// The stamp of the register write the counter counts on.
    public var base: HLCTimestamp
    /// The value that write stored (a decimal integer, or `"0"`).
    public var baseValue: [UInt8]
    /// Each origin cluster's contribution.
    public var contributions: [ReplicaID: CounterContribution]

    /// Creates a counter.
    public init(base: HLCTimestamp, baseValue: [UInt8], contributions: [ReplicaID: CounterContribution] = [:]) {
        self.base = base
        self.baseValue = baseValue
        self.contributions = contributions
    }

    /// The value a client reads: the base plus every contribution (clamped to 64-bit
    /// signed when several clusters' increments pass it together).
    public var visibleValue: [UInt8] {
        var total = Int128(parseDecimalInt64(baseValue) ?? 0)
        for contribution in contributions.values {
            total += Int128(contribution.increments)
            total -= Int128(contribution.decrements)
        }
        return Array(String(Int64(clamping: total)).utf8)
    }

    /// The join: the later base wins whole; on one base, each origin's larger sums.
    func joined(_ other: HashFieldCounter) -> HashFieldCounter {
        if base != other.base { return base < other.base ? other : self }
        var merged = self
        if baseValue != other.baseValue, baseValue.lexicographicallyPrecedes(other.baseValue) {
            merged.baseValue = other.baseValue  // one write per stamp: only a misbehaving peer differs
        }
        for (origin, theirs) in other.contributions {
            merged.contributions[origin] = merged.contributions[origin].map { $0.joined(theirs) } ?? theirs
        }
        return merged
    }
}

extension ActiveActiveCollection {
    /// Drops counters whose base is no longer their field's register stamp, and writes
    /// each remaining counter's visible value into its register.
    mutating func settleCounters() {
        guard !counters.isEmpty else { return }
        guard case .hash(var map) = value else {
            counters = [:]
            return
        }
        for field in counters.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            guard let counter = counters[field], let register = map.storedValue(of: field),
                  register.timestamp == counter.base else {
                counters[field] = nil
                continue
            }
            let visible = counter.visibleValue
            if register.value != visible { map.replaceStoredValue(of: field, with: LWWRegister(visible, at: counter.base)) }
        }
        value = .hash(map)
    }

    /// The counter an HINCRBY of `field` stamped `stamp` counts on (see the file's header).
    func counterForIncrement(of field: [UInt8], stamp: HLCTimestamp) -> HashFieldCounter {
        guard case .hash(let map) = value else { return HashFieldCounter(base: .counterBase, baseValue: Array("0".utf8)) }
        if let register = map[field], let stamp = register.timestamp {
            if let counter = counters[field], counter.base == stamp { return counter }
            return HashFieldCounter(base: stamp, baseValue: register.value ?? Array("0".utf8))
        }
        if map.storedValue(of: field) != nil { return HashFieldCounter(base: stamp, baseValue: Array("0".utf8)) }
        if let counter = counters[field], counter.base == .counterBase { return counter }
        return HashFieldCounter(base: .counterBase, baseValue: Array("0".utf8))
    }
}
