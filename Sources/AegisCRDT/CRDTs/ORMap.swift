/// An observed-remove map whose values are CRDTs: keys are present with add-wins
/// semantics (an update concurrent with a remove keeps the key), and values merge with
/// their own join.
///
/// ## Removal keeps the value's state
///
/// A remove hides the key but keeps its value's state (a tombstone), so that a
/// concurrent update still merges correctly and the join stays a join for any value
/// type. A later update of the same key therefore continues from that state (for a
/// counter: from the old count) — observed-remove, not reset-remove. Tombstones are
/// the metadata this type trades for generality.
public struct ORMap<Key: CRDTValue, Value: StateBasedCRDT>: StateBasedCRDT {
    /// Which keys are present (add-wins).
    public private(set) var presence: ORSet<Key>
    /// The value state of every key ever updated, present or removed.
    ///
    /// Invariant: no value equals `Value()` (the bottom state is omitted).
    private var values: [Key: Value]

    /// Creates an empty map.
    public init() {
        presence = ORSet()
        values = [:]
    }

    /// The present keys.
    public var keys: Set<Key> { presence.elements }

    /// The number of present keys.
    public var count: Int { presence.count }

    /// The value of a present key, or `nil` if the key is absent.
    public subscript(key: Key) -> Value? {
        guard presence.contains(key) else { return nil }
        return values[key] ?? Value()
    }

    /// Updates the value of `key` at `replica` (making the key present) and returns
    /// the delta to ship. `body` mutates the value and returns the value's delta (for
    /// example the result of ``GCounter/increment(by:at:)``).
    @discardableResult
    public mutating func update(
        _ key: Key, at replica: ReplicaID, _ body: (inout Value) throws(CRDTError) -> Value
    ) throws(CRDTError) -> ORMap {
        try update(key, dot: try presence.context.nextDot(for: replica), body)
    }

    /// Updates the value of `key` under a dot chosen by the caller (see
    /// ``ORSet/insert(_:dot:)``) and returns the delta to ship.
    @discardableResult
    public mutating func update(
        _ key: Key, dot: Dot, _ body: (inout Value) throws(CRDTError) -> Value
    ) throws(CRDTError) -> ORMap {
        var value = values[key] ?? Value()
        let valueDelta = try body(&value)
        var delta = ORMap()
        delta.presence = try presence.insert(key, dot: dot)
        delta.store(valueDelta, for: key)
        store(value, for: key)
        return delta
    }

    /// The number of values kept, present keys and removed ones (whose state is kept
    /// as a tombstone, see the type's documentation).
    public var storedValueCount: Int { values.count }

    /// Removes `key` and returns the delta to ship (empty if the key is absent).
    @discardableResult
    public mutating func remove(_ key: Key) -> ORMap {
        var delta = ORMap()
        delta.presence = presence.remove(key)
        return delta
    }

    /// The value state kept for `key`, present or removed (`nil` if never updated).
    public func storedValue(of key: Key) -> Value? { values[key] }

    /// Replaces the value state kept for `key` (present or removed) without touching
    /// presence. For a caller whose value is derived from state it joins itself (for
    /// example a register whose value is recomputed from counters after every join):
    /// the caller keeps the replacement a function of joined state, so the map stays a
    /// join.
    public mutating func replaceStoredValue(of key: Key, with value: Value) {
        store(value, for: key)
    }

    /// Marks the presence set's dots up to `frontier` as seen (see
    /// ``CausalContext/fill(through:)``). Returns `true` when the context changed.
    @discardableResult
    public mutating func fillContext(through frontier: [ReplicaID: UInt64]) -> Bool {
        presence.fillContext(through: frontier)
    }

    /// Joins presence and, key by key, the values.
    public mutating func merge(_ other: ORMap) {
        presence.merge(other.presence)
        for (key, theirs) in other.values {
            if var mine = values[key] {
                mine.merge(theirs)
                values[key] = mine
            } else {
                values[key] = theirs
            }
        }
    }

    private mutating func store(_ value: Value, for key: Key) {
        values[key] = value == Value() ? nil : value
    }

    public static func == (lhs: ORMap, rhs: ORMap) -> Bool {
        lhs.presence == rhs.presence && lhs.values == rhs.values
    }

    public static var encodingTag: EncodingTag { .orMap }

    /// The value type's tag and version, the presence set's body, then the values
    /// sorted by key, each as its type's body.
    public func encodeBody(to writer: inout BinaryWriter) {
        writer.writeByte(Value.encodingTag.rawValue)
        writer.writeByte(Value.encodingVersion)
        presence.encodeBody(to: &writer)
        writer.writeSorted(values) { writer, value in value.encodeBody(to: &writer) }
    }

    public init(decodingBody reader: inout BinaryReader) throws(CRDTError) {
        try reader.readHeader(expecting: Value.encodingTag, supportedVersion: Value.encodingVersion)
        presence = try ORSet(decodingBody: &reader)
        values = try reader.readSorted("OR-map", minimumEntrySize: 2) { reader throws(CRDTError) in
            let start = reader.position
            let value = try Value(decodingBody: &reader)
            guard value != Value() else {
                throw CRDTError(.malformed, "OR-map value at byte \(start) is empty; empty values are omitted")
            }
            return value
        }
    }
}
