import AegisRaft

// Expiring keys, deterministic under Raft.
//
// Deadlines are absolute times in milliseconds since the Unix epoch. A command that
// gives a relative time (`EXPIRE key 10`, `SET … PX 500`) is resolved against the
// apply clock `expiryClock`, which is the highest leader timestamp of the entries
// applied so far (`LogEntry.timestamp`, chosen by the leader that proposed the entry
// and carried in the log). No replica reads its own clock while applying, so every
// replica computes the same deadline and removes a key at the same place in the log:
//
// - every command first removes the keys it names whose deadline is at or before the
//   apply clock (Redis's lazy expiry, done at the same log position everywhere);
// - the leader proposes `Command.purgeExpired` with the keys due by its own clock, in
//   bounded batches (see `dueForExpiry(at:limit:)`), which removes those still due at
//   the apply clock (a key written since the leader chose it stays);
// - reads that do not go through the log (`get(_:now:)`) treat a key whose deadline is
//   at or before the reader's time as absent; the node passes
//   `max(its wall clock, expiryClock)`, a time that never runs backwards across
//   leader changes.

extension StateMachine {
    /// Moves the apply clock forward to `timestamp` (it never moves back).
    mutating func advanceClock(to timestamp: UInt64) {
        if timestamp > expiryClock { expiryClock = timestamp }
    }

    /// The key's deadline in milliseconds since the Unix epoch, or `nil` when it has
    /// none (or does not exist).
    public func deadline(of key: Key) -> UInt64? { expiry.deadline(of: key) }

    /// The number of keys that have a deadline.
    public var expiringKeyCount: Int { expiry.count }

    /// Up to `limit` keys whose deadline is at or before `now` (the leader's clock),
    /// earliest first: what the leader proposes in a `Command.purgeExpired`. Mutating
    /// only because it drops stale entries of the deadline heap (the state is unchanged).
    public mutating func dueForExpiry(at now: UInt64, limit: Int) -> [Key] {
        expiry.due(at: now, limit: limit)
    }

    /// The key's record as a reader at time `now` sees it: `nil` when the key does not
    /// exist or its deadline is at or before `now`.
    public func get(_ key: Key, now: UInt64) -> KeyValue? {
        if let deadline = expiry.deadline(of: key), deadline <= now { return nil }
        return get(key)
    }

    /// `true` when the key exists (of any type).
    func exists(_ key: Key) -> Bool {
        entries.find(key) != nil || (!collections.isEmpty && collections[key] != nil)
    }

    /// The key's modify revision, 0 when it does not exist.
    func modRevision(of key: Key) -> UInt64 {
        if !collections.isEmpty, let stored = collections[key] { return stored.modRevision }
        guard let slot = entries.find(key) else { return 0 }
        return entries.header(at: slot).modRevision
    }

    /// Removes the key if its deadline is at or before the apply clock.
    mutating func expireIfDue(_ key: Key) {
        guard let deadline = expiry.deadline(of: key), deadline <= expiryClock else { return }
        removeExpired(key, at: appliedIndex)
    }

    /// The absolute deadline of `time` at the apply clock; `nil` when it does not fit
    /// in a signed 64-bit number of milliseconds.
    func resolve(_ time: ExpiryTime) -> Int64? {
        switch time {
        case .at(let milliseconds):
            return milliseconds
        case .after(let milliseconds):
            guard let clock = Int64(exactly: expiryClock) else { return nil }
            let (sum, overflow) = clock.addingReportingOverflow(milliseconds)
            return overflow ? nil : sum
        }
    }

    /// Records a write of the key's metadata (a deadline change): bumps the store
    /// revision and the key's version and modify revision, so a `WATCH` sees it, as
    /// Redis signals a modified key on `EXPIRE`.
    mutating func touch(_ key: Key, at index: LogIndex) {
        if !collections.isEmpty, var stored = collections[key] {
            revision += 1
            stored.version += 1
            stored.modRevision = revision
            collections[key] = stored
        } else if let slot = entries.find(key) {
            let value = entries.value(at: slot)
            _ = write(key, value[...], at: index, keepDeadline: true)
        }
    }

    /// Gives the key the deadline `when` (absolute), or removes the key when `when` is
    /// at or before the apply clock. The key exists. `touching` records the change as
    /// a write of the key (see `touch(_:at:)`); a caller that just wrote it passes `false`.
    mutating func setDeadline(_ key: Key, _ when: Int64, at index: LogIndex, touching: Bool = true) {
        guard when > 0, UInt64(when) > expiryClock else {
            _ = remove(key, at: index)
            return
        }
        expiry.set(key, deadline: UInt64(when))
        if touching { touch(key, at: index) }
    }

    // MARK: Commands

    mutating func applyExpire(_ key: Key, _ time: ExpiryTime, _ condition: ExpireCondition,
                              at index: LogIndex) -> CommandResult {
        guard let when = resolve(time) else { return failure(.invalidExpireTime, at: index) }
        var result = CommandResult(index: index, revision: revision)
        guard exists(key) else { return result }
        let current = expiry.deadline(of: key).map { Int64(clamping: $0) }
        let allowed: Bool
        switch condition {
        case .always: allowed = true
        case .ifNone: allowed = current == nil
        case .ifSome: allowed = current != nil
        case .ifGreater: allowed = current.map { when > $0 } ?? false  // no deadline is infinite
        case .ifLess: allowed = current.map { when < $0 } ?? true
        case .ifSomeAndLess: allowed = current.map { when < $0 } ?? false
        }
        guard allowed else { return result }
        setDeadline(key, when, at: index)
        result.revision = revision
        result.integer = 1
        return result
    }

    mutating func applyPersist(_ key: Key, at index: LogIndex) -> CommandResult {
        var result = CommandResult(index: index, revision: revision)
        guard expiry.remove(key) else { return result }
        touch(key, at: index)
        result.revision = revision
        result.integer = 1
        return result
    }

    func timeToLive(_ key: Key, at index: LogIndex) -> CommandResult {
        var result = CommandResult(index: index, revision: revision)
        result.time = expiryClock
        if !exists(key) {
            result.integer = -2
        } else if let deadline = expiry.deadline(of: key) {
            result.integer = Int64(clamping: deadline)
        } else {
            result.integer = -1
        }
        return result
    }

    mutating func setWith(_ key: Key, _ value: [UInt8], condition: SetCondition, returnPrevious: Bool,
                          expiry change: ExpiryChange, at index: LogIndex) -> CommandResult {
        if let error = validate(value: value) { return failure(error, at: index) }
        let isCollection = !collections.isEmpty && collections[key] != nil
        let current = entries[key]
        if returnPrevious && isCollection { return failure(.wrongType, at: index) }
        var deadline: Int64?
        if case .set(let time) = change {
            guard let when = resolve(time) else { return failure(.invalidExpireTime, at: index) }
            deadline = when
        }
        let holds: Bool
        switch condition {
        case .always: holds = true
        case .ifAbsent: holds = current == nil && !isCollection
        case .ifPresent: holds = current != nil || isCollection
        case .ifEqual(let expected):
            if isCollection { return failure(.wrongType, at: index) }
            holds = current?.value == expected
        }
        guard holds else {
            let version = isCollection ? collections[key]?.version ?? 0 : current?.version ?? 0
            return failure(.compareFailed(currentVersion: version), at: index, current: current)
        }
        var result = write(key, value[...], at: index, keepDeadline: change == .keep)
        if let deadline { setDeadline(key, deadline, at: index, touching: false) }
        result.revision = revision
        if let slot = entries.find(key) { result.version = entries.header(at: slot).version }
        return result
    }

    mutating func getAndExpire(_ key: Key, _ change: ExpiryChange, at index: LogIndex) -> CommandResult {
        if !collections.isEmpty && collections[key] != nil { return failure(.wrongType, at: index) }
        guard let current = entries[key] else { return CommandResult(index: index, revision: revision) }
        switch change {
        case .keep:
            break
        case .clear:
            if expiry.remove(key) { touch(key, at: index) }
        case .set(let time):
            guard let when = resolve(time) else { return failure(.invalidExpireTime, at: index) }
            setDeadline(key, when, at: index)
        }
        return CommandResult(index: index, value: current.value, previousValue: current.value,
                             version: current.version, revision: revision)
    }

    mutating func purgeExpired(_ keys: [Key], at index: LogIndex) -> CommandResult {
        var purged = 0
        for key in keys {
            guard let deadline = expiry.deadline(of: key), deadline <= expiryClock else { continue }
            removeExpired(key, at: index)
            purged += 1
        }
        var result = CommandResult(index: index, revision: revision)
        result.keyCount = purged
        return result
    }
}
