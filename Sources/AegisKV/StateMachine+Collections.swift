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
        if case .type = operation {
            var result = CommandResult(index: index, revision: revision)
            result.value = Array((type(of: key)?.name ?? "none").utf8)
            return result
        }
        let existingType = collections[key]?.value.type ?? (entries.find(key) == nil ? nil : ValueType.string)
        if let existingType, existingType != operation.valueType { return failure(.wrongType, at: index) }
        var result = CommandResult(index: index, revision: revision)
        guard operation.isWrite else {
            switch collections[key]?.value {
            case .set(let set)?: read(set, operation, into: &result)
            case .hash(let map)?: read(map, operation, into: &result)
            case nil: read(ORSet(), operation, into: &result)  // every read of an absent key is empty
            }
            return result
        }
        // Take the value out of the table, so that it is the only reference to its
        // storage and is changed in place: a copy would cost O(size) per write.
        var stored = collections.removeValue(forKey: key)
        var value = stored?.value ?? (operation.valueType == .set ? .set(ORSet()) : .hash(ORMap()))
        stored?.value = .set(ORSet())
        let outcome: Result<(integer: Int64, changed: Bool), KVError>
        switch value {
        case .set(var set):
            value = .set(ORSet())
            outcome = write(&set, operation)
            value = .set(set)
        case .hash(var map):
            value = .hash(ORMap())
            outcome = write(&map, operation, timestamp: timestamp)
            value = .hash(map)
        }
        switch outcome {
        case .failure(let error):
            if var stored {  // unchanged: every check comes before the first change
                stored.value = value
                collections[key] = stored
            }
            return failure(error, at: index)
        case .success(let (integer, changed)):
            if changed {
                result = store(key, value, previous: stored, at: index)
            } else if var stored {
                stored.value = value
                collections[key] = stored
            }
            result.integer = integer
            return result
        }
    }

    /// Fills the result of a set read.
    private func read(_ set: ORSet<[UInt8]>, _ operation: CollectionOperation, into result: inout CommandResult) {
        switch operation {
        case .setMembers: result.elements = set.elements.sorted { $0.lexicographicallyPrecedes($1) }
        case .setIsMember(let member): result.integer = set.contains(member) ? 1 : 0
        case .setCardinality: result.integer = Int64(set.count)
        default: break  // hash reads of an absent key: 0, nil or empty
        }
    }

    /// Fills the result of a hash read.
    private func read(_ map: ORMap<[UInt8], LWWRegister<[UInt8]>>, _ operation: CollectionOperation,
                      into result: inout CommandResult) {
        switch operation {
        case .hashGet(let field): result.value = map[field]?.value
        case .hashExists(let field): result.integer = map[field] == nil ? 0 : 1
        case .hashLength: result.integer = Int64(map.count)
        case .hashGetAll:
            for field in map.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                result.elements.append(field)
                result.elements.append(map[field]?.value ?? [])
            }
        default: break
        }
    }

    /// Applies a set write in place: the integer reply and whether the set changed, or
    /// why it failed (then the set is unchanged).
    private mutating func write(_ set: inout ORSet<[UInt8]>, _ operation: CollectionOperation)
        -> Result<(integer: Int64, changed: Bool), KVError> {
        switch operation {
        case .setAdd(let members):
            var seen = Set<[UInt8]>()
            var added = 0
            for member in members where seen.insert(member).inserted && !set.contains(member) { added += 1 }
            if let error = growthError(set.count, adding: added) ?? dotsError(seen.count) { return .failure(error) }
            // Every member gets a fresh add, present or not: an add concurrent with a
            // remove in another cluster then wins, as add-wins promises.
            for member in seen.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                do {
                    try set.insert(member, dot: nextDot())
                } catch {
                    return .failure(.collectionFailed(error.description))  // unreachable: the dot is new
                }
            }
            return .success((Int64(added), true))
        case .setRemove(let members):
            var removed = 0
            for member in members where set.contains(member) {
                set.remove(member)
                removed += 1
            }
            return .success((Int64(removed), removed > 0))
        default:
            return .failure(.wrongType)
        }
    }

    /// Applies a hash write in place, as `write(_:_:)` for sets.
    private mutating func write(_ map: inout ORMap<[UInt8], LWWRegister<[UInt8]>>, _ operation: CollectionOperation,
                                timestamp: UInt64) -> Result<(integer: Int64, changed: Bool), KVError> {
        var updates: [(field: [UInt8], value: [UInt8])] = []
        var integer: Int64 = 0
        switch operation {
        case .hashSet(let pairs):
            var latest: [[UInt8]: [UInt8]] = [:]
            for pair in pairs { latest[pair.field] = pair.value }
            updates = latest.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { ($0.key, $0.value) }
            integer = Int64(latest.keys.count { map[$0] == nil })
        case .hashIncrement(let field, let amount):
            var number: Int64 = 0
            if let present = map[field] {
                guard let parsed = parseDecimalInt64(present.value ?? []) else { return .failure(.hashValueNotInteger) }
                number = parsed
            }
            let (sum, overflow) = number.addingReportingOverflow(amount)
            if overflow { return .failure(.incrementOverflow(current: number, amount: amount)) }
            updates = [(field, Array(String(sum).utf8))]
            integer = sum
        case .hashDelete(let fields):
            var removed = 0
            for field in fields where map[field] != nil {
                map.remove(field)
                removed += 1
            }
            return .success((Int64(removed), removed > 0))
        default:
            return .failure(.wrongType)
        }
        let added = updates.count { map[$0.field] == nil }
        if let error = growthError(map.count, adding: added) ?? dotsError(updates.count) { return .failure(error) }
        let stamp: HLCTimestamp
        do {
            stamp = try nextTimestamp(timestamp)
        } catch {
            return .failure(.collectionFailed(error.description))
        }
        for update in updates {
            do {
                try map.update(update.field, dot: nextDot()) { register throws(CRDTError) in
                    register.assign(update.value, at: stamp)
                    return register
                }
            } catch {
                return .failure(.collectionFailed(error.description))  // unreachable: the dot is new
            }
        }
        return .success((integer, true))
    }

    /// Why a set or hash of `count` members or fields cannot take `added` more, or `nil`.
    private func growthError(_ count: Int, adding added: Int) -> KVError? {
        count + added > limits.maxCollectionSize
            ? .collectionTooLarge(size: count + added, limit: limits.maxCollectionSize) : nil
    }

    /// Why `count` more dots cannot be issued, or `nil`.
    private func dotsError(_ count: Int) -> KVError? {
        UInt64.max - dotCounter >= UInt64(count) ? nil
            : .collectionFailed("the dot counter of \(replica) is exhausted; use a new replica ID")
    }

    /// Stores the new state of a collection key (removing the key if it is left
    /// empty) as one write: bumps the revision and the key's version.
    private mutating func store(_ key: Key, _ value: CollectionValue, previous: StoredCollection?,
                                at index: LogIndex) -> CommandResult {
        revision += 1
        if value.count == 0 {
            if activeActive.enabled { activeActiveEmptied[key] = value }  // its causal context (see executeTracked)
            collections[key] = nil
            if !expiry.isEmpty { expiry.remove(key) }
            return CommandResult(index: index, revision: revision)
        }
        var stored = previous ?? StoredCollection(value: value, version: 0, createRevision: revision, modRevision: revision)
        stored.value = value
        stored.version += 1
        stored.modRevision = revision
        collections[key] = stored
        return CommandResult(index: index, version: stored.version, revision: revision)
    }

    /// The next dot of this replica: one counter for every set and hash, so no dot is
    /// ever used twice. Callers check `dotsError` first.
    mutating func nextDot() -> Dot {
        dotCounter &+= 1
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
        if !expiry.isEmpty { expiry.remove(key) }
        revision += 1
        return true
    }
}
