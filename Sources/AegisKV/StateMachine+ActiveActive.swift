import AegisCRDT
public import AegisRaft

// Active-active in the state machine (see ActiveActive.swift for the lattice).
//
// Where the state lives: the key-value tables (`entries`, `collections`) hold what
// clients see, exactly as on a plain cluster, so every read path is unchanged. On a
// cluster with active-active enabled, `activeActive.keys` holds the rest of each
// written key's CRDT state: the string register and counters, the stamps, and the
// parts a client does not see (tombstones of deleted keys, a part shadowed by a
// concurrent write of another type). On a plain cluster it is empty and every hook
// below is one `if` on a stored Bool: no memory per key, no work per write.
//
// Rules (each in one place):
// - A local client write runs the ordinary Redis code path, then its effect is
//   absorbed into the key's CRDT state with a fresh stamp of this cluster's hybrid
//   logical clock (`executeTracked`), so sequential behaviour is exactly Redis's.
// - A peer's batch is joined key by key, then the view is written to the tables
//   (`applyActiveActiveBatch`); the clock moves past every stamp received, so a later
//   local write wins over everything this cluster has seen.
// - A batch with a stamp more than `maxClockSkewMillis` ahead of this cluster's apply
//   clock is refused whole (KVError.clockSkew): refusing, not clamping, keeps every
//   cluster's join identical (a clamp would depend on each receiver's clock); the link
//   retries it, so nothing is lost, and the link's health shows the error.

extension StateMachine {
    /// This cluster's active-active settings.
    public var activeActiveSettings: ActiveActiveSettings { activeActive.settings }

    /// The incoming active-active links' cursors, by source cluster ID.
    public var activeActiveCursors: [String: ActiveActiveCursor] { activeActive.cursors }

    /// The number of keys with active-active metadata (tombstones included).
    public var activeActiveMetadataCount: Int { activeActive.keys.count }

    /// The whole CRDT state of `key` (what a peer would be sent): the tables' view
    /// with the stored metadata. A key written before active-active was enabled gets
    /// the stamp `HLCTimestamp.counterBase`.
    public func activeActiveState(of key: Key) -> ActiveActiveKeyState {
        var state = storedActiveActiveState(of: key) ?? ActiveActiveKeyState(key: key)
        if state.string?.isLive != true, let slot = entries.find(key) {
            state.string = ActiveActiveString(stamp: state.string?.stamp ?? .counterBase, value: entries.value(at: slot))
        }
        if let stored = collections.isEmpty ? nil : collections[key] {
            switch stored.value {
            case .set: state.set = ActiveActiveCollection(value: stored.value, stamp: state.set?.stamp ?? .counterBase)
            case .hash: state.hash = ActiveActiveCollection(value: stored.value, stamp: state.hash?.stamp ?? .counterBase,
                                                             counters: state.hash?.counters ?? [:])
            }
        }
        return state
    }

    /// The states of `keys` (each once, in ascending order), leaving out keys with none.
    public func activeActiveStates(for keys: some Sequence<Key>) -> [ActiveActiveKeyState] {
        activeActiveStates(ascending: Set(keys).sorted())
    }

    /// The states of `keys` (distinct, ascending), leaving out keys with none.
    func activeActiveStates(ascending keys: [Key]) -> [ActiveActiveKeyState] {
        var states: [ActiveActiveKeyState] = []
        states.reserveCapacity(keys.count)
        for key in keys {
            let state = activeActiveState(of: key)
            if !state.isEmpty { states.append(state) }
        }
        return states
    }

    /// The batch a peer gets for this cluster's committed `entries` after `afterIndex`
    /// (in order, as the log holds them): the current states of the keys this
    /// cluster's own clients wrote there. Only entries this state machine has applied
    /// are covered (`lastIndex <= appliedIndex`), so no write is skipped. In a mesh
    /// merged peer batches are not forwarded (every cluster hears each origin
    /// directly); in a star or tree (`ActiveActiveTopology.forwards`) the keys of the
    /// batches and catch-up pages merged from other neighbours than `peer` (the
    /// receiver) are shipped too, with the reports of other clusters relayed (see
    /// ActiveActiveTopology.swift for the rules).
    public func activeActiveBatch(source: String, after afterIndex: UInt64, entries: [LogEntry], sourceCommit: UInt64,
                                  sourceTime: UInt64, maxStates: Int = ActiveActiveBatch.maxStates,
                                  peer: String? = nil) -> ActiveActiveBatch {
        let topology = activeActiveTopologyState
        let forwarding = topology?.forwards == true && peer != nil
        var keys = Set<Key>()
        var last = afterIndex
        for entry in entries where entry.index > last && entry.index <= appliedIndex {
            // The type is read before decoding: merged batches (megabytes) are skipped undecoded
            // unless this cluster forwards them.
            if entry.type == .command, let type = Command.peekType(entry.data) {
                let written = forwarding || !type.isReplicationControl
                    ? keysToShip(entry, type: type, topology: topology, source: source, peer: peer) : []
                if keys.count + written.count > maxStates && !keys.isEmpty { break }
                keys.formUnion(written)
            }
            last = entry.index
        }
        var relayed: [String: [String: ActiveActiveProgress]] = [:]
        if forwarding, let topology {
            // Only clusters of the topology (at most 64, as a batch may carry).
            relayed = activeActive.reports.filter { $0.key != peer && $0.key != source && topology.clusters[$0.key] != nil }
        }
        return ActiveActiveBatch(source: source, afterIndex: afterIndex, lastIndex: last,
                                 sourceCommit: Swift.max(sourceCommit, last), sourceTime: sourceTime,
                                 states: activeActiveStates(ascending: keys.sorted()),
                                 progress: activeActiveProgress(includingOwn: last == appliedIndex), relayed: relayed,
                                 topology: shippedActiveActiveTopology)
    }

    /// The keys of `entry` shipped to `peer`: a local client write's keys, or (in a
    /// forwarding topology) a merged batch's or catch-up page's keys when the topology's
    /// forwarding rule lets the change go from the link it came from to `peer`.
    private func keysToShip(_ entry: LogEntry, type: CommandType, topology: ActiveActiveTopology?, source: String,
                            peer: String?) -> [Key] {
        // A plain SET or GET (most entries) gives its key without a whole decode.
        if type == .set || type == .get, let key = entry.data.withUnsafeBytes({ raw in
            Self.peekPlain(raw).map { Key(copying: UnsafeRawBufferPointer(rebasing: raw[$0.key])) }
        }) {
            return type == .set ? [key] : []
        }
        guard let command = try? Command(decoding: entry.data) else { return [] }
        switch command {
        case .activeActiveBatch(let batch):
            return forwarded(from: batch.source, topology: topology, source: source, peer: peer) ? batch.states.map(\.key) : []
        case .activeActiveCatchUp(let page):
            return forwarded(from: page.batch.source, topology: topology, source: source, peer: peer)
                ? page.batch.states.map(\.key) : []
        default:
            guard !type.isReplicationControl, command.isWrite else { return [] }
            return command.type == .flushAll ? allKeys() : command.keys
        }
    }

    /// Whether changes merged from the link of `neighbour` go on to `peer` (their
    /// origin is `neighbour` or a cluster behind it: never `peer` in a tree).
    private func forwarded(from neighbour: String, topology: ActiveActiveTopology?, source: String, peer: String?) -> Bool {
        guard let topology, let peer else { return false }
        return topology.forwards(origin: neighbour, cameFrom: neighbour, to: peer, at: source)
    }

    // MARK: Settings

    /// Applies a change of the active-active settings: enabling keeps the data and
    /// starts keeping metadata; disabling drops every piece of metadata and cursor.
    mutating func applyActiveActiveSettings(_ settings: ActiveActiveSettings, at index: LogIndex) -> CommandResult {
        if settings.enabled {
            activeActive.settings = settings
        } else {
            activeActive = ActiveActiveState()
        }
        revision += 1
        return CommandResult(index: index, revision: revision)
    }

    // MARK: Merging a peer's batch

    /// Joins a peer's batch as the entry at `index`: `integer` is the link's cursor
    /// afterwards, `keyCount` the number of key states joined.
    mutating func applyActiveActiveBatch(_ batch: ActiveActiveBatch, at index: LogIndex) -> CommandResult {
        guard activeActive.enabled else { return failure(.activeActiveDisabled, at: index) }
        guard batch.source != replica.rawValue else {
            return failure(.malformedCommand("a batch from this cluster itself (\(batch.source))"), at: index)
        }
        let applied = activeActive.cursors[batch.source]?.lastIndex ?? 0
        guard batch.afterIndex <= applied else {
            var result = failure(.streamGap(source: batch.source, cursor: applied, afterIndex: batch.afterIndex), at: index)
            result.integer = Int64(clamping: applied)
            return result
        }
        if let error = activeActiveRefusal(of: batch) { return failure(error, at: index) }
        var count = 0
        if batch.lastIndex > applied {
            for (position, remote) in batch.states.enumerated() {
                count += 1
                if position % Self.mergeGroup == 0 { warmActiveActive(batch.states, from: position) }
                if mergesPlainStringsDirectly && mergePlainString(remote, at: index) { continue }
                var state = activeActiveState(of: remote.key)
                let before = state.string
                state.merge(remote)
                resolveMergedString(&state, before: before, remote: remote.string)
                installActiveActive(state, at: index)
                remote.forEachStamp { observe($0) }
            }
        }
        let last = Swift.max(applied, batch.lastIndex)
        let previous = activeActive.cursors[batch.source]
        activeActive.cursors[batch.source] = ActiveActiveCursor(
            lastIndex: last, sourceCommit: Swift.max(previous?.sourceCommit ?? 0, batch.sourceCommit, last),
            sourceTime: Swift.max(previous?.sourceTime ?? 0, batch.sourceTime))
        noteActiveActiveProgress(of: batch)
        adoptActiveActiveTopology(batch.topology)
        collectStableActiveActiveParts()
        var result = CommandResult(index: index, revision: revision)
        result.integer = Int64(clamping: last)
        result.keyCount = count
        return result
    }

    /// Joins the commonest state a peer sends, a plain LWW string (see
    /// ActiveActiveKeyTable), into a key whose metadata is a plain record or that does
    /// not exist here, without building the key's whole state: the join of two such
    /// registers is the one with the higher stamp, and the view is its value. Exactly
    /// what the general join below does for them (the table is written only when its
    /// value changes); `false` leaves every other case (equal stamps, whose tie rule
    /// compares values, included) to it, with nothing changed.
    private mutating func mergePlainString(_ remote: ActiveActiveKeyState, at index: LogIndex) -> Bool {
        guard let theirs = ActiveActiveKeyTable.plainStamp(of: remote), let value = remote.string?.value else { return false }
        let key = remote.key
        let hash = entries.hash(key)
        let slot = entries.find(key, hash: hash)
        let metadata = activeActive.keys.lookup(key)
        switch metadata.record {
        case .plain(let mine)?:
            guard mine != theirs, slot != nil else { return false }
            if theirs < mine {
                observe(theirs)
                return true
            }
        case nil:
            guard slot == nil, collections.isEmpty || collections[key] == nil else { return false }
        case .full?:
            return false
        }
        if slot.map({ position in !entries.withValue(at: position) { $0.elementsEqual(value) } }) ?? true {
            _ = write(key, value[...], at: index, keepDeadline: true, located: (hash, slot), keepingPrevious: false)
        }
        activeActive.keys.setPlain(key, theirs, found: metadata)
        observe(theirs)
        return true
    }

    /// The key states whose lookups `warmActiveActive` starts together.
    static let mergeGroup = 64

    /// Before a group of a batch's key states is joined: loads the key-value table's
    /// slots and records and the metadata's buckets and entries of the group's keys,
    /// the loads of different keys overlapping (`KVTable.locate`, `KeySlotMap.touch`),
    /// so the joins' own lookups find them cached. Changes nothing; only for tables
    /// larger than the caches.
    private mutating func warmActiveActive(_ states: [ActiveActiveKeyState], from start: Int) {
        let group = states[start ..< Swift.min(start + Self.mergeGroup, states.count)]
        guard group.count > 1, entries.count >= 1 << 16 else { return }
        let keys = group.map(\.key)
        var found = 0
        if entries.draining == nil { found += entries.locate(keys[...]).indices.count(where: { $0 != nil }) }
        found += activeActive.keys.touch(keys)
        activeActiveWarmed &+= UInt64(found)
    }

    /// Why the batch must be refused whole (checked before anything changes), or `nil`.
    func activeActiveRefusal(of batch: ActiveActiveBatch) -> KVError? {
        let limit = activeActive.settings.maxClockSkewMillis
        let (horizon, overflow) = expiryClock.addingReportingOverflow(limit)
        for state in batch.states {
            if let error = validate(state.key) { return error }
            if let value = state.string?.value, let error = validate(value: value) { return error }
            for version in state.string?.versions ?? [] {
                if let value = version.value, let error = validate(value: value) { return error }
            }
            if state.set != nil || state.hash != nil {
                for part in [state.set, state.hash] {
                    guard let part else { continue }
                    if part.value.count > limits.maxCollectionSize {
                        return .collectionTooLarge(size: part.value.count, limit: limits.maxCollectionSize)
                    }
                    if let error = validatePayloads(of: part.value) { return error }
                }
            }
            if let counters = state.hash?.counters, counters.count > limits.maxCollectionSize {
                return .collectionTooLarge(size: counters.count, limit: limits.maxCollectionSize)
            }
            for (field, counter) in state.hash?.counters ?? [:] {
                if let error = validate(value: field) ?? validate(value: counter.baseValue) { return error }
            }
            if state.set.map({ $0.value.type != .set }) == true || state.hash.map({ $0.value.type != .hash }) == true {
                return .malformedCommand("the state of \(state.key) has a part of the wrong type")
            }
            if !overflow {
                var ahead: HLCTimestamp?
                state.forEachStamp { stamp in if ahead == nil && stamp.physical > horizon { ahead = stamp } }
                if let ahead {
                    return .clockSkew(source: batch.source, aheadMillis: ahead.physical - expiryClock, limitMillis: limit)
                }
            }
        }
        return nil
    }

    /// Checks every member, field and value of a received set or hash against the limits.
    private func validatePayloads(of value: CollectionValue) -> KVError? {
        switch value {
        case .set(let set):
            for member in set.elements { if let error = validate(value: member) { return error } }
        case .hash(let map):
            for field in map.keys {
                if let error = validate(value: field) ?? validate(value: map[field]?.value ?? []) { return error }
            }
        }
        return nil
    }

    /// Moves this cluster's clock past a stamp it received (the HLC receive rule).
    mutating func observe(_ stamp: HLCTimestamp) {
        guard (stamp.physical, stamp.logical) > (lastTimestamp.physical, lastTimestamp.logical) else { return }
        lastTimestamp = HLCTimestamp(physical: stamp.physical, logical: stamp.logical, replica: replica)
    }

    /// A fresh stamp for a local write: after every stamp this cluster issued or
    /// received, at least the apply clock (the entry's leader time).
    mutating func nextActiveActiveStamp() -> HLCTimestamp {
        let last = lastTimestamp
        if expiryClock > last.physical {
            lastTimestamp = HLCTimestamp(physical: expiryClock, logical: 0, replica: replica)
        } else if last.logical < UInt32.max {
            lastTimestamp = HLCTimestamp(physical: last.physical, logical: last.logical + 1, replica: replica)
        } else {
            lastTimestamp = HLCTimestamp(physical: last.physical &+ 1, logical: 0, replica: replica)
        }
        return lastTimestamp
    }

    // MARK: The view

    /// Writes the view of `state` to the tables (when it differs from what they hold)
    /// and keeps the rest as metadata.
    mutating func installActiveActive(_ written: ActiveActiveKeyState, at index: LogIndex) {
        var state = written
        // Only sets and hashes carry a causal context: a string's install skips building
        // the frontier (a dictionary per key, 2 % of `aegis-bench aa`'s samples).
        if state.set != nil || state.hash != nil { state.fillContexts(through: activeActiveDotFrontier) }
        let key = state.key
        switch state.view {
        case .string(let value):
            if !tableHolds(key, value) {
                _ = write(key, value[...], at: index, keepDeadline: true)
            }
        case .collection(let value):
            if entries.remove(key) != nil { orderedKeys.noteRemoved() }
            if var stored = collections[key], stored.value.type == value.type {
                // A wider causal context alone is not a write a client can see.
                let changed = !Self.sameContent(stored.value, value)
                stored.value = value
                if changed {
                    revision += 1
                    stored.version += 1
                    stored.modRevision = revision
                }
                collections[key] = stored
            } else {
                revision += 1
                collections[key] = StoredCollection(value: value, version: 1, createRevision: revision, modRevision: revision)
            }
        case .absent:
            if entries.remove(key) != nil {
                orderedKeys.noteRemoved()
                revision += 1
            }
            if collections.removeValue(forKey: key) != nil { revision += 1 }
            if !expiry.isEmpty { expiry.remove(key) }
        }
        storeActiveActiveMetadata(state)
    }

    /// `true` when the key-value table holds exactly `value` as `key`'s string.
    func tableHolds(_ key: Key, _ value: [UInt8]) -> Bool {
        guard let slot = entries.find(key) else { return false }
        return entries.withValue(at: slot) { $0.elementsEqual(value) }
    }

    /// The key's stored metadata as a whole state (a plain record with the table's
    /// value), or `nil` when it has none.
    func storedActiveActiveState(of key: Key) -> ActiveActiveKeyState? {
        activeActive.keys.state(of: key) { key in entries.find(key).map { entries.value(at: $0) } }
    }

    /// `true` when two sets or hashes have the same members, or fields and values.
    static func sameContent(_ a: CollectionValue, _ b: CollectionValue) -> Bool {
        switch (a, b) {
        case (.set(let x), .set(let y)): return x.elements == y.elements
        case (.hash(let x), .hash(let y)): return x.keys == y.keys && x.keys.allSatisfy { x[$0]?.value == y[$0]?.value }
        default: return false
        }
    }

    /// Keeps `state` as the key's metadata, without the visible set or hash (the table
    /// holds it: an empty placeholder of its type stands in).
    private mutating func storeActiveActiveMetadata(_ state: ActiveActiveKeyState) {
        var meta = state
        switch state.visibleType {
        case .set?: meta.set?.value = .set(ORSet())
        case .hash?: meta.hash?.value = .hash(ORMap())
        case .string?, nil: break
        }
        setActiveActiveMetadata(meta)
    }
}
