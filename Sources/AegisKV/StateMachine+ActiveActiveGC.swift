import AegisCRDT

// Bounded metadata: garbage collection of active-active metadata under causal
// stability (see the AegisKV DocC article, "Bounded metadata").
//
// What grows without it: each set's or hash's causal context collects the dots of
// every add ever removed (dots come from one counter per cluster, so a key's dots have
// holes and sit in the context's cloud), and a key deleted as a set or hash keeps an
// empty part with that context forever.
//
// The vectors: every batch carries its source's *progress vector* (per origin cluster:
// the stamp and the dot counter up to which the source has merged that origin's
// writes; its own entry is its clock and dot counter, sent only when the batch covers
// every entry it applied). A cluster keeps its own merged vector (`merged`, the
// join of what each source says of itself) and each peer's last vector (`reports`).
// Both are replicated state, changed only when a batch is applied, so every node of a
// cluster decides the same at the same log index.
//
// Rule 1, dots (this cluster's own knowledge): a cluster that has merged origin O up to
// dot n holds every dot of O up to n that belongs to a key (a batch carries the whole
// state of each key its source wrote). So each written set or hash marks O's dots up to
// n as seen in its context (`CausalContext.fill(through:)`): the join's result does not
// change, and the cloud of removed dots folds into one counter per origin.
//
// Rule 2, tombstone parts (the group's knowledge): the *stable stamp* is the least,
// over every cluster X of the group and every origin O, of what X reported having
// merged of O (this cluster's own entries are live). Every write stamped at or below it
// is merged in every cluster. An empty set or hash part (what a DEL, SREM or HDEL of the
// last member leaves) whose stamp is stable is dropped: every write it absorbed is in
// every cluster, so no cluster can ship a dot it removed as live again, and any write
// not yet merged here carries a later stamp. The group is this cluster and every
// cluster named by a cursor or a peer's vector; while any of them has not reported on
// every other, the stable stamp is zero and nothing is dropped. A deleted *string*
// keeps its tombstone (key and stamp): a counter's base stamp depends on it (an INCR
// concurrent with the DEL must keep losing), so string tombstones are bounded by the
// number of keys, not by the churn.
//
// When: rule 1 on every write of a set or hash; rule 2 after every merged batch, over
// the keys with an empty part (`pending`, derived from the metadata, so a node restored
// from a snapshot holds the same set).

/// The size of a cluster's active-active metadata that costs nothing to read (for the
/// node status, published after every loop turn).
public struct ActiveActiveMetadataSummary: Sendable, Hashable, Codable {
    /// Keys with metadata (live keys' stamps and counters, tombstones).
    public var keys: Int
    /// Empty set or hash parts waiting for stability.
    public var emptyParts: Int
    /// The stable stamp's physical part (ms): parts at or below it are collected.
    public var stableMillis: UInt64

    /// Creates a summary.
    public init(keys: Int = 0, emptyParts: Int = 0, stableMillis: UInt64 = 0) {
        self.keys = keys
        self.emptyParts = emptyParts
        self.stableMillis = stableMillis
    }
}

/// The size of a cluster's active-active metadata, counted over every key (for tests
/// and tools; see ``ActiveActiveMetadataSummary`` for the cheap part).
public struct ActiveActiveMetadataStats: Sendable, Hashable, Codable {
    /// Keys with metadata (live keys' stamps and counters, tombstones).
    public var keys: Int
    /// Keys whose client view is absent (deleted keys kept as tombstones).
    public var tombstones: Int
    /// Empty set or hash parts waiting for stability.
    public var emptyParts: Int
    /// Dots held out of order in causal contexts (metadata and visible sets and hashes).
    public var contextDots: Int
    /// The metadata's encoded size in bytes (as in a snapshot's section 3 key states).
    public var bytes: Int
    /// The stable stamp's physical part (ms): parts at or below it are collected.
    public var stableMillis: UInt64
}

extension ActiveActiveKeyState {
    /// Marks dots up to `frontier` as seen in the set and hash parts (rule 1).
    mutating func fillContexts(through frontier: [ReplicaID: UInt64]) {
        if var part = set { if part.value.fillContext(through: frontier) { set = part } }
        if var part = hash { if part.value.fillContext(through: frontier) { hash = part } }
    }

    /// Drops empty set and hash parts stamped at or below `stable` (rule 2).
    mutating func dropStableEmptyParts(stable: ActiveActiveProgress) {
        if let part = set, part.value.count == 0, stable.covers(part.stamp) { set = nil }
        if let part = hash, part.value.count == 0, stable.covers(part.stamp) { hash = nil }
    }
}

extension CollectionValue {
    /// Marks dots up to `frontier` as seen; `true` when the context changed.
    @discardableResult
    mutating func fillContext(through frontier: [ReplicaID: UInt64]) -> Bool {
        switch self {
        case .set(var set):
            guard set.fillContext(through: frontier) else { return false }
            self = .set(set)
        case .hash(var map):
            guard map.fillContext(through: frontier) else { return false }
            self = .hash(map)
        }
        return true
    }

    /// The dots its causal context holds out of order.
    var cloudDots: Int {
        switch self {
        case .set(let set): return set.context.cloud.count
        case .hash(let map): return map.presence.context.cloud.count
        }
    }
}

extension StateMachine {
    /// This cluster's progress vector: its merged vector and its own clock and dots.
    func activeActiveProgress(includingOwn: Bool) -> [String: ActiveActiveProgress] {
        var vector = activeActive.merged
        if includingOwn {
            vector[replica.rawValue] = ActiveActiveProgress(physical: lastTimestamp.physical,
                                                            logical: lastTimestamp.logical, dot: dotCounter)
        }
        return vector
    }

    /// Rule 1's frontier: per origin, the dots this cluster has merged (its own: all).
    var activeActiveDotFrontier: [ReplicaID: UInt64] {
        var frontier: [ReplicaID: UInt64] = [replica: dotCounter]
        for (origin, entry) in activeActive.merged { frontier[ReplicaID(origin)] = entry.dot }
        return frontier
    }

    /// Rule 2's stable stamp: the least progress any cluster of the group reported on
    /// any origin of it (zero while one is missing).
    var activeActiveStableStamp: ActiveActiveProgress {
        let zero = ActiveActiveProgress(physical: 0, logical: 0, dot: 0)
        let own = replica.rawValue
        var vectors = activeActive.reports
        vectors[own] = activeActiveProgress(includingOwn: true)
        var group: Set<String>
        if let topology = activeActiveTopologyState {
            // The topology names the group: removed clusters no longer hold GC back,
            // and non-neighbours (known by relayed reports) must have reported too.
            group = Set(topology.clusters.keys)
            group.insert(own)
        } else {
            group = Set(vectors.keys).union(activeActive.cursors.keys)
            for vector in vectors.values { group.formUnion(vector.keys) }
        }
        var least: ActiveActiveProgress?
        for member in group {
            guard let vector = vectors[member] else { return zero }
            for origin in group {
                guard let entry = vector[origin] else { return zero }
                if let current = least, (current.physical, current.logical) <= (entry.physical, entry.logical) { continue }
                least = entry
            }
        }
        return least ?? zero
    }

    /// Notes what a merged batch says: the source's own progress joins this cluster's
    /// merged vector, its whole vector replaces (joins) its report.
    ///
    /// In a forwarding topology (star, tree) the source forwards every change it merged
    /// from its other neighbours, so a batch that covers every entry it applied (it
    /// carries the source's own entry) makes this cluster hold whatever the source
    /// merged of every origin: the whole vector joins the merged vector. The reports
    /// it relays join this cluster's reports of those clusters.
    mutating func noteActiveActiveProgress(of batch: ActiveActiveBatch) {
        let own = replica.rawValue
        if activeActiveTopologyState?.forwards == true {
            for (cluster, vector) in batch.relayed where cluster != own && cluster != batch.source {
                var report = activeActive.reports[cluster] ?? [:]
                for (origin, entry) in vector { report[origin] = report[origin].map { $0.joined(entry) } ?? entry }
                activeActive.reports[cluster] = report
            }
        }
        guard !batch.progress.isEmpty else { return }
        if let sourceOwn = batch.progress[batch.source] {
            let forwarded = activeActiveTopologyState?.forwards == true
                ? batch.progress.filter { $0.key != own } : [batch.source: sourceOwn]
            for (origin, entry) in forwarded {
                activeActive.merged[origin] = activeActive.merged[origin].map { $0.joined(entry) } ?? entry
            }
        }
        var report = activeActive.reports[batch.source] ?? [:]
        for (origin, entry) in batch.progress {
            report[origin] = report[origin].map { $0.joined(entry) } ?? entry
        }
        activeActive.reports[batch.source] = report
    }

    /// Rule 2 over the keys with an empty part.
    mutating func collectStableActiveActiveParts() {
        guard !activeActive.pending.isEmpty else { return }
        let stable = activeActiveStableStamp
        guard stable.physical > 0 || stable.logical > 0 else { return }
        for key in activeActive.pending.sorted() {
            guard var meta = storedActiveActiveState(of: key) else { continue }
            meta.dropStableEmptyParts(stable: stable)
            setActiveActiveMetadata(meta)
        }
    }

    /// Stores a key's metadata (dropping it when empty) and keeps `pending` exact.
    mutating func setActiveActiveMetadata(_ meta: ActiveActiveKeyState) {
        let key = meta.key
        if meta.isEmpty {
            activeActive.keys.set(key, nil)
            activeActive.pending.remove(key)
            return
        }
        // The compact form when the table holds the register's value (ActiveActiveKeyTable).
        if let stamp = ActiveActiveKeyTable.plainStamp(of: meta), let value = meta.string?.value, tableHolds(key, value) {
            activeActive.keys.set(key, .plain(stamp))
            activeActive.pending.remove(key)
            return
        }
        activeActive.keys.set(key, .full(meta))
        if metadataHasEmptyPart(meta) { activeActive.pending.insert(key) } else { activeActive.pending.remove(key) }
    }

    /// `true` when `meta` holds an empty set or hash part that is not the placeholder of
    /// the collection the tables hold.
    func metadataHasEmptyPart(_ meta: ActiveActiveKeyState) -> Bool {
        let visible = collections.isEmpty ? nil : collections[meta.key]?.value.type
        if let part = meta.set, part.value.count == 0, visible != .set { return true }
        if let part = meta.hash, part.value.count == 0, visible != .hash { return true }
        return false
    }

    /// After a snapshot is restored (its section holds every state whole): stores each
    /// key's metadata again by `setActiveActiveMetadata`'s rule, so plain strings take
    /// the compact form the live state machine gives them, and rebuilds `pending`.
    mutating func rebuildActiveActivePending() {
        activeActive.pending = []
        for key in Array(activeActive.keys.keys) {
            guard let meta = activeActive.keys.fullState(key) else { continue }
            setActiveActiveMetadata(meta)
        }
    }

    /// The cheap part of the metadata's size.
    public var activeActiveMetadataSummary: ActiveActiveMetadataSummary {
        ActiveActiveMetadataSummary(keys: activeActive.keys.count, emptyParts: activeActive.pending.count,
                                    stableMillis: activeActive.enabled ? activeActiveStableStamp.physical : 0)
    }

    /// The size of the metadata, counted over every key.
    public var activeActiveMetadataStats: ActiveActiveMetadataStats {
        var stats = ActiveActiveMetadataStats(keys: activeActive.keys.count, tombstones: 0,
                                              emptyParts: activeActive.pending.count, contextDots: 0, bytes: 0,
                                              stableMillis: activeActiveStableStamp.physical)
        var bytes: [UInt8] = []
        for key in activeActive.keys.keys {
            guard let meta = storedActiveActiveState(of: key) else { continue }
            bytes.removeAll(keepingCapacity: true)
            bytes.appendKeyState(meta)
            stats.bytes += bytes.count
            if activeActiveState(of: key).view == .absent { stats.tombstones += 1 }
            for part in [meta.set, meta.hash] { stats.contextDots += part?.value.cloudDots ?? 0 }
        }
        for stored in collections.values { stats.contextDots += stored.value.cloudDots }
        return stats
    }
}
