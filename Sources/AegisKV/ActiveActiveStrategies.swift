import AegisCRDT

// Conflict resolution per key space (see the AegisKV DocC article, "Conflict
// resolution"): a replicated table maps key prefixes to strategies; the longest
// prefix that a key starts with decides. A key under no prefix keeps the default:
// last writer wins with no causal context (nothing is detected or audited). A prefix
// named `lww` picks the same winner but keeps the causal context, so its conflicts
// are detected and audited.
//
// What a strategy covers: *string register writes* (SET and every other write that
// replaces a string, DEL of a string, APPEND, GETSET…). Under every strategy but
// `lww`, each such write carries a causal context (ActiveActiveVersions.swift), so two
// writes are concurrent exactly when neither cluster had merged the other's before
// writing; the concurrent versions are kept in the key's state (at most one per origin
// cluster) and the strategy picks what a client reads from them. Counters (INCR…)
// keep their PN-counter merge, sets their add-wins OR-set and hashes their OR-map
// (fields LWW, HINCRBY fields PN) under every strategy.
//
// The table is the same kind of setting as `setActiveActive`: each cluster holds its
// own, through its Raft log. Convergence between clusters needs the same table (and,
// for `custom`, the same merge functions) in every cluster of the group.

/// How concurrent string writes to the keys under one prefix are resolved.
public enum ActiveActiveStrategy: Sendable, Hashable, CustomStringConvertible {
    /// Last writer wins on the hybrid logical clock (the default; no causal context kept).
    case lww
    /// A write from a cluster earlier in the list wins over a concurrent write from a
    /// later one, whatever the clocks say; clusters not listed rank after every listed
    /// one; between equal ranks the later stamp wins.
    case priority([String])
    /// Concurrent writes are kept as siblings: `GET` reads the one with the latest
    /// stamp, `AEGIS.SIBLINGS` lists them with a context token, and a write carrying
    /// the token (`AEGIS.SETCTX`) replaces exactly the siblings it names.
    case vectorClock
    /// The merge function registered under the name (``ActiveActiveMergeFunction``)
    /// folds the concurrent versions, in ascending stamp order, into the value read.
    case custom(String)
    /// Concurrent writes are queued for an operator; meanwhile the key reads the
    /// version with the latest stamp (the provisional value).
    case manual

    /// The most clusters a priority list names.
    public static let maxPriorityClusters = 64

    /// The strategy's name as the settings write it: `lww`, `priority`, `vector-clock`,
    /// `custom`, `manual`.
    public var name: String {
        switch self {
        case .lww: return "lww"
        case .priority: return "priority"
        case .vectorClock: return "vector-clock"
        case .custom: return "custom"
        case .manual: return "manual"
        }
    }

    /// `STRATEGY[:ARGS]`, as ``init(parsing:)`` reads it.
    public var description: String {
        switch self {
        case .priority(let clusters): return "priority:" + clusters.joined(separator: ",")
        case .custom(let function): return "custom:" + function
        default: return name
        }
    }

    /// Reads `lww`, `priority:A,B,…` (highest first), `vector-clock`, `custom:NAME` or `manual`.
    public init(parsing text: String) throws(KVError) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let argument = parts.count == 2 ? parts[1] : nil
        switch (parts[0], argument) {
        case ("lww", nil): self = .lww
        case ("vector-clock", nil): self = .vectorClock
        case ("manual", nil): self = .manual
        case ("priority", let list?):
            self = .priority(list.split(separator: ",", omittingEmptySubsequences: false).map(String.init))
        case ("custom", let function?): self = .custom(function)
        default:
            throw .activeActiveConflict("unknown strategy '\(text)' (lww, priority:A,B,…, vector-clock, custom:NAME, manual)")
        }
        if let error = problem { throw error }
    }

    /// Why the strategy's arguments are not acceptable, or `nil`.
    var problem: KVError? {
        switch self {
        case .priority(let clusters):
            guard !clusters.isEmpty, clusters.count <= Self.maxPriorityClusters else {
                return .activeActiveConflict("a priority list names 1 to \(Self.maxPriorityClusters) clusters, not \(clusters.count)")
            }
            for cluster in clusters where cluster.utf8.isEmpty || cluster.utf8.count > StreamBatch.maxSourceSize {
                return .activeActiveConflict("a priority list's cluster IDs are 1 to \(StreamBatch.maxSourceSize) bytes")
            }
            guard Set(clusters).count == clusters.count else {
                return .activeActiveConflict("a priority list names a cluster twice")
            }
        case .custom(let function):
            guard !function.utf8.isEmpty, function.utf8.count <= Command.maxCustomNameSize else {
                return .activeActiveConflict("a merge function's name is 1 to \(Command.maxCustomNameSize) bytes")
            }
        case .lww, .vectorClock, .manual:
            break
        }
        return nil
    }
}

/// One entry of the strategy table: the keys starting with `prefix` use `strategy`.
public struct ActiveActiveStrategyRule: Sendable, Hashable, CustomStringConvertible {
    /// The key prefix (may be empty: every key).
    public var prefix: [UInt8]
    /// The strategy of the keys under it.
    public var strategy: ActiveActiveStrategy

    /// Creates a rule.
    public init(prefix: [UInt8], strategy: ActiveActiveStrategy) {
        self.prefix = prefix
        self.strategy = strategy
    }

    /// Reads `PREFIX=STRATEGY[:ARGS]` (the prefix is everything before the last `=`
    /// that precedes the strategy's name; it may be empty).
    public init(parsing text: String) throws(KVError) {
        guard let equals = text.lastIndex(of: "=") else {
            throw .activeActiveConflict("'\(text)' is not PREFIX=STRATEGY[:ARGS]")
        }
        self.init(prefix: Array(text[..<equals].utf8),
                  strategy: try ActiveActiveStrategy(parsing: String(text[text.index(after: equals)...])))
    }

    /// `PREFIX=STRATEGY[:ARGS]`.
    public var description: String { String(decoding: prefix, as: UTF8.self) + "=" + strategy.description }
}

/// The conflict-resolution settings of a cluster: the strategy table and the bounds of
/// the sibling view, the manual queue and the audit trail (replicated, command 72,
/// snapshot section 5).
public struct ActiveActiveConflictSettings: Sendable, Hashable {
    /// The rules, in strictly ascending prefix order (one per prefix).
    public var rules: [ActiveActiveStrategyRule]
    /// The most siblings `AEGIS.SIBLINGS` shows of a `vector-clock` key (the rest, the
    /// ones with the lowest stamps, are hidden and audited as `sibling-cap`).
    public var maxSiblings: Int
    /// The most open conflicts the manual queue holds; a new one past it evicts the
    /// oldest (lowest ID), which keeps its provisional value (audited `queue-full`).
    public var maxConflicts: Int
    /// The most audit entries kept (the oldest go first).
    public var auditMaxEntries: Int
    /// How long an audit entry is kept, in milliseconds of the apply clock.
    public var auditMaxAgeMillis: UInt64

    /// The most rules in a table.
    public static let maxRules = 256
    /// The largest `maxSiblings` (a key has at most one sibling per origin cluster).
    public static let maxSiblingsLimit = ActiveActiveBatch.maxProgressEntries
    /// The largest `maxConflicts`.
    public static let maxConflictsLimit = 100_000
    /// The largest `auditMaxEntries`.
    public static let auditMaxEntriesLimit = 1_000_000
    /// The default settings' sibling cap.
    public static let defaultMaxSiblings = 8
    /// The default manual queue bound.
    public static let defaultMaxConflicts = 1_000
    /// The default audit count bound.
    public static let defaultAuditMaxEntries = 10_000
    /// The default audit age bound: seven days.
    public static let defaultAuditMaxAgeMillis: UInt64 = 7 * 24 * 3_600_000

    /// Creates settings (the rules are sorted by prefix here).
    public init(rules: [ActiveActiveStrategyRule] = [], maxSiblings: Int = defaultMaxSiblings,
                maxConflicts: Int = defaultMaxConflicts, auditMaxEntries: Int = defaultAuditMaxEntries,
                auditMaxAgeMillis: UInt64 = defaultAuditMaxAgeMillis) {
        self.rules = rules.sorted { $0.prefix.lexicographicallyPrecedes($1.prefix) }
        self.maxSiblings = maxSiblings
        self.maxConflicts = maxConflicts
        self.auditMaxEntries = auditMaxEntries
        self.auditMaxAgeMillis = auditMaxAgeMillis
    }

    /// The strategy of `key`: the rule with the longest prefix the key starts with, or
    /// `nil` (the default: last writer wins, no causal context kept).
    public func strategy(for key: Key) -> ActiveActiveStrategy? {
        guard !rules.isEmpty else { return nil }
        let bytes = key.bytes
        var best: ActiveActiveStrategyRule?
        for rule in rules where bytes.starts(with: rule.prefix) {
            if let current = best, current.prefix.count >= rule.prefix.count { continue }
            best = rule
        }
        return best?.strategy
    }

    /// Why the settings are not acceptable (the bounds, duplicate prefixes, the rules'
    /// arguments; `knownFunctions`: the merge functions registered), or `nil`.
    public func problem(knownFunctions: Set<String>, maxKeySize: Int) -> KVError? {
        guard rules.count <= Self.maxRules else {
            return .activeActiveConflict("\(rules.count) strategy rules, more than \(Self.maxRules)")
        }
        guard (1 ... Self.maxSiblingsLimit).contains(maxSiblings),
              (1 ... Self.maxConflictsLimit).contains(maxConflicts),
              (1 ... Self.auditMaxEntriesLimit).contains(auditMaxEntries), auditMaxAgeMillis > 0 else {
            return .activeActiveConflict("bounds out of range: max siblings 1...\(Self.maxSiblingsLimit), max conflicts "
                + "1...\(Self.maxConflictsLimit), audit entries 1...\(Self.auditMaxEntriesLimit), audit age > 0 ms")
        }
        for (position, rule) in rules.enumerated() {
            if rule.prefix.count > maxKeySize {
                return .activeActiveConflict("a prefix of \(rule.prefix.count) bytes is longer than a key may be")
            }
            if position > 0, !rules[position - 1].prefix.lexicographicallyPrecedes(rule.prefix) {
                return .activeActiveConflict("the prefix '\(rule.description)' is given twice")
            }
            if let error = rule.strategy.problem { return error }
            if case .custom(let function) = rule.strategy, !knownFunctions.contains(function) {
                return .activeActiveConflict("no merge function is registered as '\(function)' on this node "
                    + "(registered: \(knownFunctions.sorted().joined(separator: ", ")))")
            }
        }
        return nil
    }
}

/// A merge function for the `custom` strategy, registered by name on every node of
/// every cluster (`StateMachine.register(_:)`).
///
/// The resolver calls it to fold the concurrent versions of a key, in ascending stamp
/// order: first with the two oldest, then with the result (as a version stamped with
/// the later stamp) and the next. It must be a pure function of its arguments (no
/// clock, no randomness, no state), identical on every node: what it returns is what
/// clients read, and every cluster must compute the same. `nil` means deleted.
public struct ActiveActiveMergeFunction: Sendable {
    /// The name the strategy table refers to.
    public let name: String
    /// The fold step: `accumulated` (the versions so far) and `next`, to one value.
    public let merge: @Sendable (_ accumulated: ActiveActiveVersion, _ next: ActiveActiveVersion) -> [UInt8]?

    /// Creates a merge function.
    public init(name: String,
                merge: @escaping @Sendable (_ accumulated: ActiveActiveVersion, _ next: ActiveActiveVersion) -> [UInt8]?) {
        self.name = name
        self.merge = merge
    }
}
