public import AegisCRDT

// Active-active replication's CRDT state of one key (see the AegisKV DocC article,
// "Active-active data types"). A key's state is the product of three lattices, one
// per Redis type it may hold, so that any two states join whatever their types:
//
// - the string part: a last-writer-wins register on the hybrid logical clock (HLC),
//   with a PN-counter per register value (INCR contributions, per origin cluster);
// - the set part: an add-wins observed-remove set, with the stamp of its last write;
// - the hash part: an observed-remove map of LWW fields, with the stamp of its last write.
//
// What a client sees (the view) is the live part with the highest stamp: a string
// that is not deleted, a set or hash that is not empty. Every join is commutative,
// associative and idempotent, so clusters that exchanged the same states in any order,
// any number of times, hold the same states and show the same values.

/// One cluster's PN-counter contribution to a string counter: what its `INCR`s added
/// and its `DECR`s took away, since the register value they apply to was written.
public struct CounterContribution: Sendable, Hashable {
    /// The sum of the positive amounts.
    public var increments: UInt64
    /// The sum of the magnitudes of the negative amounts.
    public var decrements: UInt64

    /// Creates a contribution.
    public init(increments: UInt64 = 0, decrements: UInt64 = 0) {
        self.increments = increments
        self.decrements = decrements
    }

    /// Adds `amount`; `nil` (nothing changed) when a sum would pass 2^64 - 1.
    func adding(_ amount: Int64) -> CounterContribution? {
        var next = self
        let (sum, overflow) = amount >= 0 ? increments.addingReportingOverflow(amount.magnitude)
            : decrements.addingReportingOverflow(amount.magnitude)
        if overflow { return nil }
        if amount >= 0 { next.increments = sum } else { next.decrements = sum }
        return next
    }

    /// The pointwise maximum (each cluster's own sums only grow).
    func joined(_ other: CounterContribution) -> CounterContribution {
        CounterContribution(increments: Swift.max(increments, other.increments),
                            decrements: Swift.max(decrements, other.decrements))
    }
}

/// The string part of a key: an LWW register (a value, or deleted) and the counter
/// contributions made on top of that value.
public struct ActiveActiveString: Sendable, Hashable {
    /// The stamp of the write that set the register (a `SET`, a `DEL`, …). Counters
    /// created by `INCR` on a key that never existed use `HLCTimestamp.counterBase`,
    /// so that concurrent first increments in two clusters add up.
    public var stamp: HLCTimestamp
    /// The register's value; `nil` when the string was deleted.
    public var value: [UInt8]?
    /// The counter contributions by origin cluster, made on top of `value`.
    public var counters: [ReplicaID: CounterContribution]
    /// Under a strategy other than `lww`: the concurrent versions (at most one per
    /// origin; the register above is the one the strategy picked), `nil` otherwise
    /// (see ActiveActiveVersions.swift).
    public var versions: [ActiveActiveVersion]?
    /// With `versions`: the causal context, covering every version.
    public var context: ActiveActiveContext = [:]

    /// Creates a string part.
    public init(stamp: HLCTimestamp, value: [UInt8]?, counters: [ReplicaID: CounterContribution] = [:]) {
        self.stamp = stamp
        self.value = value
        self.counters = value == nil ? [:] : counters
    }

    /// `true` unless the string was deleted.
    public var isLive: Bool { value != nil }

    /// The value a client reads: the register's value, or with counters, that value
    /// as a decimal integer plus every contribution (clamped to 64-bit signed when
    /// concurrent increments of several clusters pass it together).
    public var visibleValue: [UInt8]? {
        guard let value else { return nil }
        guard !counters.isEmpty else { return value }
        var total = Int128(parseDecimalInt64(value) ?? 0)
        for contribution in counters.values {
            total += Int128(contribution.increments)
            total -= Int128(contribution.decrements)
        }
        let clamped = Int64(clamping: total)
        return Array(String(clamped).utf8)
    }

    /// The join: the higher `(stamp, live, value)` wins whole; equal ones (the same
    /// register value) join their counters. (Two values at one stamp come only from
    /// strings written before active-active was enabled, at `counterBase`: the
    /// byte-wise greater wins, so every cluster picks the same.)
    public func joined(_ other: ActiveActiveString) -> ActiveActiveString {
        var result = registerJoined(other)
        if let joined = Self.joinedVersions(self, other) {
            result.versions = joined.versions
            result.context = joined.context
        }
        return result
    }

    /// The join of the registers alone (see `joined`).
    private func registerJoined(_ other: ActiveActiveString) -> ActiveActiveString {
        if stamp != other.stamp { return stamp < other.stamp ? other : self }
        if isLive != other.isLive { return isLive ? self : other }
        if let mine = value, let theirs = other.value, mine != theirs {
            return mine.lexicographicallyPrecedes(theirs) ? other : self
        }
        var merged = self
        for (origin, theirs) in other.counters {
            merged.counters[origin] = merged.counters[origin].map { $0.joined(theirs) } ?? theirs
        }
        return merged
    }
}

/// The set or hash part of a key: the CRDT (empty after an observed remove of the
/// whole key, with its causal context kept so that removed adds stay removed) and the
/// stamp of its last write.
public struct ActiveActiveCollection: Sendable, Hashable {
    /// The set or hash.
    public var value: CollectionValue
    /// The stamp of the last write (an add, a remove, a clear).
    public var stamp: HLCTimestamp
    /// A hash's counter fields (`HINCRBY`), by field: PN-counters on top of the
    /// field's register write (see ActiveActiveHashCounters.swift). Empty for a set.
    public var counters: [[UInt8]: HashFieldCounter]

    /// Creates a collection part.
    public init(value: CollectionValue, stamp: HLCTimestamp, counters: [[UInt8]: HashFieldCounter] = [:]) {
        self.value = value
        self.stamp = stamp
        self.counters = counters
    }

    /// Hashes the stamp and the size (equal parts have equal ones).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(stamp)
        hasher.combine(value.count)
    }

    /// The join of the CRDTs, of the hash counters, and the later stamp (both parts
    /// must be of the same type).
    func joined(_ other: ActiveActiveCollection) -> ActiveActiveCollection {
        var merged = self
        merged.value.merge(other.value)
        merged.stamp = Swift.max(stamp, other.stamp)
        for (field, theirs) in other.counters {
            merged.counters[field] = merged.counters[field].map { $0.joined(theirs) } ?? theirs
        }
        merged.settleCounters()
        return merged
    }

    /// The part after an observed remove of every member or field, stamped `stamp`.
    func cleared(at stamp: HLCTimestamp) -> ActiveActiveCollection {
        var value = self.value
        switch value {
        case .set(var set):
            set.removeAll()
            value = .set(set)
        case .hash(var map):
            for field in map.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) { map.remove(field) }
            value = .hash(map)
        }
        return ActiveActiveCollection(value: value, stamp: Swift.max(self.stamp, stamp), counters: counters)
    }
}

/// What a client sees of a key: nothing, a string, or a set or hash.
public enum ActiveActiveView: Sendable, Equatable {
    /// The key does not exist.
    case absent
    /// A string (for a counter, its decimal value).
    case string([UInt8])
    /// A set or hash with at least one member or field.
    case collection(CollectionValue)
}

/// The whole active-active state of one key: what a cluster ships to its peers and
/// what they join into theirs.
public struct ActiveActiveKeyState: Sendable, Hashable {
    /// The key.
    public var key: Key
    /// The string part, if the key was ever a string here or in a peer.
    public var string: ActiveActiveString?
    /// The set part, if the key was ever a set.
    public var set: ActiveActiveCollection?
    /// The hash part, if the key was ever a hash.
    public var hash: ActiveActiveCollection?

    /// Creates a state.
    public init(key: Key, string: ActiveActiveString? = nil, set: ActiveActiveCollection? = nil,
                hash: ActiveActiveCollection? = nil) {
        self.key = key
        self.string = string
        self.set = set
        self.hash = hash
    }

    /// `true` when the key has no part at all.
    public var isEmpty: Bool { string == nil && set == nil && hash == nil }

    /// Joins `other` (a state of the same key) into this one, part by part.
    public mutating func merge(_ other: ActiveActiveKeyState) {
        if let theirs = other.string { string = string.map { $0.joined(theirs) } ?? theirs }
        if let theirs = other.set { set = set.map { $0.joined(theirs) } ?? theirs }
        if let theirs = other.hash { hash = hash.map { $0.joined(theirs) } ?? theirs }
    }

    /// The type a client sees: the live part with the highest stamp (`nil`: absent).
    public var visibleType: ValueType? {
        var best: (type: ValueType, stamp: HLCTimestamp)?
        func consider(_ type: ValueType, _ stamp: HLCTimestamp, live: Bool) {
            guard live else { return }
            if let current = best, stamp < current.stamp { return }
            best = (type, stamp)
        }
        if let string { consider(.string, string.stamp, live: string.isLive) }
        if let set { consider(.set, set.stamp, live: set.value.count > 0) }
        if let hash { consider(.hash, hash.stamp, live: hash.value.count > 0) }
        return best?.type
    }

    /// What a client sees of the key.
    public var view: ActiveActiveView {
        switch visibleType {
        case .string?: return string?.visibleValue.map { .string($0) } ?? .absent
        case .set?: return set.map { .collection($0.value) } ?? .absent
        case .hash?: return hash.map { .collection($0.value) } ?? .absent
        case nil: return .absent
        }
    }

    /// Every stamp in the state (for the receiving cluster's clock and skew check).
    var stamps: [HLCTimestamp] {
        var stamps: [HLCTimestamp] = []
        forEachStamp { stamps.append($0) }
        return stamps
    }

    /// Calls `body` with every stamp in the state (no array built).
    func forEachStamp(_ body: (HLCTimestamp) -> Void) {
        if let string {
            body(string.stamp)
            for version in string.versions ?? [] { body(version.stamp) }
        }
        if let set { body(set.stamp) }
        if let hash { body(hash.stamp) }
    }
}

extension HLCTimestamp {
    /// The stamp of a counter created by `INCR` on a key that never existed: below
    /// every real write, the same in every cluster.
    public static let counterBase = HLCTimestamp(physical: 0, logical: 0, replica: ReplicaID(""))
}

/// A cluster's active-active setting: whether it keeps CRDT metadata and merges
/// peers' states, and the clock skew it accepts from them.
public struct ActiveActiveSettings: Sendable, Hashable {
    /// `true` when the cluster is in an active-active group.
    public var enabled: Bool
    /// The most a peer's stamp may be ahead of this cluster's apply clock, in
    /// milliseconds: a batch with a stamp further ahead is refused whole
    /// (`KVError.clockSkew`), and the link retries it until the clocks agree.
    public var maxClockSkewMillis: UInt64

    /// The default accepted skew: one minute.
    public static let defaultMaxClockSkewMillis: UInt64 = 60_000

    /// Creates settings.
    public init(enabled: Bool, maxClockSkewMillis: UInt64 = ActiveActiveSettings.defaultMaxClockSkewMillis) {
        self.enabled = enabled
        self.maxClockSkewMillis = maxClockSkewMillis
    }
}

/// A batch of a peer cluster's key states for one active-active link: applied by the
/// receiving cluster as one log entry, with the link's cursor.
public struct ActiveActiveBatch: Sendable, Hashable {
    /// The peer (source) cluster's ID.
    public var source: String
    /// The source index the batch follows (must be at most the link's cursor).
    public var afterIndex: UInt64
    /// The last source index the batch covers (`>= afterIndex`).
    public var lastIndex: UInt64
    /// The source's commit index when it read the batch (`>= lastIndex`).
    public var sourceCommit: UInt64
    /// The source leader's wall clock when it made the batch (ms since 1970), for lag.
    public var sourceTime: UInt64
    /// The states of the keys its own clients wrote in the range, in ascending key order.
    public var states: [ActiveActiveKeyState]
    /// The source's merged vector when it made the batch (for garbage collection, see
    /// ``ActiveActiveProgress``): per origin cluster, how far the source has merged
    /// that origin's writes; its own entry only when the batch covers every entry it
    /// had applied. Empty in batches written before garbage collection existed.
    public var progress: [String: ActiveActiveProgress]
    /// In a star or tree (a forwarding topology): the progress vectors the source holds
    /// of other clusters (not of itself nor of the receiver), relayed so that every
    /// cluster learns what non-neighbours have merged (garbage collection must not drop
    /// a tombstone a non-neighbour has not seen). Empty in a mesh.
    public var relayed: [String: [String: ActiveActiveProgress]] = [:]
    /// The source's topology when it was set by a change made in the group (not a
    /// starting topology): a receiver adopts it when its version is higher than its own
    /// (ActiveActiveTopologyVersion), so a change made at one cluster reaches them all.
    public var topology: ActiveActiveVersionedTopology?

    /// The most key states in one batch.
    public static let maxStates = 50_000
    /// The most entries in a batch's progress vector (the largest group of clusters
    /// whose metadata is garbage-collected).
    public static let maxProgressEntries = 64

    /// Creates a batch.
    public init(source: String, afterIndex: UInt64, lastIndex: UInt64, sourceCommit: UInt64, sourceTime: UInt64,
                states: [ActiveActiveKeyState], progress: [String: ActiveActiveProgress] = [:],
                relayed: [String: [String: ActiveActiveProgress]] = [:], topology: ActiveActiveVersionedTopology? = nil) {
        self.relayed = relayed
        self.topology = topology
        self.source = source
        self.afterIndex = afterIndex
        self.lastIndex = lastIndex
        self.sourceCommit = sourceCommit
        self.sourceTime = sourceTime
        self.states = states
        self.progress = progress
    }
}

/// How far a cluster has merged one origin cluster's local writes: every write the
/// origin made with a stamp up to `stamp` and every dot it issued up to `dot` is in
/// the cluster's state (for the origin itself: its own clock and dot counter).
///
/// Garbage collection (see the AegisKV DocC article, "Bounded metadata") uses these
/// vectors: a cluster's own vector decides which dots it may mark as seen, and the
/// vectors its peers ship decide which tombstones every cluster has merged.
public struct ActiveActiveProgress: Sendable, Hashable {
    /// The origin's write stamps merged, up to this one (physical ms, logical).
    public var physical: UInt64
    /// The logical part of the stamp.
    public var logical: UInt32
    /// The origin's dots merged, up to this counter.
    public var dot: UInt64

    /// Creates a progress entry.
    public init(physical: UInt64, logical: UInt32, dot: UInt64) {
        self.physical = physical
        self.logical = logical
        self.dot = dot
    }

    /// The pointwise maximum (a cluster's progress only grows).
    func joined(_ other: ActiveActiveProgress) -> ActiveActiveProgress {
        let later = (physical, logical) >= (other.physical, other.logical) ? self : other
        return ActiveActiveProgress(physical: later.physical, logical: later.logical, dot: Swift.max(dot, other.dot))
    }

    /// `true` when a write stamped `stamp` is covered.
    func covers(_ stamp: HLCTimestamp) -> Bool { (stamp.physical, stamp.logical) <= (physical, logical) }
}

/// How far one incoming active-active link has been merged.
public struct ActiveActiveCursor: Sendable, Hashable {
    /// The source's last log index whose writes are merged here.
    public var lastIndex: UInt64
    /// The source's commit index when it made the last batch merged.
    public var sourceCommit: UInt64
    /// The source's wall clock (ms) when it made the last batch merged.
    public var sourceTime: UInt64

    /// Creates a cursor.
    public init(lastIndex: UInt64, sourceCommit: UInt64, sourceTime: UInt64) {
        self.lastIndex = lastIndex
        self.sourceCommit = sourceCommit
        self.sourceTime = sourceTime
    }
}

/// The active-active state a cluster keeps in its state machine (replicated, in its
/// snapshots as tagged section 3). Empty, and never touched, on a cluster that is not
/// in an active-active group.
struct ActiveActiveState: Sendable, Equatable {
    var settings = ActiveActiveSettings(enabled: false)
    /// Incoming links' cursors, by source cluster ID.
    var cursors: [String: ActiveActiveCursor] = [:]
    /// Per key, the state minus what the key-value tables hold: the set or hash part
    /// that is visible lives in `collections` (its entry here keeps the part's stamp and
    /// an empty placeholder value). Tombstones (deleted keys) stay here until garbage
    /// collection drops them.
    var keys = ActiveActiveKeyTable()
    /// This cluster's merged vector over its peers (its own entry is computed live):
    /// the join of the `progress[source]` entries of the batches merged.
    var merged: [String: ActiveActiveProgress] = [:]
    /// Each peer's merged vector, as it last shipped it (joined pointwise).
    var reports: [String: [String: ActiveActiveProgress]] = [:]
    /// The keys whose metadata holds an empty set or hash part (a tombstone part that
    /// garbage collection drops once stable). Derived from `keys`, not serialized.
    var pending: Set<Key> = []

    var enabled: Bool { settings.enabled }
    var isInitial: Bool { self == ActiveActiveState() }
}
