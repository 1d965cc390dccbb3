import AegisCRDT
import AegisRaft

extension StateMachine {
    // MARK: Sets and hashes

    /// The type of `key`, or `nil` if it does not exist.
    public func type(of key: Key) -> ValueType? {
        if let stored = collections[key] { return stored.value.type }
        return entries.find(key) == nil ? nil : .string
    }

    /// The CRDT state of a set or hash key, or `nil` if the key is absent or a string.
    public func collection(_ key: Key) -> CollectionValue? { collections[key]?.value }

    /// The number of set and hash keys (included in `count`).
    public var collectionCount: Int { collections.count }

    /// Applies a set, hash or `TYPE` operation as the entry at `index`, whose leader
    /// timestamp (milliseconds since the Unix epoch) is `timestamp`.
    mutating func applyCollection(_ key: Key, _ operation: CollectionOperation, at index: LogIndex,
                                  timestamp: UInt64) -> CommandResult {
        for item in operation.payloads {
            if let error = validate(value: item) { return failure(error, at: index) }
        }
        let existing = collections[key]
        if case .type = operation {
            var result = CommandResult(index: index, revision: revision)
            result.value = Array((type(of: key)?.name ?? "none").utf8)
            return result
        }
        if existing == nil && entries.find(key) != nil { return failure(.wrongType, at: index) }
        if let existing, existing.value.type != operation.valueType { return failure(.wrongType, at: index) }
        switch existing?.value {
        case .set(let set)?: return applySet(key, set, operation, at: index)
        case .hash(let map)?: return applyHash(key, map, operation, at: index, timestamp: timestamp)
        case nil:
            if operation.valueType == .set { return applySet(key, ORSet(), operation, at: index) }
            return applyHash(key, ORMap(), operation, at: index, timestamp: timestamp)
        }
    }

    private mutating func applySet(_ key: Key, _ current: ORSet<[UInt8]>, _ operation: CollectionOperation,
                                   at index: LogIndex) -> CommandResult {
        var result = CommandResult(index: index, revision: revision)
        switch operation {
        case .setMembers:
            result.elements = current.elements.sorted { $0.lexicographicallyPrecedes($1) }
        case .setIsMember(let member):
            result.integer = current.contains(member) ? 1 : 0
        case .setCardinality:
            result.integer = Int64(current.count)
        case .setAdd(let members):
            var set = current
            var added = 0
            var seen = Set<[UInt8]>()
            for member in members where seen.insert(member).inserted && !set.contains(member) { added += 1 }
            if let error = growthError(set.count, adding: added) { return failure(error, at: index) }
            // Every member gets a fresh add, present or not: an add concurrent with a
            // remove in another cluster then wins, as add-wins promises.
            for member in seen.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                do {
                    try set.insert(member, dot: try nextDot())
                } catch {
                    return failure(.collectionFailed(error.description), at: index)
                }
            }
            result = store(key, .set(set), at: index)
            result.integer = Int64(added)
        case .setRemove(let members):
            var set = current
            var removed = 0
            for member in members where set.contains(member) {
                set.remove(member)
                removed += 1
            }
            guard removed > 0 else { break }
            result = store(key, .set(set), at: index)
            result.integer = Int64(removed)
        default:
            return failure(.wrongType, at: index)
        }
        return result
    }

    private mutating func applyHash(_ key: Key, _ current: ORMap<[UInt8], LWWRegister<[UInt8]>>,
                                    _ operation: CollectionOperation, at index: LogIndex,
                                    timestamp: UInt64) -> CommandResult {
        var result = CommandResult(index: index, revision: revision)
        switch operation {
        case .hashGet(let field):
            result.value = current[field]?.value
        case .hashExists(let field):
            result.integer = current[field] == nil ? 0 : 1
        case .hashLength:
            result.integer = Int64(current.count)
        case .hashGetAll:
            for field in current.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                result.elements.append(field)
                result.elements.append(current[field]?.value ?? [])
            }
        case .hashSet(let pairs):
            var latest: [[UInt8]: [UInt8]] = [:]
            for pair in pairs { latest[pair.field] = pair.value }
            let added = latest.keys.count { current[$0] == nil }
            if let error = growthError(current.count, adding: added) { return failure(error, at: index) }
            var map = current
            do {
                let stamp = try nextTimestamp(timestamp)
                for (field, value) in latest.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                    try map.update(field, dot: try nextDot()) { register throws(CRDTError) in
                        register.assign(value, at: stamp)
                        return register
                    }
                }
            } catch {
                return failure(.collectionFailed(error.description), at: index)
            }
            result = store(key, .hash(map), at: index)
            result.integer = Int64(added)
        case .hashDelete(let fields):
            var map = current
            var removed = 0
            for field in fields where map[field] != nil {
                map.remove(field)
                removed += 1
            }
            guard removed > 0 else { break }
            result = store(key, .hash(map), at: index)
            result.integer = Int64(removed)
        case .hashIncrement(let field, let amount):
            var number: Int64 = 0
            if let present = current[field] {
                guard let parsed = parseDecimalInt64(present.value ?? []) else {
                    return failure(.hashValueNotInteger, at: index)
                }
                number = parsed
            }
            let (sum, overflow) = number.addingReportingOverflow(amount)
            if overflow { return failure(.incrementOverflow(current: number, amount: amount), at: index) }
            if let error = growthError(current.count, adding: current[field] == nil ? 1 : 0) {
                return failure(error, at: index)
            }
            var map = current
            do {
                let stamp = try nextTimestamp(timestamp)
                try map.update(field, dot: try nextDot()) { register throws(CRDTError) in
                    register.assign(Array(String(sum).utf8), at: stamp)
                    return register
                }
            } catch {
                return failure(.collectionFailed(error.description), at: index)
            }
            result = store(key, .hash(map), at: index)
            result.integer = sum
        default:
            return failure(.wrongType, at: index)
        }
        return result
    }

    /// Why a set or hash of `count` members or fields cannot take `added` more, or `nil`.
    private func growthError(_ count: Int, adding added: Int) -> KVError? {
        count + added > limits.maxCollectionSize
            ? .collectionTooLarge(size: count + added, limit: limits.maxCollectionSize) : nil
    }

    /// Stores the new state of a collection key (removing the key if it is left
    /// empty) as one write: bumps the revision and the key's version.
    private mutating func store(_ key: Key, _ value: CollectionValue, at index: LogIndex) -> CommandResult {
        revision += 1
        if value.count == 0 {
            collections[key] = nil
            return CommandResult(index: index, revision: revision)
        }
        var stored = collections[key] ?? StoredCollection(value: value, version: 0, createRevision: revision,
                                                          modRevision: revision)
        stored.value = value
        stored.version += 1
        stored.modRevision = revision
        collections[key] = stored
        return CommandResult(index: index, version: stored.version, revision: revision)
    }

    /// The next dot of this replica: one counter for every set and hash, so no dot is
    /// ever used twice.
    private mutating func nextDot() throws(CRDTError) -> Dot {
        guard dotCounter < UInt64.max else {
            throw CRDTError(.overflow, "the dot counter of \(replica) is exhausted; use a new replica ID")
        }
        dotCounter += 1
        return Dot(replica: replica, counter: dotCounter)
    }

    /// The hybrid logical clock timestamp of a write in an entry whose leader
    /// timestamp is `physical`: never the local clock, so every replica computes the
    /// same timestamp, and always after the previous one.
    private mutating func nextTimestamp(_ physical: UInt64) throws(CRDTError) -> HLCTimestamp {
        var clock = HybridLogicalClock(replica: replica, resumingAfter: lastTimestamp)
        lastTimestamp = try clock.now(physicalTime: physical)
        return lastTimestamp
    }

    /// Removes a set or hash key; `true` if there was one.
    mutating func removeCollection(_ key: Key) -> Bool {
        guard !collections.isEmpty, collections.removeValue(forKey: key) != nil else { return false }
        revision += 1
        return true
    }
}
