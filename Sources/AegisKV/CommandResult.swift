public import AegisRaft

/// A key with its value and its version information, as read from the store.
public struct KeyValue: Sendable, Hashable {
    /// The key.
    public var key: Key
    /// The value.
    public var value: [UInt8]
    /// The number of writes since the key was (last) created; 1 after the first write.
    public var version: UInt64
    /// The store revision at which the key was (last) created.
    public var createRevision: UInt64
    /// The store revision of the key's latest write.
    public var modRevision: UInt64
    /// The key's type. For a set or hash, `value` is empty: read it with
    /// `StateMachine.collection(_:)` or a `Command.collection` read.
    public var type: ValueType

    /// Creates a key-value record.
    public init(key: Key, value: [UInt8], version: UInt64, createRevision: UInt64, modRevision: UInt64,
                type: ValueType = .string) {
        self.key = key
        self.value = value
        self.version = version
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.type = type
    }
}

/// The outcome of applying one log entry to the `StateMachine`.
public struct CommandResult: Sendable, Hashable {
    /// The log index of the entry.
    public var index: LogIndex
    /// The key's value after the command (for `get`, the value read), `nil` when the
    /// key does not exist. After a failed compare-and-swap, the current value.
    public var value: [UInt8]? {
        get { valueBytes.map { Array($0) } }
        set { valueBytes = newValue.map { $0[...] } }
    }
    /// The key's value before the command, `nil` when it did not exist.
    public var previousValue: [UInt8]? {
        get { previousBytes.map { Array($0) } }
        set { previousBytes = newValue.map { $0[...] } }
    }
    /// The key's version after the command (0 when the key does not exist).
    public var version: UInt64
    /// The store's revision after the command.
    public var revision: UInt64
    /// Why the command failed; `nil` on success.
    public var error: KVError?
    /// For a successful multi-key command, the number of keys it acted on: the keys
    /// written by `setMany`, the keys that existed and were removed by `deleteMany`.
    /// 0 for every other command.
    public var keyCount: Int = 0
    /// The integer reply of a set or hash operation (see `CollectionOperation`); 0 for
    /// every other command.
    public var integer: Int64 = 0
    /// The members, or fields and values, a set or hash read returns (see
    /// `CollectionOperation`); empty for every other command.
    public var elements: [[UInt8]] = []
    /// For `Command.timeToLive`, the apply clock the deadline in `integer` is relative
    /// to (milliseconds since the Unix epoch); 0 for every other command.
    public var time: UInt64 = 0
    /// For `Command.transaction`, one result per command of the transaction, in order
    /// (empty when the transaction was aborted); empty for every other command.
    public var results: [CommandResult] = []
    /// The bytes of `value`. For a set applied from a log entry this is a view of the
    /// entry's data, so the result costs no copy; `value` copies on access.
    @usableFromInline var valueBytes: ArraySlice<UInt8>?
    /// The bytes of `previousValue`.
    @usableFromInline var previousBytes: ArraySlice<UInt8>?

    /// Creates a result.
    public init(index: LogIndex, value: [UInt8]? = nil, previousValue: [UInt8]? = nil, version: UInt64 = 0,
                revision: UInt64, error: KVError? = nil) {
        self.init(index: index, valueBytes: value.map { $0[...] }, previousBytes: previousValue.map { $0[...] },
                  version: version, revision: revision, error: error)
    }

    /// Creates a result whose values may be views of other buffers.
    @usableFromInline init(index: LogIndex, valueBytes: ArraySlice<UInt8>?, previousBytes: ArraySlice<UInt8>?,
                           version: UInt64, revision: UInt64, error: KVError? = nil) {
        self.index = index
        self.valueBytes = valueBytes
        self.previousBytes = previousBytes
        self.version = version
        self.revision = revision
        self.error = error
    }

    /// `true` when the command succeeded.
    @inlinable public var isSuccess: Bool { error == nil }
}

/// What a custom command does to its key.
public enum CustomCommandEffect: Sendable, Hashable {
    /// Leave the key as it is (the command succeeds, nothing is written).
    case keep
    /// Write this value to the key.
    case set([UInt8])
    /// Remove the key.
    case delete
    /// Fail the command with this reason; nothing changes.
    case reject(String)
}

/// An application-supplied command, registered by name on every replica's state
/// machine and invoked by `Command.custom(name:key:payload:)`.
///
/// The body must be deterministic: given the same current record and payload it
/// returns the same effect on every replica (no clocks, randomness or I/O).
public struct CustomCommandHandler: Sendable {
    /// The name commands refer to; 1 to `Command.maxCustomNameSize` bytes of UTF-8.
    public let name: String
    /// Computes the effect from the key's current record (`nil` if absent) and the
    /// command's payload.
    public let body: @Sendable (_ current: KeyValue?, _ payload: [UInt8]) -> CustomCommandEffect

    /// Creates a handler.
    public init(name: String, body: @escaping @Sendable (_ current: KeyValue?, _ payload: [UInt8]) -> CustomCommandEffect) {
        self.name = name
        self.body = body
    }
}
