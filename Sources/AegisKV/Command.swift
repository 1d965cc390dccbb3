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
    /// Opens a client session (version 4).
    case openSession = 60
    /// A write of a client session, applied at most once (version 4).
    case session = 61
    /// A pub/sub message, delivered on every node as it is applied (version 4).
    case publish = 62

    /// The first encoding version that has this command type: `encoded()` writes it,
    /// so entries of the older types stay readable by builds that only know version 1.
    public var encodingVersion: UInt8 {
        switch self {
        case .get, .set, .delete, .compareAndSwap, .increment, .custom: return 1
        case .setMany, .deleteMany: return 2
        case .collection, .getSet, .append: return 3
        case .openSession, .session, .publish: return 4
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
public indirect enum Command: Sendable, Hashable {
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
    /// Opens a client session for exactly-once writes; the result's `integer` is the
    /// session ID (see `ClientSessionRequest`).
    case openSession
    /// Applies the write at most once for the session's sequence number: a retry is
    /// answered with the reply of the first attempt (see `ClientSessionRequest`). The
    /// command must be a write and not itself a session command.
    case session(ClientSessionRequest, Command)
    /// Publishes `message` on `channel` (Redis `PUBLISH`): changes nothing; every node
    /// delivers it to its subscribers when it applies the entry, so a message published
    /// on any node reaches subscribers on all of them, in log order.
    case publish(channel: Key, message: [UInt8])

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
        case .openSession: return .openSession
        case .session: return .session
        case .publish: return .publish
        case .getSet: return .getSet
        case .append: return .append
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
        case .openSession:
            return .empty
        case .session(_, let command):
            return command.key
        case .publish(let channel, _):
            return channel
        }
    }

    /// Every key the command reads or writes, in the command's order.
    public var keys: [Key] {
        switch self {
        case .setMany(let pairs, _): return pairs.map(\.key)
        case .deleteMany(let keys): return keys
        case .openSession: return []
        case .session(_, let command): return command.keys
        default: return [key]
        }
    }

    /// `true` for commands that may change the state (everything but `get` and the
    /// collection reads).
    public var isWrite: Bool {
        if case .collection(_, let operation) = self { return operation.isWrite }
        if case .session(_, let command) = self { return command.isWrite }
        return type != .get
    }
}
