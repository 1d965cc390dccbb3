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
    /// Sets or changes a key's deadline (encoding version 4, as every type below).
    case expire = 12
    /// Removes a key's deadline.
    case persist = 13
    /// Reads a key's deadline.
    case timeToLive = 14
    /// Writes a string with a condition and a deadline change.
    case setWith = 15
    /// Reads a string and changes its deadline.
    case getAndExpire = 16
    /// Removes keys whose deadline has passed (proposed by the leader).
    case purgeExpired = 17
    /// Applies several commands as one step, if watched keys are unchanged.
    case transaction = 18
    /// Reads the keyspace (SCAN, KEYS, RANDOMKEY, EXISTS, DBSIZE, OBJECT, MEMORY USAGE).
    case keyspace = 19
    /// Renames a key.
    case rename = 20
    /// Copies a key.
    case copy = 21
    /// Removes every key.
    case flushAll = 22
    /// Applies a batch of another cluster's change stream with its link cursor
    /// (encoding version 4; 12–39 are kept for other version-4 types).
    case streamBatch = 40
    /// Changes the cluster's DR role, epoch, primary address or lease (encoding version 4).
    case setDRState = 41
    /// One chunk of the primary's snapshot, logged by a DR standby re-seeding itself
    /// (encoding version 4; DRSeed.swift).
    case drSeedChunk = 50
    /// Makes a replaced primary the standby of the cluster that replaced it, to be
    /// re-seeded from it first (encoding version 4; DRSeed.swift).
    case drRejoin = 51
    /// Enables, changes or disables active-active replication (encoding version 4;
    /// 70–79 are kept for active-active).
    case setActiveActive = 70
    /// Joins a peer cluster's key states with the active-active link's cursor.
    case activeActiveBatch = 71
    /// Replaces the active-active conflict strategies and bounds (ActiveActiveConflictCodec.swift).
    case setActiveActiveStrategies = 72
    /// Resolves an open manual conflict with a local write (ActiveActiveConflictCodec.swift).
    case resolveActiveActiveConflict = 73
    /// Writes a string replacing the versions a context token covers (ActiveActiveConflictCodec.swift).
    case setWithContext = 74
    /// Merges one page of a peer cluster's whole active-active state, for a link
    /// catching up past the peer's compacted log (ActiveActiveCatchUp.swift).
    case activeActiveCatchUp = 76
    /// Sets or changes the cluster's active-active topology (ActiveActiveTopologyCommand.swift).
    case activeActiveTopology = 77

    /// The first encoding version that has this command type: `encoded()` writes it,
    /// so entries of the older types stay readable by builds that only know version 1.
    public var encodingVersion: UInt8 {
        switch self {
        case .get, .set, .delete, .compareAndSwap, .increment, .custom: return 1
        case .setMany, .deleteMany: return 2
        case .collection, .getSet, .append: return 3
        case .openSession, .session, .publish: return 4
        case .expire, .persist, .timeToLive, .setWith, .getAndExpire, .purgeExpired, .transaction, .keyspace,
             .rename, .copy, .flushAll: return 4
        case .streamBatch, .setDRState, .drSeedChunk, .drRejoin: return 4
        case .setActiveActive, .activeActiveBatch, .activeActiveCatchUp, .activeActiveTopology: return 4
        case .setActiveActiveStrategies, .resolveActiveActiveConflict, .setWithContext: return 4
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
    /// Sets the key's deadline when `condition` allows (Redis `EXPIRE`, `PEXPIREAT`…
    /// with `NX`, `XX`, `GT`, `LT`); a deadline at or before the apply clock removes the
    /// key. `integer` is 1 if the deadline was set (or the key removed), 0 if the key
    /// does not exist or the condition did not hold.
    case expire(Key, ExpiryTime, ExpireCondition)
    /// Removes the key's deadline; `integer` is 1 if it had one, else 0 (Redis `PERSIST`).
    case persist(Key)
    /// Reads the key's deadline: `integer` is the deadline in milliseconds since the
    /// Unix epoch, -1 when the key has none, -2 when the key does not exist; `time`
    /// is the apply clock, so the remaining time is `integer - time`.
    case timeToLive(Key)
    /// Writes the string if `condition` holds and changes its deadline as `expiry` says
    /// (Redis `SET` with `NX`/`XX`/`IFEQ`, `GET`, `EX`/`PX`/`EXAT`/`PXAT`/`KEEPTTL`,
    /// and `SETEX`/`PSETEX`). `previousValue` is the string before (with
    /// `returnPrevious`, a set or hash fails with `KVError.wrongType`, changing
    /// nothing); when the condition fails the result's error is `.compareFailed` and
    /// `value` is the current string.
    case setWith(Key, [UInt8], condition: SetCondition, returnPrevious: Bool, expiry: ExpiryChange)
    /// Reads the string (`value`, `nil` if absent) and changes its deadline as `expiry`
    /// says (Redis `GETEX`); a set or hash fails with `KVError.wrongType`.
    case getAndExpire(Key, ExpiryChange)
    /// Removes each key whose deadline is at or before the apply clock; a key written
    /// since the leader chose it is kept. `keyCount` is the number removed. The leader
    /// proposes these in batches (see `StateMachine.dueForExpiry(at:limit:)`).
    case purgeExpired([Key])
    /// Applies `commands` in order as one step when every watched key still has the
    /// modify revision it was watched at (Redis `MULTI`/`EXEC` with `WATCH`): `results`
    /// holds one result per command, each succeeding or failing on its own as in Redis.
    /// When a watched key changed, nothing is applied and the error is
    /// `KVError.transactionAborted`. A transaction cannot contain a transaction or a
    /// purge.
    case transaction(watches: [WatchedKey], commands: [Command])
    /// A read of the keyspace, answered at apply time.
    case keyspace(KeyspaceQuery)
    /// Renames `source` to `destination`, keeping its value, versions and deadline and
    /// replacing the destination (Redis `RENAME`); with `onlyIfAbsent`, does nothing
    /// (`integer` 0) when the destination exists (`RENAMENX`). Fails with
    /// `KVError.noSuchKey` when the source does not exist.
    case rename(Key, to: Key, onlyIfAbsent: Bool)
    /// Copies `source` (value and deadline) to `destination`; without `replace`, does
    /// nothing when the destination exists. `integer` is 1 if copied, else 0 (Redis `COPY`).
    case copy(Key, to: Key, replace: Bool)
    /// Removes every key of every type (Redis `FLUSHALL`/`FLUSHDB`), as one entry.
    case flushAll
    /// Applies a source cluster's stream batch: every change not applied yet (by the
    /// link's cursor), then the cursor, as one step. Refused unless the cluster is a
    /// standby at an epoch no higher than the batch's (see `StateMachine.drState`).
    case streamBatch(StreamBatch)
    /// Changes the cluster's DR state (role, epoch, primary, lease).
    case setDRState(DRTransition)
    /// Stages one chunk of the primary's snapshot on a DR standby; the last chunk
    /// installs it and moves the link's cursor to its index, as one step (DRSeed.swift).
    case drSeedChunk(DRSeedChunk)
    /// Makes this cluster (a replaced primary) a standby of `resumeSource` that must be
    /// re-seeded from its snapshot before it applies its stream: its own state, with the
    /// writes the new primary never received, is then replaced (failback). The
    /// transition's role must be standby, its resume source set and its resume index 0.
    case drRejoin(DRTransition)
    /// Changes the cluster's active-active settings: enabling starts keeping CRDT
    /// metadata for every key written from then on; disabling drops it all.
    case setActiveActive(ActiveActiveSettings)
    /// Joins a peer cluster's key states (see `ActiveActiveBatch`): refused unless
    /// active-active is enabled, when the batch starts after the link's cursor
    /// (`KVError.streamGap`) or carries a stamp too far ahead (`KVError.clockSkew`).
    case activeActiveBatch(ActiveActiveBatch)
    /// Merges one page of a peer's whole active-active state (see
    /// `ActiveActiveCatchUpPage`): refused unless active-active is enabled, when it does
    /// not continue the catch-up in progress, or as a batch is refused.
    case activeActiveCatchUp(ActiveActiveCatchUpPage)
    /// Sets or changes the cluster's active-active topology (see
    /// `ActiveActiveTopologyCommand`): refused, changing nothing, when the result breaks
    /// a topology rule for this cluster.
    case activeActiveTopology(ActiveActiveTopologyCommand)
    /// A conflict-resolution command: the strategy settings (72), the resolution of a
    /// manual conflict (73) or a write with a context token (74); see
    /// `ActiveActiveConflictCommand`.
    case activeActiveConflict(ActiveActiveConflictCommand)

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
        case .expire: return .expire
        case .persist: return .persist
        case .timeToLive: return .timeToLive
        case .setWith: return .setWith
        case .getAndExpire: return .getAndExpire
        case .purgeExpired: return .purgeExpired
        case .transaction: return .transaction
        case .keyspace: return .keyspace
        case .rename: return .rename
        case .copy: return .copy
        case .flushAll: return .flushAll
        case .streamBatch: return .streamBatch
        case .setDRState: return .setDRState
        case .drSeedChunk: return .drSeedChunk
        case .drRejoin: return .drRejoin
        case .setActiveActive: return .setActiveActive
        case .activeActiveBatch: return .activeActiveBatch
        case .activeActiveCatchUp: return .activeActiveCatchUp
        case .activeActiveTopology: return .activeActiveTopology
        case .activeActiveConflict(let command): return command.type
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
        case .expire(let key, _, _), .persist(let key), .timeToLive(let key), .setWith(let key, _, _, _, _),
             .getAndExpire(let key, _), .rename(let key, _, _), .copy(let key, _, _):
            return key
        case .setMany, .deleteMany, .purgeExpired, .transaction, .keyspace, .flushAll:
            return keys.first ?? .empty
        case .openSession:
            return .empty
        case .session(_, let command):
            return command.key
        case .publish(let channel, _):
            return channel
        case .activeActiveConflict(let command):
            return command.key
        case .streamBatch, .setDRState, .drSeedChunk, .drRejoin, .setActiveActive, .activeActiveBatch,
             .activeActiveCatchUp, .activeActiveTopology:
            return .empty
        }
    }

    /// Every key the command reads or writes, in the command's order.
    public var keys: [Key] {
        switch self {
        case .setMany(let pairs, _): return pairs.map(\.key)
        case .deleteMany(let keys): return keys
        case .openSession: return []
        case .session(_, let command): return command.keys
        case .deleteMany(let keys), .purgeExpired(let keys): return keys
        case .rename(let source, let destination, _), .copy(let source, let destination, _): return [source, destination]
        case .transaction(let watches, let commands): return watches.map(\.key) + commands.flatMap(\.keys)
        case .keyspace(let query): return query.keys
        case .flushAll: return []
        case .streamBatch(let batch): return batch.changes.flatMap(\.command.keys)
        case .setDRState, .drSeedChunk, .drRejoin, .setActiveActive, .activeActiveTopology: return []
        case .activeActiveBatch(let batch): return batch.states.map(\.key)
        case .activeActiveCatchUp(let page): return page.batch.states.map(\.key)
        case .activeActiveConflict(.setStrategies): return []
        default: return [key]
        }
    }

    /// `true` for commands that may change the state (everything but `get`, the
    /// collection and keyspace reads and `timeToLive`). Reads may still remove keys
    /// whose deadline passed, as every replica does at the same place in the log.
    public var isWrite: Bool {
        switch self {
        case .collection(_, let operation): return operation.isWrite
        case .get, .keyspace, .timeToLive: return false
        case .transaction(_, let commands): return commands.contains { $0.isWrite }
        case .session(_, let command): return command.isWrite
        default: return true
        }
    }

    /// `true` for the commands of cross-cluster replication (stream batches and DR
    /// transitions): they change the state but are not client writes, so a read-only
    /// (standby or fenced) cluster still applies them.
    public var isReplicationControl: Bool { type.isReplicationControl }
}
