import AegisCRDT
import AegisRaft

// Local client writes on a cluster with active-active enabled: the ordinary Redis code
// path runs, then each written key's effect is absorbed into its CRDT state with one
// fresh stamp per command (see StateMachine+ActiveActive.swift for where state lives).

/// How a write changes a key's CRDT state.
enum ActiveActiveEffect {
    /// `INCR`/`DECR`…: this cluster's counter contribution grows by the amount.
    case counter(Int64)
    /// A set or hash operation: the part of that type takes the table's new value.
    case collection(ValueType)
    /// `HINCRBY`: the field's PN-counter grows by the amount (ActiveActiveHashCounters.swift).
    case hashCounter([UInt8], Int64)
    /// Anything else (`SET`, `DEL`, `APPEND`, `RENAME`…): the key is replaced by what
    /// the tables now hold (an observed remove of every part, then the new value).
    /// With `ifChanged`, a key whose view did not change is left alone: the command
    /// may succeed without writing it (`DEL` of a missing key, a `COPY` source, `EXPIRE`).
    case replace(ifChanged: Bool)

    init(_ command: Command) {
        switch command {
        case .increment(_, let amount): self = .counter(amount)
        case .collection(_, .hashIncrement(let field, let amount)): self = .hashCounter(field, amount)
        case .collection(_, let operation): self = operation.valueType.map { .collection($0) } ?? .replace(ifChanged: true)
        case .delete, .deleteMany, .rename, .copy, .expire, .persist, .getAndExpire, .purgeExpired, .flushAll, .custom:
            self = .replace(ifChanged: true)
        default: self = .replace(ifChanged: false)
        }
    }
}

extension StateMachine {
    /// Executes a client write on an active-active cluster and absorbs its effect.
    mutating func executeTracked(_ command: Command, at index: LogIndex, timestamp: UInt64) -> CommandResult {
        let keys: [Key]
        if command.type == .flushAll {
            keys = sortedKeys() + sortedCollectionKeys()
        } else {
            var seen = Set<Key>()
            keys = command.keys.filter { seen.insert($0).inserted && validate($0) == nil }
        }
        if !expiry.isEmpty { for key in keys { expireIfDue(key) } }
        let effect = ActiveActiveEffect(command)
        var befores: [ActiveActiveKeyState] = []
        var collectionTypes: [ValueType?] = []
        for key in keys {
            if case .hashCounter = effect {
                befores.append(activeActiveState(of: key))
                collectionTypes.append(collections[key]?.value.type)
            } else if case .collection = effect {
                // Not the table's value: holding it would make the in-place write copy it.
                befores.append(storedActiveActiveState(of: key) ?? ActiveActiveKeyState(key: key))
                collectionTypes.append(collections[key]?.value.type)
            } else {
                befores.append(activeActiveState(of: key))
                collectionTypes.append(nil)
            }
        }
        if case .counter(let amount) = effect, let before = befores.first,
           let string = before.string, string.isLive,
           (string.counters[replica] ?? CounterContribution()).adding(amount) == nil {
            return failure(.incrementOverflow(current: parseDecimalInt64(string.visibleValue ?? []) ?? 0, amount: amount),
                           at: index)
        }
        if case .hashCounter(let field, let amount) = effect, let before = befores.first, let part = before.hash,
           collectionTypes.first == .hash,
           (part.counterForIncrement(of: field, stamp: lastTimestamp).contributions[replica] ?? CounterContribution())
               .adding(amount) == nil {
            let current = parseDecimalInt64(part.counterForIncrement(of: field, stamp: lastTimestamp).visibleValue) ?? 0
            return failure(.incrementOverflow(current: current, amount: amount), at: index)
        }
        activeActiveEmptied = [:]
        let result = executeUntracked(command, at: index, timestamp: timestamp)
        guard result.error == nil else { return result }
        let stamp = nextActiveActiveStamp()
        for (position, before) in befores.enumerated() {
            switch effect {
            case .counter(let amount):
                absorbCounter(before, amount: amount, stamp: stamp, at: index)
            case .collection(let type):
                absorbCollection(before, type: type, tableTypeBefore: collectionTypes[position], stamp: stamp, at: index)
            case .hashCounter(let field, let amount):
                absorbHashCounter(before, field: field, amount: amount, stamp: stamp, at: index)
            case .replace(let ifChanged):
                absorbReplace(before, ifChanged: ifChanged, stamp: stamp, at: index)
            }
        }
        activeActiveEmptied = [:]
        return result
    }

    /// `INCR` by `amount` succeeded: this cluster's contribution grows, on top of the
    /// live register; on a missing or deleted string, on top of a `"0"` register at the
    /// deleted one's stamp (or `counterBase`), so first increments made concurrently
    /// in several clusters all count.
    private mutating func absorbCounter(_ before: ActiveActiveKeyState, amount: Int64, stamp: HLCTimestamp,
                                        at index: LogIndex) {
        var state = before
        if var string = state.string, string.isLive {
            string.counters[replica] = (string.counters[replica] ?? CounterContribution()).adding(amount)
            state.string = string
        } else {
            let base = state.string?.stamp ?? .counterBase
            let contribution = CounterContribution().adding(amount) ?? CounterContribution()
            state.string = ActiveActiveString(stamp: base, value: Array("0".utf8), counters: [replica: contribution])
        }
        installActiveActive(state, at: index)
    }

    /// A set or hash operation succeeded: the part takes the table's value (or, when
    /// the operation emptied it, the emptied value with its causal context), joined
    /// with a tombstone the metadata held, stamped `stamp`.
    private mutating func absorbCollection(_ before: ActiveActiveKeyState, type: ValueType, tableTypeBefore: ValueType?,
                                           stamp: HLCTimestamp, at index: LogIndex) {
        let key = before.key
        guard let now = collections[key]?.value ?? activeActiveEmptied[key] else { return }
        var state = before
        var part = type == .set ? state.set : state.hash
        if tableTypeBefore == type || part == nil {
            part = ActiveActiveCollection(value: now, stamp: Swift.max(part?.stamp ?? stamp, stamp),
                                          counters: part?.counters ?? [:])
            part?.settleCounters()
        } else {
            part = part.map { $0.joined(ActiveActiveCollection(value: now, stamp: stamp)) }
        }
        if type == .set { state.set = part } else { state.hash = part }
        if collections[key] != nil && tableTypeBefore == type {
            // Still visible with the newest stamp: the table is already the view.
            let frontier = activeActiveDotFrontier
            collections[key]?.value.fillContext(through: frontier)
            var meta = state
            if type == .set { meta.set?.value = .set(ORSet()) } else { meta.hash?.value = .hash(ORMap()) }
            setActiveActiveMetadata(meta)
            return
        }
        // New here (from a tombstone or nothing), or emptied: the view may change.
        installActiveActive(state, at: index)
    }

    /// `HINCRBY` of `field` by `amount` succeeded: the field's counter (on its register,
    /// or on a fresh `"0"`, see ActiveActiveHashCounters.swift) takes this cluster's
    /// contribution, under a fresh dot that makes the field present.
    private mutating func absorbHashCounter(_ before: ActiveActiveKeyState, field: [UInt8], amount: Int64,
                                            stamp: HLCTimestamp, at index: LogIndex) {
        var state = before
        var part = state.hash ?? ActiveActiveCollection(value: .hash(ORMap()), stamp: stamp)
        var counter = part.counterForIncrement(of: field, stamp: stamp)
        counter.contributions[replica] = (counter.contributions[replica] ?? CounterContribution()).adding(amount)
        guard case .hash(var map) = part.value else { return }
        let register = LWWRegister(counter.visibleValue, at: counter.base)
        _ = try? map.update(field, dot: nextDot()) { value throws(CRDTError) in  // a fresh dot cannot be present
            value = register
            return value
        }
        part.value = .hash(map)
        part.counters[field] = counter
        part.stamp = Swift.max(part.stamp, stamp)
        state.hash = part
        installActiveActive(state, at: index)
    }

    /// Any other write succeeded: every part is cleared (an observed remove, stamped
    /// `stamp`), then the tables' new content for the key, if any, is the new value.
    private mutating func absorbReplace(_ before: ActiveActiveKeyState, ifChanged: Bool, stamp: HLCTimestamp,
                                        at index: LogIndex) {
        let key = before.key
        let now: ActiveActiveView
        if let slot = entries.find(key) {
            now = .string(entries.value(at: slot))
        } else if let stored = collections[key] {
            now = .collection(stored.value)
        } else {
            now = .absent
        }
        if ifChanged && now == before.view { return }
        var state = before
        if state.string != nil { state.string = ActiveActiveString(stamp: stamp, value: nil) }
        state.set = state.set?.cleared(at: stamp)
        state.hash = state.hash?.cleared(at: stamp)
        switch now {
        case .string(let value):
            state.string = ActiveActiveString(stamp: stamp, value: value)
        case .collection(let value):
            // Moved or copied (RENAME, COPY): a new write of every member or field here.
            let part = ActiveActiveCollection(value: reissued(value, at: stamp), stamp: stamp)
            if value.type == .set {
                state.set = state.set.map { $0.joined(part) } ?? part
            } else {
                state.hash = state.hash.map { $0.joined(part) } ?? part
            }
        case .absent:
            break
        }
        noteLocalStringWrite(&state, before: before, stamp: stamp)
        installActiveActive(state, at: index)
    }

    /// `value`'s members or fields and values under fresh dots and `stamp`, so that a
    /// moved value is a new write at its destination (older field stamps could lose
    /// to a tombstone's there).
    private mutating func reissued(_ value: CollectionValue, at stamp: HLCTimestamp) -> CollectionValue {
        switch value {
        case .set(let set):
            var fresh = ORSet<[UInt8]>()
            for member in set.elements.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                _ = try? fresh.insert(member, dot: nextDot())  // a fresh dot cannot be present
            }
            return .set(fresh)
        case .hash(let map):
            var fresh = ORMap<[UInt8], LWWRegister<[UInt8]>>()
            for field in map.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                let fieldValue = map[field]?.value ?? []
                _ = try? fresh.update(field, dot: nextDot()) { register throws(CRDTError) in
                    register.assign(fieldValue, at: stamp)
                    return register
                }
            }
            return .hash(fresh)
        }
    }

    /// Removes a key whose deadline passed; on an active-active cluster, as a local
    /// `DEL` (deadlines are this cluster's own: they are not part of the CRDT state).
    mutating func removeExpired(_ key: Key, at index: LogIndex) {
        guard activeActive.enabled else {
            _ = remove(key, at: index)
            return
        }
        let before = activeActiveState(of: key)
        _ = remove(key, at: index)
        absorbReplace(before, ifChanged: true, stamp: nextActiveActiveStamp(), at: index)
    }

    /// The keys to ship for a `FLUSHALL`: every key with metadata (after a tracked
    /// flush, every key that existed is a tombstone there).
    func allKeys() -> [Key] { activeActive.keys.keys.sorted() }
}
