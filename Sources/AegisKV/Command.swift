/// What a compare-and-swap expects to find before it writes.
public enum Expectation: Sendable, Hashable {
    /// The key exists and holds exactly these bytes.
    case value([UInt8])
    /// The key is at this version; version 0 means the key does not exist, so
    /// `.version(0)` is "create only if absent".
    case version(UInt64)
}

/// The kind of a command, as stored in its encoding.
public enum CommandType: UInt8, Sendable, Hashable, CaseIterable {
    /// Reads a key through the log (a linearizable read).
    case get = 1
    /// Writes a key.
    case set = 2
    /// Removes a key.
    case delete = 3
    /// Writes a key only if it holds an expected value or version.
    case compareAndSwap = 4
    /// Adds a signed amount to a key holding a decimal integer.
    case increment = 5
    /// Runs a handler registered by the embedding application.
    case custom = 6
    /// Writes several keys at once, all or none (encoding version 2).
    case setMany = 7
    /// Removes several keys at once (encoding version 2).
    case deleteMany = 8
    /// A set, hash or `TYPE` operation (encoding version 3).
    case collection = 9
    /// Writes a string and returns the previous one (encoding version 3).
    case getSet = 10
    /// Appends to a string (encoding version 3).
    case append = 11
    /// Applies a batch of another cluster's change stream with its link cursor
    /// (encoding version 4; 12–39 are kept for other version-4 types).
    case streamBatch = 40
    /// Changes the cluster's DR role, epoch, primary address or lease (encoding version 4).
    case setDRState = 41

    /// The first encoding version that has this command type: `encoded()` writes it,
    /// so entries of the older types stay readable by builds that only know version 1.
    public var encodingVersion: UInt8 {
        switch self {
        case .get, .set, .delete, .compareAndSwap, .increment, .custom: return 1
        case .setMany, .deleteMany: return 2
        case .collection, .getSet, .append: return 3
        case .streamBatch, .setDRState: return 4
        }
    }
}

/// A key and the value to write to it, one part of a `Command.setMany`.
public struct KeyValuePair: Sendable, Hashable {
    /// The key.
    public var key: Key
    /// The value to write.
    public var value: [UInt8]

    /// Creates a pair.
    public init(_ key: Key, _ value: [UInt8]) {
        self.key = key
        self.value = value
    }
}

/// A command of the replicated key-value store, carried in a log entry.
///
/// ```swift
/// let command = Command.set("key", Array("value".utf8))
/// let bytes = command.encoded()            // the entry's data
/// let decoded = try Command(decoding: bytes)
/// ```
public enum Command: Sendable, Hashable {
    /// Reads the key's value and version.
    case get(Key)
    /// Sets the key to the value, creating it if needed.
    case set(Key, [UInt8])
    /// Removes the key (succeeds when the key does not exist).
    case delete(Key)
    /// Sets the key to `new` only if the expectation holds.
    case compareAndSwap(Key, expected: Expectation, new: [UInt8])
    /// Adds `by` to the key's value, a decimal 64-bit signed integer such as `"-42"`;
    /// a missing key counts as 0.
    case increment(Key, by: Int64)
    /// Runs the custom command handler registered under `name` on the key, with an
    /// application-defined payload.
    case custom(name: String, key: Key, payload: [UInt8])
    /// Writes every pair, in order, as one atomic step (Redis `MSET`; a key given
    /// twice ends with its last value). When `onlyIfNoneExist`, nothing is written if
    /// any of the keys exists (Redis `MSETNX`): the command then fails with
    /// `KVError.compareFailed` carrying the version of the first existing key. Every
    /// key and value is validated before anything is written, so an invalid one fails
    /// the whole command and changes nothing.
    case setMany([KeyValuePair], onlyIfNoneExist: Bool)
    /// Removes every key as one atomic step (Redis `DEL`/`UNLINK` of several keys);
    /// the result's `keyCount` is the number of keys that existed. Every key is
    /// validated first; an invalid one fails the command and removes nothing.
    case deleteMany([Key])
    /// Runs a set or hash operation, or `TYPE`, on the key. Operations on a key of
    /// another type fail with `KVError.wrongType` (as Redis's `WRONGTYPE`).
    case collection(Key, CollectionOperation)
    /// Sets the key to the value and returns the previous value (Redis `GETSET` and
    /// `SET … GET`): unlike `set`, fails with `KVError.wrongType`, changing nothing,
    /// when the key is a set or hash.
    case getSet(Key, [UInt8])
    /// Appends the bytes to the key's string (a missing key counts as empty); the
    /// result's `integer` is the new length (Redis `APPEND`).
    case append(Key, [UInt8])
    /// Applies a source cluster's stream batch: every change not applied yet (by the
    /// link's cursor), then the cursor, as one step. Refused unless the cluster is a
    /// standby at an epoch no higher than the batch's (see `StateMachine.drState`).
    case streamBatch(StreamBatch)
    /// Changes the cluster's DR state (role, epoch, primary, lease).
    case setDRState(DRTransition)

    /// The kind of the command.
    public var type: CommandType {
        switch self {
        case .get: return .get
        case .set: return .set
        case .delete: return .delete
        case .compareAndSwap: return .compareAndSwap
        case .increment: return .increment
        case .custom: return .custom
        case .setMany: return .setMany
        case .deleteMany: return .deleteMany
        case .collection: return .collection
        case .getSet: return .getSet
        case .append: return .append
        case .streamBatch: return .streamBatch
        case .setDRState: return .setDRState
        }
    }

    /// The key the command reads or writes; for a multi-key command its first key
    /// (the empty key when it has none). See `keys` for all of them.
    public var key: Key {
        switch self {
        case .get(let key), .set(let key, _), .delete(let key),
             .compareAndSwap(let key, _, _), .increment(let key, _):
            return key
        case .custom(_, let key, _), .collection(let key, _), .getSet(let key, _), .append(let key, _):
            return key
        case .setMany(let pairs, _):
            return pairs.first?.key ?? .empty
        case .deleteMany(let keys):
            return keys.first ?? .empty
        case .streamBatch, .setDRState:
            return .empty
        }
    }

    /// Every key the command reads or writes, in the command's order.
    public var keys: [Key] {
        switch self {
        case .setMany(let pairs, _): return pairs.map(\.key)
        case .deleteMany(let keys): return keys
        case .streamBatch(let batch): return batch.changes.flatMap(\.command.keys)
        case .setDRState: return []
        default: return [key]
        }
    }

    /// `true` for commands that may change the state (everything but `get` and the
    /// collection reads).
    public var isWrite: Bool {
        if case .collection(_, let operation) = self { return operation.isWrite }
        return type != .get
    }

    /// `true` for the commands of cross-cluster replication (stream batches and DR
    /// transitions): they change the state but are not client writes, so a read-only
    /// (standby or fenced) cluster still applies them.
    public var isReplicationControl: Bool { type == .streamBatch || type == .setDRState }
}
