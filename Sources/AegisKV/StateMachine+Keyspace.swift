import AegisCRDT
import AegisRaft

// The keyspace commands (SCAN, KEYS, RANDOMKEY, EXISTS, DBSIZE, OBJECT ENCODING,
// MEMORY USAGE, RENAME, COPY, FLUSHALL) and transactions, applied from the log.

extension StateMachine {
    /// Runs a command of encoding version 4 (the caller already removed the keys it
    /// names whose deadline passed).
    mutating func executeVersion4(_ command: Command, at index: LogIndex) -> CommandResult {
        for key in command.keys {
            if let error = validate(key) { return failure(error, at: index) }
        }
        switch command {
        case .expire(let key, let time, let condition):
            return applyExpire(key, time, condition, at: index)
        case .persist(let key):
            return applyPersist(key, at: index)
        case .timeToLive(let key):
            return timeToLive(key, at: index)
        case .setWith(let key, let value, let condition, let returnPrevious, let change):
            return setWith(key, value, condition: condition, returnPrevious: returnPrevious, expiry: change, at: index)
        case .getAndExpire(let key, let change):
            return getAndExpire(key, change, at: index)
        case .keyspace(let query):
            return answer(query, at: index)
        case .rename(let source, let destination, let onlyIfAbsent):
            return rename(source, to: destination, onlyIfAbsent: onlyIfAbsent, at: index)
        case .copy(let source, let destination, let replace):
            return copy(source, to: destination, replace: replace, at: index)
        case .flushAll:
            return flushAll(at: index)
        case .purgeExpired, .transaction, .get, .set, .delete, .compareAndSwap, .increment, .custom, .setMany,
             .deleteMany, .collection, .getSet, .append, .openSession, .session, .publish, .streamBatch, .setDRState,
             .setActiveActive, .activeActiveBatch, .activeActiveCatchUp, .drSeedChunk, .drRejoin, .activeActiveConflict,
             .activeActiveTopology:
            return failure(.malformedCommand("\(command.type) reached the version-4 path"), at: index)
        }
    }

    // MARK: Transactions

    /// Applies a transaction: checks every watched key's modify revision (a key past
    /// its deadline is removed first, so its expiry counts as a change), then runs the
    /// commands in order, each with its own result.
    mutating func applyTransaction(watches: [WatchedKey], commands: [Command], at index: LogIndex,
                                   timestamp: UInt64) -> CommandResult {
        for watch in watches {
            if let error = validate(watch.key) { return failure(error, at: index) }
            if !expiry.isEmpty { expireIfDue(watch.key) }
            if modRevision(of: watch.key) != watch.modRevision { return failure(.transactionAborted, at: index) }
        }
        var results: [CommandResult] = []
        results.reserveCapacity(commands.count)
        for command in commands {
            guard command.mayBeInTransaction else {
                results.append(failure(.notAllowedInTransaction, at: index))
                continue
            }
            results.append(execute(command, at: index, timestamp: timestamp))
        }
        var result = CommandResult(index: index, revision: revision)
        result.results = results
        return result
    }

    // MARK: Keyspace reads

    /// Every collection key in ascending order (sorted on each call: O(c log c)).
    func sortedCollectionKeys() -> [Key] { collections.keys.sorted() }

    /// `true` when the key is past its deadline at the apply clock (and so absent to
    /// every command, though not yet removed).
    func isExpired(_ key: Key) -> Bool {
        guard let deadline = expiry.deadline(of: key) else { return false }
        return deadline <= expiryClock
    }

    mutating func answer(_ query: KeyspaceQuery, at index: LogIndex) -> CommandResult {
        orderedKeys.refresh(live: entries, revision: revision)
        var result = CommandResult(index: index, revision: revision)
        switch query {
        case .scan(let after, let pattern, let count, let type):
            let (keys, next) = scanKeys(after: after, pattern: pattern, count: count, type: type)
            result.elements = keys.map(\.bytes)
            result.value = next?.bytes
        case .keys(let pattern, let limit):
            var matched: [[UInt8]] = []
            var failed = false
            forEachKey(after: nil) { key in
                let bytes = key.bytes
                guard !isExpired(key), globMatch(pattern, bytes) else { return true }
                guard matched.count < limit else {
                    failed = true
                    return false
                }
                matched.append(bytes)
                return true
            }
            if failed { return failure(.replyTooLarge(limit: limit), at: index) }
            result.elements = matched
        case .randomKey:
            result.value = randomKey(seed: index)?.bytes
        case .exists(let keys):
            result.integer = Int64(keys.count { exists($0) && !isExpired($0) })
        case .count:
            result.integer = Int64(count)
        case .encoding(let key):
            result.value = encodingName(of: key).map { Array($0.utf8) }
        case .memoryUsage(let key):
            guard let bytes = memoryUsage(of: key) else { break }
            result.value = []
            result.integer = Int64(bytes)
        }
        return result
    }

    /// Calls `body` with every key above `after` (every key when `nil`), strings and
    /// collections merged in ascending order, until it returns `false`. The ordered
    /// index must be current (`orderedKeys.refresh`, done by `answer(_:at:)`).
    func forEachKey(after: Key?, _ body: (Key) -> Bool) {
        let strings = orderedKeys.sorted
        let others = sortedCollectionKeys()
        var i = 0, j = 0
        if let after {
            i = lowerBound(of: after, in: strings)
            if i < strings.count && strings[i] == after { i += 1 }
            j = lowerBound(of: after, in: others)
            if j < others.count && others[j] == after { j += 1 }
        }
        while i < strings.count || j < others.count {
            let key: Key
            if j >= others.count || (i < strings.count && strings[i] < others[j]) {
                key = strings[i]
                i += 1
            } else {
                key = others[j]
                j += 1
            }
            if !body(key) { return }
        }
    }

    /// Examines up to `count` keys after `after`: the matching ones, and the last key
    /// examined when more may follow (the next cursor), `nil` when the scan is done.
    func scanKeys(after: Key?, pattern: [UInt8]?, count: Int, type: ValueType?) -> ([Key], Key?) {
        var keys: [Key] = []
        var examined = 0
        var last: Key?
        var more = false
        let budget = Swift.max(count, 1)
        forEachKey(after: after) { key in
            guard examined < budget else {
                more = true
                return false
            }
            examined += 1
            last = key
            guard !isExpired(key) else { return true }
            if let pattern, !globMatch(pattern, key.bytes) { return true }
            if let type, self.type(of: key) != type { return true }
            keys.append(key)
            return true
        }
        return (keys, more ? last : nil)
    }

    /// A key picked from `seed` (the log index), so every replica picks the same one.
    func randomKey(seed: LogIndex) -> Key? {
        let total = count
        guard total > 0 else { return nil }
        var mixed = seed &* 0x9E37_79B9_7F4A_7C15
        mixed ^= mixed >> 31
        let start = Int(mixed % UInt64(total))
        var candidates: [Key] = []
        var position = 0
        forEachKey(after: nil) { key in
            defer { position += 1 }
            guard !isExpired(key) else { return true }
            candidates.append(key)
            return position < start || candidates.isEmpty
        }
        return candidates.last
    }

    /// Redis's `OBJECT ENCODING` name for the key's value.
    func encodingName(of key: Key) -> String? {
        if !collections.isEmpty, collections[key] != nil { return "hashtable" }
        guard let slot = entries.find(key) else { return nil }
        let value = entries.value(at: slot)
        if value.count <= 20, parseDecimalInt64(value) != nil { return "int" }
        return value.count <= 44 ? "embstr" : "raw"
    }

    /// An estimate of the key's memory in bytes: the key and value bytes plus the
    /// table's per-key record (`RecordHeader`, `TableSlot`) and, for sets and hashes,
    /// their encoded CRDT size.
    func memoryUsage(of key: Key) -> Int? {
        let perKey = 48 + (expiry.deadline(of: key) == nil ? 0 : 24)
        if !collections.isEmpty, let stored = collections[key] {
            return perKey + key.count + stored.value.encoded().count
        }
        guard let slot = entries.find(key) else { return nil }
        return perKey + key.count + Int(entries.header(at: slot).valueLength)
    }

    // MARK: Keyspace writes

    mutating func rename(_ source: Key, to destination: Key, onlyIfAbsent: Bool, at index: LogIndex) -> CommandResult {
        guard exists(source) else { return failure(.noSuchKey, at: index) }
        var result = CommandResult(index: index, revision: revision)
        if source == destination {
            result.integer = onlyIfAbsent ? 0 : 1
            return result
        }
        if onlyIfAbsent && exists(destination) { return result }
        moveOrCopy(source, to: destination, removingSource: true, at: index)
        result.revision = revision
        result.integer = 1
        return result
    }

    mutating func copy(_ source: Key, to destination: Key, replace: Bool, at index: LogIndex) -> CommandResult {
        var result = CommandResult(index: index, revision: revision)
        guard exists(source), source != destination, replace || !exists(destination) else { return result }
        moveOrCopy(source, to: destination, removingSource: false, at: index)
        result.revision = revision
        result.integer = 1
        return result
    }

    /// Writes the source's value and deadline to the destination (replacing it), then
    /// removes the source when `removingSource`. Both keys are distinct; the source exists.
    private mutating func moveOrCopy(_ source: Key, to destination: Key, removingSource: Bool, at index: LogIndex) {
        let deadline = expiry.deadline(of: source)
        if !collections.isEmpty, let stored = collections[source] {
            _ = remove(destination, at: index)
            revision += 1
            collections[destination] = StoredCollection(value: stored.value, version: 1, createRevision: revision,
                                                        modRevision: revision)
        } else if let slot = entries.find(source) {
            let value = entries.value(at: slot)
            _ = remove(destination, at: index)
            _ = write(destination, value[...], at: index)
        }
        if let deadline { expiry.set(destination, deadline: deadline) }
        if removingSource { _ = remove(source, at: index) }
    }

    mutating func flushAll(at index: LogIndex) -> CommandResult {
        let removed = count
        if removed > 0 {
            revision += 1
            entries = KVTable()
            collections = [:]
            expiry.removeAll()
            orderedKeys = OrderedKeyIndex(sortedKeys: [], revision: revision)
        }
        var result = CommandResult(index: index, revision: revision)
        result.keyCount = removed
        return result
    }
}
