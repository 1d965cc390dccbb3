public import AegisCRDT

// The replicated conflict state of a cluster (snapshot section 5): the strategy
// settings, the manual queue and the audit trail. Every change to it happens when an
// entry is applied, from the entry's data and the apply clock (the leader's time
// logged with the entry), so every node of a cluster holds the same queue and trail.
// Between clusters, the values converge (they are functions of the joined versions);
// the queue and the trail are each cluster's own record of what it resolved, in the
// order it merged: they may differ in order and in which intermediate conflicts a
// cluster saw.
//
// Section 5 (written only when it differs from a plain cluster's):
//
//     the settings (as command 72's body, see ActiveActiveConflictCodec.swift),
//     varint next conflict ID, varint conflict count (<= max conflicts), then per
//     conflict in strictly ascending ID order: varint ID, key, varint detected-at (ms),
//     versions (count, then per version: stamp, live byte, value if live);
//     varint next audit ID, varint audit count (<= audit max entries), then per entry
//     in strictly ascending ID order: varint ID, varint time (ms), key, rule (UTF-8,
//     1...255 bytes), detail (UTF-8, 0...4096 bytes), winner (live byte, value if
//     live), versions (as for a conflict).

/// A conflict waiting in the manual queue: a key whose concurrent versions an
/// operator must choose between. The key reads the provisional value meanwhile (the
/// version with the latest stamp).
public struct ActiveActiveConflict: Sendable, Hashable {
    /// The conflict's ID in this cluster (what `AEGIS.RESOLVE` and the HTTP API take).
    public var id: UInt64
    /// The key.
    public var key: Key
    /// The concurrent versions, in ascending origin order (what a pick's index counts).
    public var versions: [ActiveActiveVersion]
    /// The apply clock (ms) when the conflict was queued or its versions last changed.
    public var detectedAt: UInt64

    /// Creates a conflict.
    public init(id: UInt64, key: Key, versions: [ActiveActiveVersion], detectedAt: UInt64) {
        self.id = id
        self.key = key
        self.versions = versions
        self.detectedAt = detectedAt
    }

    /// The value the key reads until the conflict is resolved: the latest stamp's.
    public var provisional: ActiveActiveVersion? { versions.max(by: ActiveActiveVersion.precedes) }
}

/// One resolved conflict in the audit trail.
public struct ActiveActiveAuditEntry: Sendable, Hashable {
    /// The entry's ID in this cluster (ascending in apply order).
    public var id: UInt64
    /// The apply clock (ms since 1970) of the entry that resolved it.
    public var time: UInt64
    /// The key.
    public var key: Key
    /// The rule: a strategy's description (`priority:A,B`, `lww`, `custom:NAME`), or
    /// `siblings`, `sibling-cap`, `manual`, `overwrite`, `context-write`, `queue-full`.
    public var rule: String
    /// What the rule saw or did beyond the versions (hidden siblings, an evicted queue entry).
    public var detail: String
    /// The value the key reads after the resolution (`nil`: deleted).
    public var winner: [UInt8]?
    /// Every version involved, in ascending origin order (with their origins and stamps).
    public var versions: [ActiveActiveVersion]

    /// Creates an entry.
    public init(id: UInt64, time: UInt64, key: Key, rule: String, detail: String, winner: [UInt8]?,
                versions: [ActiveActiveVersion]) {
        self.id = id
        self.time = time
        self.key = key
        self.rule = rule
        self.detail = detail
        self.winner = winner
        self.versions = versions
    }

    /// The longest rule text.
    public static let maxRuleSize = 255
    /// The longest detail text.
    public static let maxDetailSize = 4096
}

/// What `AEGIS.SIBLINGS` shows of a key: its concurrent versions (at most the sibling
/// cap, latest stamps first) and the context token that resolves them all.
public struct ActiveActiveSiblings: Sendable, Hashable {
    /// The versions shown, latest stamp first.
    public var versions: [ActiveActiveVersion]
    /// How many versions the cap hides (the oldest stamps).
    public var hidden: Int
    /// The key's whole causal context: a write carrying it replaces every version.
    public var token: ActiveActiveContextToken
}

/// A read of a cluster's conflict state.
public struct ActiveActiveConflictReport: Sendable, Hashable {
    /// The strategy table and bounds.
    public var settings: ActiveActiveConflictSettings
    /// The open manual conflicts, in ascending ID order.
    public var conflicts: [ActiveActiveConflict]
    /// Audit entries, newest first.
    public var audit: [ActiveActiveAuditEntry]
    /// The siblings of the key asked about, if it keeps versions.
    public var siblings: ActiveActiveSiblings?
}

/// The conflict state a cluster keeps in its state machine.
struct ActiveActiveConflictState: Sendable, Equatable {
    var settings = ActiveActiveConflictSettings()
    /// The open manual conflicts, by ID.
    var conflicts: [UInt64: ActiveActiveConflict] = [:]
    /// The open conflict of each key (derived from `conflicts`).
    var conflictOfKey: [Key: UInt64] = [:]
    var nextConflictID: UInt64 = 1
    /// The audit trail, in ascending ID order.
    var audit: [ActiveActiveAuditEntry] = []
    var nextAuditID: UInt64 = 1

    var isInitial: Bool { self == ActiveActiveConflictState() }
}

extension ActiveActiveStrategy {
    /// The version clients read among concurrent `versions` (at least one), and the
    /// rule that chose it. `functions`: the registered merge functions.
    func resolve(_ versions: [ActiveActiveVersion], functions: [String: ActiveActiveMergeFunction])
        -> (winner: ActiveActiveVersion, rule: String) {
        let ordered = versions.sorted(by: ActiveActiveVersion.precedes)
        let latest = ordered[ordered.count - 1]
        switch self {
        case .lww, .vectorClock, .manual:
            return (latest, description)
        case .priority(let clusters):
            func rank(_ version: ActiveActiveVersion) -> Int {
                clusters.firstIndex(of: version.origin.rawValue) ?? clusters.count
            }
            var best = ordered[0]
            for version in ordered.dropFirst() where rank(version) <= rank(best) {
                best = version  // ascending order: among equal ranks the later stamp wins
            }
            return (best, description)
        case .custom(let name):
            guard let function = functions[name] else {
                return (latest, "lww (merge function '\(name)' not registered on this node)")
            }
            var accumulated = ordered[0]
            for next in ordered.dropFirst() {
                accumulated = ActiveActiveVersion(stamp: next.stamp, value: function.merge(accumulated, next))
            }
            return (accumulated, description)
        }
    }
}
