public import AegisCRDT

/// The Redis data type of a key, as `TYPE` names it.
public enum ValueType: UInt8, Sendable, Hashable, CaseIterable {
    /// Bytes (Redis strings, including the integers `INCR` works on).
    case string = 0
    /// An add-wins observed-remove set of byte strings (Redis sets).
    case set = 1
    /// An observed-remove map of fields to last-writer-wins byte values (Redis hashes).
    case hash = 2

    /// The name `TYPE` replies with.
    public var name: String {
        switch self {
        case .string: return "string"
        case .set: return "set"
        case .hash: return "hash"
        }
    }
}

/// A field of a hash and the value to write to it, one part of `CollectionOperation.hashSet`.
public struct FieldValue: Sendable, Hashable {
    /// The field.
    public var field: [UInt8]
    /// The value to write.
    public var value: [UInt8]

    /// Creates a pair.
    public init(_ field: [UInt8], _ value: [UInt8]) {
        self.field = field
        self.value = value
    }
}

/// An operation on a set or hash key (or `TYPE` of any key), carried by
/// `Command.collection(_:_:)`. Each case is one Redis command; the result fields it
/// fills are named in the case's documentation.
public enum CollectionOperation: Sendable, Hashable {
    /// `SADD`: adds the members; `integer` is the number that were not present.
    case setAdd([[UInt8]])
    /// `SREM`: removes the members; `integer` is the number that were present. A set
    /// left empty is removed.
    case setRemove([[UInt8]])
    /// `SMEMBERS`: `elements` are the members in ascending byte order.
    case setMembers
    /// `SISMEMBER`: `integer` is 1 if the member is present, else 0.
    case setIsMember([UInt8])
    /// `SCARD`: `integer` is the number of members.
    case setCardinality
    /// `HSET`: writes the fields (a field given twice keeps its last value); `integer`
    /// is the number of fields that were not present.
    case hashSet([FieldValue])
    /// `HGET`: `value` is the field's value, `nil` if absent.
    case hashGet([UInt8])
    /// `HDEL`: removes the fields; `integer` is the number that were present. A hash
    /// left empty is removed.
    case hashDelete([[UInt8]])
    /// `HGETALL`: `elements` are field, value, field, value… in ascending field order.
    case hashGetAll
    /// `HINCRBY`: adds to the field's decimal integer (absent counts as 0); `integer`
    /// is the new value.
    case hashIncrement([UInt8], by: Int64)
    /// `HLEN`: `integer` is the number of fields.
    case hashLength
    /// `HEXISTS`: `integer` is 1 if the field is present, else 0.
    case hashExists([UInt8])
    /// `TYPE`: `value` is the UTF-8 name of the key's type, or `"none"`.
    case type

    /// The tag of the operation in the command encoding.
    var tag: UInt8 {
        switch self {
        case .setAdd: return 1
        case .setRemove: return 2
        case .setMembers: return 3
        case .setIsMember: return 4
        case .setCardinality: return 5
        case .hashSet: return 6
        case .hashGet: return 7
        case .hashDelete: return 8
        case .hashGetAll: return 9
        case .hashIncrement: return 10
        case .hashLength: return 11
        case .hashExists: return 12
        case .type: return 13
        }
    }

    /// `true` for the operations that may change the state.
    public var isWrite: Bool {
        switch self {
        case .setAdd, .setRemove, .hashSet, .hashDelete, .hashIncrement: return true
        default: return false
        }
    }

    /// The type of key the operation works on; `nil` for `type`, which works on any.
    public var valueType: ValueType? {
        switch self {
        case .setAdd, .setRemove, .setMembers, .setIsMember, .setCardinality: return .set
        case .hashSet, .hashGet, .hashDelete, .hashGetAll, .hashIncrement, .hashLength, .hashExists: return .hash
        case .type: return nil
        }
    }

    /// Every member, field and value the operation carries, for size checks.
    var payloads: [[UInt8]] {
        switch self {
        case .setAdd(let members), .setRemove(let members), .hashDelete(let members): return members
        case .setIsMember(let item), .hashGet(let item), .hashExists(let item), .hashIncrement(let item, _): return [item]
        case .hashSet(let pairs): return pairs.flatMap { [$0.field, $0.value] }
        case .setMembers, .setCardinality, .hashGetAll, .hashLength, .type: return []
        }
    }
}

/// The replicated state of a set or hash key: a state-based CRDT whose `merge` is the
/// join a replication stream between clusters applies.
///
/// - A set is an add-wins `ORSet` of byte strings.
/// - A hash is an `ORMap` from fields to `LWWRegister`s of bytes, stamped with hybrid
///   logical clock timestamps derived from the log entries' leader timestamps.
///
/// Dots come from the state machine's one counter for its replica, so a dot is never
/// reused, even after a key is deleted and created again.
public enum CollectionValue: Sendable, Equatable {
    /// A set.
    case set(ORSet<[UInt8]>)
    /// A hash.
    case hash(ORMap<[UInt8], LWWRegister<[UInt8]>>)

    /// The key's type.
    public var type: ValueType {
        switch self {
        case .set: return .set
        case .hash: return .hash
        }
    }

    /// The number of members or present fields.
    public var count: Int {
        switch self {
        case .set(let set): return set.count
        case .hash(let map): return map.count
        }
    }

    /// Joins `other` into this value. Values of different types do not merge: the
    /// receiving value is kept and `false` is returned (a type conflict, which a
    /// replication stream must resolve by a rule of its own).
    @discardableResult
    public mutating func merge(_ other: CollectionValue) -> Bool {
        switch (self, other) {
        case (.set(var mine), .set(let theirs)):
            mine.merge(theirs)
            self = .set(mine)
            return true
        case (.hash(var mine), .hash(let theirs)):
            mine.merge(theirs)
            self = .hash(mine)
            return true
        default:
            return false
        }
    }

    /// The canonical encoding of the CRDT (AegisCRDT's tagged binary format).
    public func encoded() -> [UInt8] {
        switch self {
        case .set(let set): return set.encoded()
        case .hash(let map): return map.encoded()
        }
    }

    /// Decodes a value of `type` from `encoded()` bytes.
    public init(type: ValueType, encoded bytes: [UInt8]) throws(CRDTError) {
        switch type {
        case .set: self = .set(try ORSet<[UInt8]>(encoded: bytes))
        case .hash: self = .hash(try ORMap<[UInt8], LWWRegister<[UInt8]>>(encoded: bytes))
        case .string: throw CRDTError(.typeMismatch, "a string is not a collection")
        }
    }

    /// The highest dot counter of `replica` in the value's causal context.
    func highestCounter(of replica: ReplicaID) -> UInt64 {
        let context: CausalContext
        switch self {
        case .set(let set): context = set.context
        case .hash(let map): context = map.presence.context
        }
        var highest = context.compact[replica]
        for dot in context.cloud where dot.replica == replica { highest = Swift.max(highest, dot.counter) }
        return highest
    }
}

/// A set or hash key's value with its version information (as `KeyValue` has for strings).
struct StoredCollection: Sendable, Equatable {
    var value: CollectionValue
    var version: UInt64
    var createRevision: UInt64
    var modRevision: UInt64
}
