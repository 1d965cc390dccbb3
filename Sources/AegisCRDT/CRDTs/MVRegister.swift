/// A multi-value register: a write replaces every value its writer has seen;
/// concurrent writes are all kept, as *siblings*, until a later write (or a
/// resolution) replaces them.
///
/// Each write is named by a ``Dot`` and the register keeps a ``CausalContext`` of
/// every write it has seen (the dotted-version-vector technique), so a sibling is
/// dropped exactly when some replica wrote after seeing it.
///
/// ## Sibling cap
///
/// ``merge(_:)`` is the lattice join and never drops a live sibling. To bound
/// sibling explosion, call ``merge(_:siblingCap:)`` (or ``trimSiblings(toAtMost:)``)
/// on receipt: when more than `cap` siblings remain, the *oldest* by HLC timestamp
/// (ties: by dot) are discarded as if overwritten. Their dots stay in the causal
/// context, so they never come back from another replica, and they are returned so the
/// caller can record them (for example in a ``ConflictResolver`` audit trail). Trimming
/// is an inflation (the state only moves up), so replicas still converge; a trimmed
/// value is lost on purpose, which is the price of the bound.
public struct MVRegister<Value: CRDTValue>: StateBasedCRDT, Hashable {
    /// One concurrent value.
    public struct Sibling: Hashable, Sendable {
        /// The value written.
        public let value: Value
        /// When the write happened (used to order siblings and to trim the oldest).
        public let timestamp: HLCTimestamp
        /// The write's identity.
        public let dot: Dot
    }

    /// The live writes, by dot.
    ///
    /// Invariant: every key is contained in `context`.
    private var live: [Dot: Entry]
    /// Every write this register has seen, live or overwritten.
    public private(set) var context: CausalContext

    struct Entry: Hashable, Sendable {
        let value: Value
        let timestamp: HLCTimestamp
    }

    /// Creates an empty register.
    public init() {
        live = [:]
        context = CausalContext()
    }

    /// The live siblings, newest first (by timestamp, then dot).
    public var siblings: [Sibling] {
        live.map { Sibling(value: $0.value.value, timestamp: $0.value.timestamp, dot: $0.key) }
            .sorted { Self.isNewer($0, than: $1) }
    }

    /// The live values, newest first.
    public var values: [Value] { siblings.map(\.value) }

    /// Whether concurrent writes are waiting to be resolved.
    public var hasConflict: Bool { live.count > 1 }

    /// Writes `value` at `replica`, replacing every sibling this replica has seen.
    /// Returns the delta to ship.
    @discardableResult
    public mutating func write(_ value: Value, at replica: ReplicaID, timestamp: HLCTimestamp) throws(CRDTError) -> MVRegister {
        let dot = try context.nextDot(for: replica)
        var delta = MVRegister()
        delta.context = CausalContext(dots: Array(live.keys) + [dot])
        delta.live[dot] = Entry(value: value, timestamp: timestamp)
        merge(delta)
        return delta
    }

    /// The lattice join: keeps each sibling that the other side has too or has never
    /// seen; unions the contexts.
    public mutating func merge(_ other: MVRegister) {
        var joined: [Dot: Entry] = [:]
        for (dot, entry) in live {
            if let theirs = other.live[dot] {
                joined[dot] = Self.preferred(entry, theirs)
            } else if !other.context.contains(dot) {
                joined[dot] = entry
            }
        }
        for (dot, entry) in other.live where live[dot] == nil && !context.contains(dot) {
            joined[dot] = entry
        }
        live = joined
        context.merge(other.context)
    }

    /// Joins `other`, then trims to at most `siblingCap` siblings; returns the
    /// siblings discarded by the trim (see "Sibling cap").
    @discardableResult
    public mutating func merge(_ other: MVRegister, siblingCap: Int) throws(CRDTError) -> [Sibling] {
        merge(other)
        return try trimSiblings(toAtMost: siblingCap)
    }

    /// Discards the oldest siblings until at most `cap` remain; returns them, oldest
    /// last. `cap` must be at least 1.
    @discardableResult
    public mutating func trimSiblings(toAtMost cap: Int) throws(CRDTError) -> [Sibling] {
        guard cap >= 1 else {
            throw CRDTError(.invalidArgument, "sibling cap \(cap) must be at least 1")
        }
        guard live.count > cap else { return [] }
        let discarded = Array(siblings.dropFirst(cap))
        for sibling in discarded { live[sibling.dot] = nil }
        return discarded
    }

    static func isNewer(_ lhs: Sibling, than rhs: Sibling) -> Bool {
        if lhs.timestamp != rhs.timestamp { return lhs.timestamp > rhs.timestamp }
        return lhs.dot > rhs.dot
    }

    /// Picks one of two entries with the same dot (only a misbehaving writer makes
    /// them differ) deterministically, so the join stays commutative.
    static func preferred(_ lhs: Entry, _ rhs: Entry) -> Entry {
        if lhs == rhs { return lhs }
        if lhs.timestamp != rhs.timestamp { return lhs.timestamp > rhs.timestamp ? lhs : rhs }
        return rhs.value.encodedBytes().lexicographicallyPrecedes(lhs.value.encodedBytes()) ? lhs : rhs
    }

    public static var encodingTag: EncodingTag { .mvRegister }

    /// The context, then the siblings in dot order: dot, timestamp body, value.
    public func encodeBody(to writer: inout BinaryWriter) {
        context.encode(to: &writer)
        let dots = live.keys.sorted()
        writer.writeCount(dots.count)
        for dot in dots {
            guard let entry = live[dot] else { continue }
            writer.writeDot(dot)
            entry.timestamp.encodeBody(to: &writer)
            entry.value.encode(to: &writer)
        }
    }

    public init(decodingBody reader: inout BinaryReader) throws(CRDTError) {
        context = try CausalContext(from: &reader)
        let count = try reader.readCount(minimumItemSize: 4)
        live = [:]
        var previous: Dot?
        for _ in 0..<count {
            let start = reader.position
            let dot = try reader.readDot()
            if let previous, !(previous < dot) {
                throw CRDTError(.malformed, "multi-value register siblings are not in strictly increasing dot order at byte \(start)")
            }
            guard context.contains(dot) else {
                throw CRDTError(.malformed, "multi-value register sibling \(dot) at byte \(start) is missing from the causal context")
            }
            previous = dot
            let timestamp = try HLCTimestamp(decodingBody: &reader)
            live[dot] = Entry(value: try Value(from: &reader), timestamp: timestamp)
        }
    }
}
