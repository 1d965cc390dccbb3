public import AegisCRDT
public import AegisRaft

/// The replicated key-value state machine: a versioned store of byte keys and values
/// that committed log entries are applied to.
///
/// Every key carries a version (writes since it was created), the revision of its
/// creation and of its latest write; the store has a global revision that each
/// successful write increments (etcd's model). Applying is deterministic, and an
/// entry whose index is at or below `appliedIndex` is refused without effect, so each
/// index is applied exactly once.
///
/// Storage is a hash map for point operations plus an ordered key index that is
/// brought up to date lazily, on the first ordered read after writes (see
/// `range(from:to:limit:)`): writes stay O(1), and an ordered read after `n` new keys
/// costs O(n log n) once.
public struct StateMachine: ReplicatedStateMachine, Sendable {
    /// Size limits on keys and values. Every replica must use the same limits, or
    /// replicas could disagree on which commands fail.
    public struct Limits: Sendable, Hashable {
        /// The longest key, in bytes.
        public var maxKeySize: Int
        /// The longest value, in bytes; also the longest set member, hash field and
        /// hash value.
        public var maxValueSize: Int
        /// The most members of one set or fields of one hash: a write that would grow
        /// a key beyond it fails with `KVError.collectionTooLarge` and changes nothing.
        public var maxCollectionSize: Int
        /// The most open client sessions; opening one more expires the least recently
        /// used (see `ClientSessionRequest`).
        public var maxClientSessions: Int = 10_000
        /// The most unacknowledged replies kept per client session.
        public var maxSessionWindow: Int = 1_024
        /// The largest reply (value bytes) kept for a retry; a larger one is answered
        /// on retry with `KVError.sessionReplyNotKept`.
        public var maxSessionReplyBytes: Int = 4_096
        /// A client session unused for this long (milliseconds of leader time) expires.
        public var sessionTimeout: UInt64 = 3_600_000
        /// The largest primary snapshot a DR standby stages to re-seed itself (bytes,
        /// default and maximum 1 GiB - 1 MiB): every standby node holds the staged bytes
        /// in memory until the last chunk installs them (DRSeed.swift).
        public var maxSeedBytes: Int = Int(DRSeedChunk.maxTotalBytes)

        /// Creates limits; the defaults are 16 KiB keys, 1 MiB values and a million
        /// members or fields per set or hash.
        public init(maxKeySize: Int = 16 * 1024, maxValueSize: Int = 1 << 20, maxCollectionSize: Int = 1_000_000) {
            self.maxKeySize = maxKeySize
            self.maxValueSize = maxValueSize
            self.maxCollectionSize = maxCollectionSize
        }

        /// Why a state machine with these limits would refuse `command` whatever its
        /// state (an empty or too long key, a too long value), or `nil`. A node checks
        /// this before proposing, so such a command is refused without being logged.
        public func violation(in command: Command) -> KVError? {
            let keyLimit = Swift.min(maxKeySize, StateMachine.storableSize)
            let valueLimit = Swift.min(maxValueSize, StateMachine.storableSize)
            func check(_ key: Key) -> KVError? {
                if key.count == 0 { return .emptyKey }
                return key.count > keyLimit ? .keyTooLarge(size: key.count, limit: keyLimit) : nil
            }
            func check(value: [UInt8]) -> KVError? {
                value.count > valueLimit ? .valueTooLarge(size: value.count, limit: valueLimit) : nil
            }
            switch command {
            case .get(let key), .delete(let key), .increment(let key, _), .custom(_, let key, _):
                return check(key)
            case .set(let key, let value), .compareAndSwap(let key, _, let value), .getSet(let key, let value),
                 .append(let key, let value):
                return check(key) ?? check(value: value)
            case .setMany(let pairs, _):
                for pair in pairs {
                    if let error = check(pair.key) ?? check(value: pair.value) { return error }
                }
                return nil
            case .deleteMany(let keys):
                for key in keys {
                    if let error = check(key) { return error }
                }
                return nil
            case .openSession:
                return nil
            case .publish(let channel, let message):
                return check(channel) ?? check(value: message)
            case .session(_, let inner):
                return violation(in: inner)
            case .collection(let key, let operation):
                if let error = check(key) { return error }
                for item in operation.payloads {
                    if let error = check(value: item) { return error }
                }
                return nil
            case .setWith(let key, let value, let condition, _, _):
                if case .ifEqual(let expected) = condition, let error = check(value: expected) { return error }
                return check(key) ?? check(value: value)
            case .transaction(let watches, let commands):
                for watch in watches {
                    if let error = check(watch.key) { return error }
                }
                for command in commands {
                    if let error = violation(in: command) { return error }
                }
                return nil
            case .expire, .persist, .timeToLive, .getAndExpire, .purgeExpired, .keyspace, .rename, .copy, .flushAll:
                for key in command.keys {
                    if let error = check(key) { return error }
                }
                return nil
            case .streamBatch(let batch):
                for change in batch.changes {
                    if let error = violation(in: change.command) { return error }
                }
                return nil
            case .setDRState, .setActiveActive, .drSeedChunk, .drRejoin, .activeActiveTopology:
                return nil
            case .activeActiveConflict(let conflictCommand):
                switch conflictCommand {
                case .setStrategies: return nil
                case .resolve(let key, _, let choice):
                    if case .value(let value) = choice { return check(key) ?? check(value: value) }
                    return check(key)
                case .setWithContext(let key, let value, _): return check(key) ?? check(value: value)
                }
            case .activeActiveCatchUp(let page):
                for state in page.batch.states {
                    if let error = check(state.key) ?? state.string?.value.flatMap({ check(value: $0) }) { return error }
                }
                return nil
            case .activeActiveBatch(let batch):
                for state in batch.states {
                    if let error = check(state.key) ?? state.string?.value.flatMap({ check(value: $0) }) { return error }
                }
                return nil
            }
        }
    }

    public typealias Output = CommandResult

    /// The size limits in force.
    public let limits: Limits
    /// The index of the last entry applied (0 if none).
    public internal(set) var appliedIndex: LogIndex = 0
    /// The store revision: the number of successful writes so far.
    public internal(set) var revision: UInt64 = 0

    @usableFromInline var entries = KVTable()
    @usableFromInline var orderedKeys = OrderedKeyIndex()
    var customHandlers: [String: CustomCommandHandler] = [:]
    /// The set and hash keys (a key is a string in `entries` or here, never both).
    var collections: [Key: StoredCollection] = [:]
    /// The counter of this replica's last dot (see `CollectionValue`).
    var dotCounter: UInt64 = 0
    /// The hybrid logical clock timestamp of the last hash write.
    var lastTimestamp: HLCTimestamp
    /// Open client sessions by ID (see `ClientSessionRequest`).
    var sessions: [UInt64: ClientSession] = [:]
    /// The deadlines of the keys that expire (see `StateMachine+Expiry.swift`).
    var expiry = ExpiryIndex()
    /// The apply clock: the highest leader timestamp (milliseconds since the Unix
    /// epoch) of the entries applied so far. Deadlines are compared with it when
    /// entries are applied, so every replica expires a key at the same place in the
    /// log; it never runs backwards, even when a new leader's clock is behind.
    public internal(set) var expiryClock: UInt64 = 0
    /// The cluster's disaster-recovery state (role, epoch, link cursors).
    public internal(set) var drState = DRState()
    /// The active-active settings, link cursors and CRDT metadata (empty unless enabled).
    var activeActive = ActiveActiveState()
    /// The sets and hashes the command being applied emptied, with their causal
    /// context (active-active only; cleared around each command).
    var activeActiveEmptied: [Key: CollectionValue] = [:]
    /// A standby's re-seed in progress: the primary's snapshot bytes staged so far
    /// (DRSeed.swift; at most `limits.maxSeedBytes`).
    var drSeed: DRSeedStaging?
    /// Active-active catch-ups in progress, by source (ActiveActiveCatchUp.swift; snapshot section 6).
    var activeActiveCatchUpProgress: [String: ActiveActiveCatchUpProgress] = [:]
    /// The active-active topology (ActiveActiveTopologyCommand.swift; snapshot section 7).
    var activeActiveTopologyState: ActiveActiveTopology?
    /// Its version (zero: a starting topology, or none).
    var activeActiveTopologyVersionState = ActiveActiveTopologyVersion.zero
    /// The conflict strategies, manual queue and audit trail (snapshot section 5).
    var activeActiveConflicts = ActiveActiveConflictState()
    /// The merge functions of the `custom` strategy, by name (registered, not replicated).
    var mergeFunctions: [String: ActiveActiveMergeFunction] = [:]
    /// The context token of the `setWithContext` being applied (`nil` otherwise).
    var activeActiveWriteToken: ActiveActiveContext?
    /// The audit rule and detail of the resolving write being applied (`nil`: `overwrite`).
    var activeActiveWriteRule: (rule: String, detail: String)?
    /// Whether a peer's plain LWW strings are joined by the direct path
    /// (`mergePlainString`); tests turn it off to compare with the general join.
    var mergesPlainStringsDirectly = true
    /// Keys `warmActiveActive` found ahead of a merge (a statistic, so its loads stay).
    var activeActiveWarmed: UInt64 = 0

    /// The replica ID this state machine writes CRDT metadata (dots, timestamps) under:
    /// one per cluster, the same on every node of the cluster, distinct between
    /// clusters that replicate to each other.
    public let replica: ReplicaID

    /// The replica ID used when none is configured.
    public static let defaultReplica: ReplicaID = "aegis"

    /// The size of a full arena slab, the unit an `ArenaSlabSource` hands out (4 MiB).
    public static let arenaSlabBytes = ValueArena.slabSize

    /// Takes the memory of full-size arena slabs from `source` until called with `nil`
    /// (a restart's replay; see `ArenaSlabSource`). Changes no state.
    public mutating func takeArenaSlabs(from source: (any ArenaSlabSource)?) { entries.arena.slabSource = source }

    /// Creates an empty state machine.
    ///
    /// - Parameters:
    ///   - limits: key, value and collection size limits, the same on every replica.
    ///   - customCommands: the application's custom commands, the same on every replica.
    ///   - replica: the cluster's replica ID for CRDT metadata, the same on every replica.
    public init(limits: Limits = Limits(), customCommands: [CustomCommandHandler] = [],
                replica: ReplicaID = StateMachine.defaultReplica) {
        self.limits = limits
        self.replica = replica
        self.lastTimestamp = HLCTimestamp(physical: 0, logical: 0, replica: replica)
        for handler in customCommands { customHandlers[handler.name] = handler }
    }

    /// Registers (or replaces) a custom command handler. Register the same handlers
    /// on every replica before applying entries that use them.
    public mutating func register(_ handler: CustomCommandHandler) {
        customHandlers[handler.name] = handler
    }

    /// Reserves room for `keyCount` keys, avoiding rehashing while the store grows.
    public mutating func reserveCapacity(_ keyCount: Int) {
        entries.reserveCapacity(keyCount)
    }

    /// The number of keys, of every type.
    public var count: Int { entries.count + collections.count }

    /// `true` when there are no keys.
    public var isEmpty: Bool { entries.count == 0 && collections.isEmpty }

    // MARK: Applying

    /// Applies one committed log entry. Command entries are decoded and executed;
    /// `.noOp` and `.configChange` entries only advance `appliedIndex`. Entries whose
    /// bytes do not decode fail with the decoding error and also advance the index
    /// (every replica fails them the same way). An entry at or below `appliedIndex`
    /// fails with `.alreadyApplied` and changes nothing.
    @discardableResult
    public mutating func apply(_ entry: LogEntry) -> CommandResult {
        guard entry.index > appliedIndex else { return alreadyApplied(entry.index) }
        guard entry.type == .command else {
            appliedIndex = entry.index
            advanceClock(to: entry.timestamp)
            return CommandResult(index: entry.index, revision: revision)
        }
        // A cluster that is not the primary refuses client writes: the general path checks.
        if drState.role == .primary, !activeActive.enabled, let result = applyInPlace(entry) { return result }
        let decoded = entry.data.withUnsafeBytes { raw in Result { () throws(KVError) in try Command.decode(raw) } }
        switch decoded {
        case .success(let command):
            return apply(command, at: entry.index, timestamp: entry.timestamp)
        case .failure(let error):
            appliedIndex = entry.index
            advanceClock(to: entry.timestamp)
            return CommandResult(index: entry.index, revision: revision, error: error)
        }
    }

    /// Applies a decoded command as the entry at `index`, whose leader timestamp
    /// (milliseconds since the Unix epoch, `LogEntry.timestamp`) is `timestamp`.
    /// Indexes must increase; gaps are accepted (for example the first entry after a
    /// snapshot restore), so the caller must not skip committed entries.
    @discardableResult
    public mutating func apply(_ command: Command, at index: LogIndex, timestamp: UInt64 = 0) -> CommandResult {
        guard index > appliedIndex else { return alreadyApplied(index) }
        appliedIndex = index
        advanceClock(to: timestamp)
        // A DR standby or a fenced primary takes writes only through its stream.
        if drState.role != .primary && command.isWrite && !command.isReplicationControl {
            return failure(.readOnly(role: drState.role, epoch: drState.epoch, primary: drState.primary), at: index)
        }
        return execute(command, at: index, timestamp: timestamp)
    }

    /// Executes a command as (part of) the entry at `index`, which is already recorded
    /// as applied: first removes the keys it names whose deadline passed, as every
    /// replica does at this place in the log.
    mutating func execute(_ command: Command, at index: LogIndex, timestamp: UInt64) -> CommandResult {
        switch command {
        case .streamBatch(let batch):
            return applyStream(batch, at: index)
        case .setDRState(let transition):
            return applyTransition(transition, at: index)
        case .drSeedChunk(let chunk):
            return applySeedChunk(chunk, at: index)
        case .drRejoin(let transition):
            return applyRejoin(transition, at: index)
        case .openSession:
            return openSession(at: index, timestamp: timestamp)
        case .session(let request, let inner):
            guard inner.isWrite, inner.type != .openSession, inner.type != .session else {
                return failure(.malformedCommand("a session command must wrap a write that is not a session command"), at: index)
            }
            return applySession(request, inner, at: index, timestamp: timestamp)
        case .publish(let channel, let message):
            // Nothing changes: the entry exists to be delivered (see `Command.publish`).
            if let error = validate(channel) ?? validate(value: message) { return failure(error, at: index) }
            return CommandResult(index: index, revision: revision)
        case .purgeExpired(let keys):
            return purgeExpired(keys, at: index)
        case .transaction(let watches, let commands):
            return applyTransaction(watches: watches, commands: commands, at: index, timestamp: timestamp)
        case .setActiveActive(let settings):
            return applyActiveActiveSettings(settings, at: index)
        case .activeActiveBatch(let batch):
            return applyActiveActiveBatch(batch, at: index)
        case .activeActiveCatchUp(let page):
            return applyActiveActiveCatchUp(page, at: index)
        case .activeActiveTopology(let change):
            return applyActiveActiveTopology(change, at: index)
        case .activeActiveConflict(let conflictCommand):
            return applyActiveActiveConflictCommand(conflictCommand, at: index, timestamp: timestamp)
        default:
            if activeActive.enabled && command.isWrite { return executeTracked(command, at: index, timestamp: timestamp) }
        }
        return executeUntracked(command, at: index, timestamp: timestamp)
    }

    /// Executes a command that is not one of the special ones above, without active-active
    /// tracking (the path of every command on a plain cluster).
    mutating func executeUntracked(_ command: Command, at index: LogIndex, timestamp: UInt64) -> CommandResult {
        if !expiry.isEmpty { for key in command.keys { expireIfDue(key) } }
        if command.type.encodingVersion >= 4 { return executeVersion4(command, at: index) }
        switch command {
        case .streamBatch(let batch):
            return applyStream(batch, at: index)
        case .setDRState(let transition):
            return applyTransition(transition, at: index)
        case .setMany(let pairs, let onlyIfNoneExist):
            return setMany(pairs, onlyIfNoneExist: onlyIfNoneExist, at: index)
        case .deleteMany(let keys):
            return removeMany(keys, at: index)
        default:
            break
        }
        if let error = validate(command.key) { return failure(error, at: index) }
        switch command {
        case .get(let key):
            return read(key, at: index)
        case .set(let key, let value):
            if let error = validate(value: value) { return failure(error, at: index) }
            return write(key, value[...], at: index)
        case .delete(let key):
            return remove(key, at: index)
        case .compareAndSwap(let key, let expected, let new):
            if let error = validate(value: new) { return failure(error, at: index) }
            return compareAndSwap(key, expected: expected, new: new, at: index)
        case .increment(let key, let amount):
            return increment(key, by: amount, at: index)
        case .custom(let name, let key, let payload):
            return custom(name, key: key, payload: payload, at: index)
        case .collection(let key, let operation):
            return applyCollection(key, operation, at: index, timestamp: timestamp)
        case .getSet(let key, let value):
            if let error = validate(value: value) { return failure(error, at: index) }
            if !collections.isEmpty && collections[key] != nil { return failure(.wrongType, at: index) }
            return write(key, value[...], at: index)
        case .append(let key, let suffix):
            return append(suffix, to: key, at: index)
        case .setMany, .deleteMany, .openSession, .session, .publish, .streamBatch, .setDRState, .setActiveActive,
             .activeActiveBatch, .activeActiveCatchUp, .drSeedChunk, .drRejoin, .activeActiveConflict, .activeActiveTopology:
            return failure(.malformedCommand("\(command.type) reached the single-key path"), at: index)
        case .expire, .persist, .timeToLive, .setWith, .getAndExpire, .purgeExpired, .transaction, .keyspace,
             .rename, .copy, .flushAll:
            return executeVersion4(command, at: index)
        }
    }

    /// The largest key or value the table can hold whatever the limits say: record
    /// sizes are 32-bit (see `TableSlot`).
    static let storableSize = 1 << 30

    func validate(_ key: Key) -> KVError? {
        if key.count == 0 { return .emptyKey }
        let limit = Swift.min(limits.maxKeySize, Self.storableSize)
        if key.count > limit { return .keyTooLarge(size: key.count, limit: limit) }
        return nil
    }

    func validate(value: [UInt8]) -> KVError? { validate(valueSize: value.count) }

    func validate(valueSize: Int) -> KVError? {
        let limit = Swift.min(limits.maxValueSize, Self.storableSize)
        return valueSize > limit ? .valueTooLarge(size: valueSize, limit: limit) : nil
    }

    private func alreadyApplied(_ index: LogIndex) -> CommandResult {
        failure(.alreadyApplied(index: index, appliedIndex: appliedIndex), at: index)
    }

    func failure(_ error: KVError, at index: LogIndex, current: StoredValue? = nil) -> CommandResult {
        CommandResult(index: index, value: current?.value, previousValue: current?.value,
                      version: current?.version ?? 0, revision: revision, error: error)
    }

    /// Reads `key` as the entry at `index` (a get through the log).
    func read(_ key: Key, at index: LogIndex) -> CommandResult {
        if !collections.isEmpty && collections[key] != nil { return failure(.wrongType, at: index) }
        guard let slot = entries.find(key) else { return CommandResult(index: index, revision: revision) }
        let value = entries.value(at: slot)[...]
        return CommandResult(index: index, valueBytes: value, previousBytes: value,
                             version: entries.header(at: slot).version, revision: revision)
    }

    /// Sets `key` to `value` with one hash lookup: creates the key or bumps its version.
    /// `value` may be a view of the log entry's data; the result keeps that view. As in
    /// Redis, a write that replaces the value removes the key's deadline; INCR, APPEND
    /// and the like pass `keepDeadline`.
    mutating func write(_ key: Key, _ value: ArraySlice<UInt8>, at index: LogIndex,
                        keepDeadline: Bool = false, located: (hash: UInt32, slot: Int?)? = nil,
                        keepingPrevious: Bool = true) -> CommandResult {
        // Like Redis SET, a write replaces a set or hash (one revision for both steps).
        if !collections.isEmpty { collections[key] = nil }
        if !keepDeadline && !expiry.isEmpty { expiry.remove(key) }
        revision += 1
        let revision = self.revision
        // `located`: the caller's lookup of the key, with no write of the table since.
        let hash = located?.hash ?? entries.hash(key)
        let found = located.map { $0.slot } ?? entries.find(key, hash: hash)
        // `keepingPrevious: false`: the result's previous value is left out (a caller that discards it).
        let outcome = value.withUnsafeBytes {
            entries.write(key, hash: hash, found: found, value: $0, revision: revision, keepingPrevious: keepingPrevious)
        }
        if outcome.created { orderedKeys.noteCreated() }
        return CommandResult(index: index, valueBytes: value, previousBytes: outcome.previous?[...],
                             version: outcome.version, revision: revision)
    }

    /// Removes `key`; removing an absent key succeeds without changing the revision.
    mutating func remove(_ key: Key, at index: LogIndex) -> CommandResult {
        guard let removed = entries.remove(key) else {
            // DEL of a set or hash: an observed-remove of every member or field.
            guard removeCollection(key) else { return CommandResult(index: index, revision: revision) }
            return CommandResult(index: index, previousValue: [], revision: revision)
        }
        if !expiry.isEmpty { expiry.remove(key) }
        revision += 1
        orderedKeys.noteRemoved()
        return CommandResult(index: index, previousValue: removed.value, revision: revision)
    }

    mutating func compareAndSwap(_ key: Key, expected: Expectation, new: [UInt8], at index: LogIndex) -> CommandResult {
        if let collection = collections.isEmpty ? nil : collections[key] {
            // SET NX finds the key present; SET IFEQ cannot compare a value it does not hold.
            guard case .version(let version) = expected, version == collection.version else {
                if case .value = expected { return failure(.wrongType, at: index) }
                return failure(.compareFailed(currentVersion: collection.version), at: index)
            }
            return write(key, new[...], at: index)
        }
        let current = entries[key]
        let matches: Bool
        switch expected {
        case .value(let value): matches = current?.value == value
        case .version(let version): matches = (current?.version ?? 0) == version
        }
        guard matches else { return failure(.compareFailed(currentVersion: current?.version ?? 0), at: index, current: current) }
        return write(key, new[...], at: index)
    }

    mutating func increment(_ key: Key, by amount: Int64, at index: LogIndex) -> CommandResult {
        if !collections.isEmpty && collections[key] != nil { return failure(.wrongType, at: index) }
        let current = entries[key]
        var number: Int64 = 0
        if let value = current?.value {
            guard let parsed = parseDecimalInt64(value) else { return failure(.notAnInteger, at: index, current: current) }
            number = parsed
        }
        let (sum, overflow) = number.addingReportingOverflow(amount)
        if overflow { return failure(.incrementOverflow(current: number, amount: amount), at: index, current: current) }
        return write(key, Array(String(sum).utf8)[...], at: index, keepDeadline: true)
    }

    mutating func append(_ suffix: [UInt8], to key: Key, at index: LogIndex) -> CommandResult {
        if !collections.isEmpty && collections[key] != nil { return failure(.wrongType, at: index) }
        let current = entries[key]
        let value = (current?.value ?? []) + suffix
        if let error = validate(value: value) { return failure(error, at: index, current: current) }
        var result = write(key, value[...], at: index, keepDeadline: true)
        result.integer = Int64(value.count)
        return result
    }

    /// Writes every pair as one step: validates every key and value first, then (for
    /// `onlyIfNoneExist`) checks that no key exists, then writes them all.
    mutating func setMany(_ pairs: [KeyValuePair], onlyIfNoneExist: Bool, at index: LogIndex) -> CommandResult {
        for pair in pairs {
            if let error = validate(pair.key) ?? validate(value: pair.value) { return failure(error, at: index) }
        }
        if onlyIfNoneExist {
            for pair in pairs {
                if let slot = entries.find(pair.key) {
                    return failure(.compareFailed(currentVersion: entries.header(at: slot).version), at: index)
                }
                if let collection = collections[pair.key] {
                    return failure(.compareFailed(currentVersion: collection.version), at: index)
                }
            }
        }
        for pair in pairs { _ = write(pair.key, pair.value[...], at: index) }
        var result = CommandResult(index: index, revision: revision)
        result.keyCount = pairs.count
        return result
    }

    /// Removes every key as one step, after validating them all; `keyCount` is the
    /// number of keys that existed (a key given twice counts once).
    mutating func removeMany(_ keys: [Key], at index: LogIndex) -> CommandResult {
        for key in keys {
            if let error = validate(key) { return failure(error, at: index) }
        }
        var removed = 0
        for key in keys where remove(key, at: index).previousBytes != nil { removed += 1 }
        var result = CommandResult(index: index, revision: revision)
        result.keyCount = removed
        return result
    }

    mutating func custom(_ name: String, key: Key, payload: [UInt8], at index: LogIndex) -> CommandResult {
        guard let handler = customHandlers[name] else { return failure(.unknownCustomCommand(name: name), at: index) }
        if !collections.isEmpty && collections[key] != nil { return failure(.wrongType, at: index) }
        let current = entries[key]
        let record = current.map {
            KeyValue(key: key, value: $0.value, version: $0.version, createRevision: $0.createRevision, modRevision: $0.modRevision)
        }
        switch handler.body(record, payload) {
        case .keep:
            return CommandResult(index: index, value: current?.value, previousValue: current?.value,
                                 version: current?.version ?? 0, revision: revision)
        case .set(let value):
            if let error = validate(value: value) { return failure(error, at: index, current: current) }
            return write(key, value[...], at: index)
        case .delete:
            return remove(key, at: index)
        case .reject(let reason):
            return failure(.customCommandRejected(name: name, reason: reason), at: index, current: current)
        }
    }
}

extension StateMachine {
    /// Applies a well-formed set or get entry without decoding it into a `Command`:
    /// the key is read in place and the value is written to the table straight from
    /// the entry's bytes (and the result keeps a view of them instead of a copy).
    /// Returns `nil`, having changed nothing, for any other entry, including malformed
    /// ones, which the general path then decodes (so errors are reported the same way).
    /// Precondition: `entry` is a command entry above `appliedIndex`.
    mutating func applyInPlace(_ entry: LogEntry) -> CommandResult? {
        let data = entry.data
        let parsed = data.withUnsafeBytes { raw -> (type: CommandType, key: Key, value: Range<Int>)? in
            Self.peekPlain(raw).map { ($0.type, Key(copying: UnsafeRawBufferPointer(rebasing: raw[$0.key])), $0.value) }
        }
        guard let (type, key, value) = parsed else { return nil }
        let index = entry.index
        appliedIndex = index
        advanceClock(to: entry.timestamp)
        if let error = validate(key) { return failure(error, at: index) }
        if !expiry.isEmpty { expireIfDue(key) }
        if type == .get { return read(key, at: index) }
        if let error = validate(valueSize: value.count) { return failure(error, at: index) }
        return write(key, data[value], at: index)
    }
}

extension StateMachine {
    /// The type, key and value ranges of an encoded plain `set` or `get` (the commands
    /// applied in place; the value range is empty for a `get`), or `nil` for anything else.
    static func peekPlain(_ raw: UnsafeRawBufferPointer) -> (type: CommandType, key: Range<Int>, value: Range<Int>)? {
        var reader = ByteReader(raw)
        guard let version = reader.readByte(), version >= 1, version <= Command.encodingVersion,
              let rawType = reader.readByte(),
              let type = CommandType(rawValue: rawType), type == .set || type == .get,
              let key = reader.readFieldRange() else { return nil }
        if type == .get { return reader.remaining == 0 ? (type, key, 0 ..< 0) : nil }
        guard let value = reader.readFieldRange(), reader.remaining == 0 else { return nil }
        return (type, key, value)
    }

    /// Warms the cache for applying `entries`: loads, one after another without waiting
    /// (`KVTable.locate`), the table slots their plain `set`s and `get`s will probe and
    /// the records those slots point at, so the CPU overlaps the misses instead of taking them one by one
    /// as each entry is applied. A restart's replay of 1.29M entries into a 3.6M-key
    /// table spent 44 % of its time waiting on those probes (`perf`). Changes nothing;
    /// does nothing for a small table. Returns how many of the keys it found (computed
    /// from what it loaded, so the loads are not optimised away).
    @inline(never) public func warm(for entries: ArraySlice<LogEntry>) -> UInt64 {
        guard entries.count > 1, entries.count <= 4_096, self.entries.count >= 1 << 16 else { return 0 }
        var keys: [Key] = []
        keys.reserveCapacity(entries.count)
        for entry in entries where entry.type == .command {
            entry.data.withUnsafeBytes { raw in
                if let plain = Self.peekPlain(raw) {
                    keys.append(Key(copying: UnsafeRawBufferPointer(rebasing: raw[plain.key])))
                }
            }
        }
        guard self.entries.draining == nil else { return 0 }  // `locate` would look up one by one
        return UInt64(self.entries.locate(keys[...]).indices.count(where: { $0 != nil }))
    }
}

extension ByteReader {
    /// Reads a varint length and skips that many bytes, returning their offsets; `nil`
    /// (with the offset unspecified) if the field is malformed or truncated.
    mutating func readFieldRange() -> Range<Int>? {
        guard let length = try? readVarint(context: { .malformedCommand("") }) ?? nil,
              length <= UInt64(remaining) else { return nil }
        let start = offset
        offset += Int(length)
        return start ..< offset
    }
}

/// Parses a canonical decimal 64-bit signed integer, as Redis does for INCR: an
/// optional `-`, then digits without leading zeros (`"0"` itself is fine; `"-0"`,
/// `"+1"`, `"01"`, `" 1"` and the empty string are not integers).
func parseDecimalInt64(_ bytes: [UInt8]) -> Int64? {
    guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
    let negative = bytes[0] == UInt8(ascii: "-")
    let digits = negative ? bytes.dropFirst() : bytes[...]
    guard let first = digits.first, (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(first) else { return nil }
    if first == UInt8(ascii: "0") && (digits.count > 1 || negative) { return nil }
    var magnitude: UInt64 = 0
    for byte in digits {
        guard (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(byte) else { return nil }
        let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
        let (next, o2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
        if o1 || o2 { return nil }
        magnitude = next
    }
    if negative {
        guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
        return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
    }
    guard magnitude <= UInt64(Int64.max) else { return nil }
    return Int64(magnitude)
}
