/// A last-writer-wins register on hybrid logical clock timestamps.
///
/// The write with the greatest ``HLCTimestamp`` wins; timestamps order by physical
/// time, then logical counter, then replica ID, so the replica ID is the tie-break.
/// Because HLC timestamps respect causality, a write that has seen another always
/// wins over it, whatever the wall clocks say; only truly concurrent writes are
/// decided by time. (Bound how far clocks can pull ahead with the clock's
/// ``HybridLogicalClock/maximumSkew``.)
public struct LWWRegister<Value: CRDTValue>: StateBasedCRDT, Hashable {
    /// One write: its value and its timestamp.
    public struct Entry: Hashable, Sendable {
        /// The value written.
        public let value: Value
        /// When, and by which replica, it was written.
        public let timestamp: HLCTimestamp
    }

    /// The winning write so far, or `nil` if there has been none.
    public private(set) var entry: Entry?

    /// Creates an empty register.
    public init() { entry = nil }

    /// Creates a register holding `value` written at `timestamp`.
    public init(_ value: Value, at timestamp: HLCTimestamp) { entry = Entry(value: value, timestamp: timestamp) }

    /// The current value.
    public var value: Value? { entry?.value }

    /// The timestamp of the current value.
    public var timestamp: HLCTimestamp? { entry?.timestamp }

    /// Writes `value` at `timestamp` (take it from the replica's ``HybridLogicalClock``).
    /// Returns whether the write won: a write older than the current one is ignored.
    @discardableResult
    public mutating func assign(_ value: Value, at timestamp: HLCTimestamp) -> Bool {
        let candidate = Entry(value: value, timestamp: timestamp)
        guard let current = entry else {
            entry = candidate
            return true
        }
        guard Self.wins(candidate, over: current) else { return false }
        entry = candidate
        return true
    }

    /// Keeps the write with the greater timestamp.
    public mutating func merge(_ other: LWWRegister) {
        if let theirs = other.entry { assign(theirs.value, at: theirs.timestamp) }
    }

    /// Whether `candidate` beats `current`. Equal timestamps with different values can
    /// only come from a misbehaving writer; the greater encoded value wins so that the
    /// join stays commutative.
    static func wins(_ candidate: Entry, over current: Entry) -> Bool {
        if candidate.timestamp != current.timestamp { return candidate.timestamp > current.timestamp }
        return current.value.encodedBytes().lexicographicallyPrecedes(candidate.value.encodedBytes())
    }

    public static var encodingTag: EncodingTag { .lwwRegister }

    /// 0 for an empty register; 1, the timestamp body, the value.
    public func encodeBody(to writer: inout BinaryWriter) {
        guard let entry else {
            writer.writeByte(0)
            return
        }
        writer.writeByte(1)
        entry.timestamp.encodeBody(to: &writer)
        entry.value.encode(to: &writer)
    }

    public init(decodingBody reader: inout BinaryReader) throws(CRDTError) {
        let start = reader.position
        switch try reader.readByte() {
        case 0:
            entry = nil
        case 1:
            let timestamp = try HLCTimestamp(decodingBody: &reader)
            entry = Entry(value: try Value(from: &reader), timestamp: timestamp)
        case let other:
            throw CRDTError(.malformed, "LWW register presence byte at \(start) is \(other); only 0 and 1 are valid")
        }
    }
}
