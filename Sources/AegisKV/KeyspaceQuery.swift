/// A read of the keyspace carried by `Command.keyspace(_:)`: answered when the entry is
/// applied, so inside a transaction it sees the state at the transaction's place in
/// the log. Keys past their deadline are absent.
public enum KeyspaceQuery: Sendable, Hashable {
    /// `SCAN`: up to `count` keys of every type in ascending byte order, starting after
    /// the key `after` (from the first key when `nil`), that match `pattern` (a Redis
    /// glob; every key when `nil`) and are of `type` (any when `nil`). `elements` are
    /// the keys; `value` is the last key examined, from which the next call continues,
    /// or `nil` when the scan is complete. `count` bounds the keys examined, as in Redis.
    case scan(after: Key?, pattern: [UInt8]?, count: Int, type: ValueType?)
    /// `KEYS`: every key matching `pattern`, in ascending byte order, in `elements`;
    /// fails with `KVError.replyTooLarge` when more than `limit` keys match.
    case keys(pattern: [UInt8], limit: Int)
    /// `RANDOMKEY`: a key in `value` (chosen from the log index, so every replica
    /// picks the same), `nil` when the store is empty.
    case randomKey
    /// `EXISTS`: how many of the keys exist (a key given twice counts twice), in `integer`.
    case exists([Key])
    /// `DBSIZE`: the number of keys, in `integer` (keys past their deadline that the
    /// leader has not yet purged count, as in Redis).
    case count
    /// `OBJECT ENCODING`: the Redis encoding name of the key's value in `value`
    /// (`int`, `embstr` or `raw` for strings, `hashtable` for sets and hashes), `nil`
    /// when the key is absent.
    case encoding(Key)
    /// `MEMORY USAGE`: an estimate of the bytes the key takes, in `integer`; `value`
    /// is `nil` when the key is absent (and non-nil, empty, otherwise).
    case memoryUsage(Key)

    /// The tag of the query in the command encoding.
    var tag: UInt8 {
        switch self {
        case .scan: return 1
        case .keys: return 2
        case .randomKey: return 3
        case .exists: return 4
        case .count: return 5
        case .encoding: return 6
        case .memoryUsage: return 7
        }
    }

    /// The keys the query names.
    var keys: [Key] {
        switch self {
        case .exists(let keys): return keys
        case .encoding(let key), .memoryUsage(let key): return [key]
        case .scan, .keys, .randomKey, .count: return []
        }
    }
}

/// A key watched by a transaction (`WATCH`) and the modify revision it had when it was
/// watched (0 when it did not exist): the transaction is applied only if every watched
/// key still has that revision (a key that expired or was removed has revision 0).
public struct WatchedKey: Sendable, Hashable {
    /// The key.
    public var key: Key
    /// The key's modify revision when it was watched, 0 if it did not exist.
    public var modRevision: UInt64

    /// Creates a watched key.
    public init(_ key: Key, modRevision: UInt64) {
        self.key = key
        self.modRevision = modRevision
    }
}
