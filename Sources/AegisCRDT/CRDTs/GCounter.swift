/// A grow-only counter: each replica counts its own increments; the value is the sum.
///
/// State: one count per replica. Join: entry-wise maximum. Increments return a delta
/// holding only the incremented replica's new count.
public struct GCounter: StateBasedCRDT, Hashable, CustomStringConvertible {
    /// Each replica's increments.
    ///
    /// Invariant: no entry is 0.
    public private(set) var counts: [ReplicaID: UInt64]

    /// Creates a counter at zero.
    public init() { counts = [:] }

    /// The total of all increments, saturating at `UInt64.max`.
    public var value: UInt64 {
        var total: UInt64 = 0
        for count in counts.values {
            let (sum, overflow) = total.addingReportingOverflow(count)
            if overflow { return .max }
            total = sum
        }
        return total
    }

    /// The exact total as a 128-bit number split in two words.
    var wideValue: (high: UInt64, low: UInt64) {
        var high: UInt64 = 0
        var low: UInt64 = 0
        for count in counts.values {
            let (sum, overflow) = low.addingReportingOverflow(count)
            low = sum
            if overflow { high += 1 }
        }
        return (high, low)
    }

    /// The increments made at `replica`.
    public func count(of replica: ReplicaID) -> UInt64 { counts[replica] ?? 0 }

    /// Adds `amount` at `replica` and returns the delta to ship.
    @discardableResult
    public mutating func increment(by amount: UInt64 = 1, at replica: ReplicaID) throws(CRDTError) -> GCounter {
        var delta = GCounter()
        guard amount > 0 else { return delta }
        let (sum, overflow) = count(of: replica).addingReportingOverflow(amount)
        guard !overflow else {
            throw CRDTError(.overflow, "increment by \(amount) at \(replica) overflows its 64-bit count \(count(of: replica))")
        }
        counts[replica] = sum
        delta.counts[replica] = sum
        return delta
    }

    /// Takes the entry-wise maximum.
    public mutating func merge(_ other: GCounter) {
        for (replica, count) in other.counts where count > self.count(of: replica) {
            counts[replica] = count
        }
    }

    public var description: String { "GCounter(\(value))" }

    public static var encodingTag: EncodingTag { .gCounter }

    /// Count, then (replica, count ≥ 1) pairs sorted by replica.
    public func encodeBody(to writer: inout BinaryWriter) {
        writer.writeSorted(counts) { writer, count in writer.writeVarint(count) }
    }

    public init(decodingBody reader: inout BinaryReader) throws(CRDTError) {
        counts = try reader.readSorted("G-counter", minimumEntrySize: 2) { reader throws(CRDTError) in
            try reader.readPositiveVarint("G-counter entry")
        }
    }
}

/// A counter that goes up and down: two grow-only counters, one for increments and
/// one for decrements; the value is their difference.
public struct PNCounter: StateBasedCRDT, Hashable, CustomStringConvertible {
    /// The increments.
    public private(set) var increments: GCounter
    /// The decrements.
    public private(set) var decrements: GCounter

    /// Creates a counter at zero.
    public init() {
        increments = GCounter()
        decrements = GCounter()
    }

    /// Increments minus decrements, clamped to the range of `Int64`.
    public var value: Int64 {
        let up = increments.wideValue
        let down = decrements.wideValue
        let positive = up.high != down.high ? up.high > down.high : up.low >= down.low
        let (larger, smaller) = positive ? (up, down) : (down, up)
        let (low, borrow) = larger.low.subtractingReportingOverflow(smaller.low)
        let high = larger.high - smaller.high - (borrow ? 1 : 0)
        guard high == 0 else { return positive ? .max : .min }
        if positive { return Int64(clamping: low) }
        return low > UInt64(Int64.max) ? .min : -Int64(low)
    }

    /// Adds `amount` at `replica` and returns the delta to ship.
    @discardableResult
    public mutating func increment(by amount: UInt64 = 1, at replica: ReplicaID) throws(CRDTError) -> PNCounter {
        var delta = PNCounter()
        delta.increments = try increments.increment(by: amount, at: replica)
        return delta
    }

    /// Subtracts `amount` at `replica` and returns the delta to ship.
    @discardableResult
    public mutating func decrement(by amount: UInt64 = 1, at replica: ReplicaID) throws(CRDTError) -> PNCounter {
        var delta = PNCounter()
        delta.decrements = try decrements.increment(by: amount, at: replica)
        return delta
    }

    /// Adds a signed `amount` at `replica` and returns the delta to ship.
    @discardableResult
    public mutating func add(_ amount: Int64, at replica: ReplicaID) throws(CRDTError) -> PNCounter {
        amount >= 0
            ? try increment(by: amount.magnitude, at: replica)
            : try decrement(by: amount.magnitude, at: replica)
    }

    /// Joins both halves.
    public mutating func merge(_ other: PNCounter) {
        increments.merge(other.increments)
        decrements.merge(other.decrements)
    }

    public var description: String { "PNCounter(\(value))" }

    public static var encodingTag: EncodingTag { .pnCounter }

    /// The increments' body, then the decrements' body.
    public func encodeBody(to writer: inout BinaryWriter) {
        increments.encodeBody(to: &writer)
        decrements.encodeBody(to: &writer)
    }

    public init(decodingBody reader: inout BinaryReader) throws(CRDTError) {
        increments = try GCounter(decodingBody: &reader)
        decrements = try GCounter(decodingBody: &reader)
    }
}
