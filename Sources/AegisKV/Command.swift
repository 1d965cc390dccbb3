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

    /// The kind of the command.
    public var type: CommandType {
        switch self {
        case .get: return .get
        case .set: return .set
        case .delete: return .delete
        case .compareAndSwap: return .compareAndSwap
        case .increment: return .increment
        case .custom: return .custom
        }
    }

    /// The key the command reads or writes.
    public var key: Key {
        switch self {
        case .get(let key), .set(let key, _), .delete(let key),
             .compareAndSwap(let key, _, _), .increment(let key, _):
            return key
        case .custom(_, let key, _):
            return key
        }
    }

    /// `true` for commands that may change the state (everything but `get`).
    public var isWrite: Bool { type != .get }
}
