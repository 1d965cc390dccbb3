import AegisCRDT
import AegisRaft

// Conflict resolution in the state machine (see ActiveActiveStrategies.swift for the
// strategies, ActiveActiveVersions.swift for the versions, ActiveActiveConflicts.swift
// for the queue and trail). Three hooks, each in one place:
//
// - `noteLocalStringWrite`: a local client write replaced a string under a strategy:
//   the versions become that write (or, with a context token, that write and the old
//   versions the token does not cover); a conflict it ends is audited.
// - `resolveMergedString`: after a peer's state is joined (batch or catch-up page),
//   the strategy picks the register from the versions; a new set of concurrent
//   versions is audited, or queued under `manual`.
// - the commands 72 (settings), 73 (resolve a queued conflict: a local write of the
//   chosen value, shipped to the peers like any write, so it converges) and 74 (a
//   write with a context token).

extension StateMachine {
    /// The conflict-resolution settings (strategy table and bounds).
    public var activeActiveConflictSettings: ActiveActiveConflictSettings { activeActiveConflicts.settings }

    /// The open manual conflicts, in ascending ID order.
    public var activeActiveOpenConflicts: [ActiveActiveConflict] {
        activeActiveConflicts.conflicts.values.sorted { $0.id < $1.id }
    }

    /// The audit trail, newest first: at most `limit` entries, of `key` only when given
    /// (entries past the age bound at the apply clock are left out until the next
    /// append drops them).
    public func activeActiveAudit(key: Key? = nil, limit: Int = 100) -> [ActiveActiveAuditEntry] {
        var result: [ActiveActiveAuditEntry] = []
        let maxAge = activeActiveConflicts.settings.auditMaxAgeMillis
        for entry in activeActiveConflicts.audit.reversed() where key == nil || entry.key == key {
            guard result.count < limit else { break }
            if expiryClock >= entry.time && expiryClock - entry.time > maxAge { break }  // older ones follow
            result.append(entry)
        }
        return result
    }

    /// The siblings of a string key kept with a causal context (`nil`: the key has none).
    public func activeActiveSiblings(of key: Key) -> ActiveActiveSiblings? {
        guard let string = activeActive.keys.fullState(key)?.string, let versions = string.versions else { return nil }
        let latestFirst = versions.sorted(by: ActiveActiveVersion.precedes).reversed()
        let shown = Array(latestFirst.prefix(activeActiveConflicts.settings.maxSiblings))
        return ActiveActiveSiblings(versions: shown, hidden: versions.count - shown.count,
                                    token: ActiveActiveContextToken(string.context))
    }

    /// What the admin API and `AEGIS.CONFLICTS`/`AEGIS.AUDIT`/`AEGIS.SIBLINGS` show.
    public func activeActiveConflictReport(key: Key?, limit: Int) -> ActiveActiveConflictReport {
        ActiveActiveConflictReport(settings: activeActiveConflicts.settings, conflicts: activeActiveOpenConflicts,
                                   audit: activeActiveAudit(key: key, limit: limit),
                                   siblings: key.flatMap { activeActiveSiblings(of: $0) })
    }

    /// Registers (or replaces) a merge function for the `custom` strategy. Register the
    /// same functions on every node of every cluster before applying settings naming them.
    public mutating func register(_ function: ActiveActiveMergeFunction) {
        mergeFunctions[function.name] = function
    }

    // MARK: Commands

    /// Applies command 72, 73 or 74.
    mutating func applyActiveActiveConflictCommand(_ command: ActiveActiveConflictCommand, at index: LogIndex,
                                                   timestamp: UInt64) -> CommandResult {
        switch command {
        case .setStrategies(let settings):
            if let error = settings.problem(knownFunctions: Set(mergeFunctions.keys), maxKeySize: limits.maxKeySize) {
                return failure(error, at: index)
            }
            activeActiveConflicts.settings = settings
            trimActiveActiveQueueAndAudit()
            revision += 1
            return CommandResult(index: index, revision: revision)
        case .resolve(let key, let id, let choice):
            guard activeActive.enabled else { return failure(.activeActiveDisabled, at: index) }
            guard let conflict = activeActiveConflicts.conflicts[id], conflict.key == key else {
                return failure(.activeActiveConflict("conflict \(id) of \(key) is not open (resolved, superseded or evicted)"),
                               at: index)
            }
            let value: [UInt8]?
            switch choice {
            case .value(let chosen):
                if let error = validate(value: chosen) { return failure(error, at: index) }
                value = chosen
            case .pick(let position):
                guard position >= 0, position < conflict.versions.count else {
                    return failure(.activeActiveConflict("conflict \(id) has versions 0...\(conflict.versions.count - 1), not \(position)"),
                                   at: index)
                }
                value = conflict.versions[position].value
            }
            return writeResolution(key, value: value, rule: "manual", detail: "conflict \(id)", at: index,
                                   timestamp: timestamp)
        case .setWithContext(let key, let value, let token):
            guard activeActive.enabled else { return failure(.activeActiveDisabled, at: index) }
            guard activeActiveConflicts.settings.strategy(for: key) != nil else {
                return failure(.activeActiveConflict("\(key) is under no strategy rule: it keeps no causal context"), at: index)
            }
            if let error = validate(key) ?? validate(value: value) { return failure(error, at: index) }
            activeActiveWriteToken = token.context
            defer { activeActiveWriteToken = nil }
            return writeResolution(key, value: value, rule: "context-write", detail: "", at: index, timestamp: timestamp)
        }
    }

    /// A local write of `value` (`nil`: a delete) to `key` that replaces the versions
    /// (all of them, or those the pending token covers), audited under `rule`.
    private mutating func writeResolution(_ key: Key, value: [UInt8]?, rule: String, detail: String,
                                          at index: LogIndex, timestamp: UInt64) -> CommandResult {
        activeActiveWriteRule = (rule, detail)
        defer { activeActiveWriteRule = nil }
        let command: Command = value.map { .set(key, $0) } ?? .delete(key)
        let result = executeTracked(command, at: index, timestamp: timestamp)
        guard result.error == nil, value == nil, activeActive.keys.fullState(key)?.string?.versions.map({ $0.count > 1 }) == true
        else { return result }
        // A DEL of a key that already reads as absent changes no view, so the tracked
        // path kept the versions: the tombstone is written here.
        let before = activeActiveState(of: key)
        var state = before
        let stamp = nextActiveActiveStamp()
        state.string = ActiveActiveString(stamp: stamp, value: nil)
        noteLocalStringWrite(&state, before: before, stamp: stamp)
        installActiveActive(state, at: index)
        return result
    }

    // MARK: Hooks

    /// A local write stamped `stamp` replaced the string part of `state` (see the file header).
    mutating func noteLocalStringWrite(_ state: inout ActiveActiveKeyState, before: ActiveActiveKeyState,
                                       stamp: HLCTimestamp) {
        guard var string = state.string, string.stamp == stamp else { return }
        let key = state.key
        guard let strategy = activeActiveConflicts.settings.strategy(for: key) else {
            guard string.versions != nil else { return }  // the default: nothing to drop
            string.versions = nil
            string.context = [:]
            state.string = string
            return
        }
        let old = before.string?.causalView
        var context = old?.context ?? [:]  // covers every old version
        context.include(stamp)
        let written = ActiveActiveVersion(stamp: stamp, value: string.value)
        var versions = [written]
        if let token = activeActiveWriteToken {
            versions += (old?.versions ?? []).filter { !token.covers($0.stamp) && $0.origin != written.origin }
            versions.sort { $0.origin < $1.origin }
        }
        string.versions = versions
        string.context = context
        state.string = string
        if versions.count > 1 { pickRegister(&state, strategy: strategy) }
        let ended = (old?.versions.count ?? 0) > 1 || activeActiveConflicts.conflictOfKey[key] != nil
        guard ended, let oldVersions = old?.versions else { return }
        let (rule, detail) = activeActiveWriteRule ?? ("overwrite", "")
        closeQueuedConflict(of: key)
        audit(key, rule: rule, detail: detail, winner: state.string?.visibleValue, versions: oldVersions + [written])
        if versions.count > 1 { noteConcurrentVersions(state, strategy: strategy) }
    }

    /// After a peer's state (`remote`) was joined into `state` (`before`): the strategy
    /// picks the register; new concurrent versions are audited or queued.
    mutating func resolveMergedString(_ state: inout ActiveActiveKeyState, before: ActiveActiveString?,
                                      remote: ActiveActiveString?) {
        guard let versions = state.string?.versions, !versions.isEmpty else { return }
        let strategy = activeActiveConflicts.settings.strategy(for: state.key) ?? .lww
        pickRegister(&state, strategy: strategy, joining: [before, remote].compactMap { $0 })
        guard versions != before?.versions else { return }
        if versions.count == 1 {
            if activeActiveConflicts.conflictOfKey[state.key] != nil {
                let ended = activeActiveConflicts.conflicts[activeActiveConflicts.conflictOfKey[state.key] ?? 0]?.versions ?? []
                closeQueuedConflict(of: state.key)
                audit(state.key, rule: "overwrite", detail: "by a later write of \(versions[0].origin)",
                      winner: state.string?.visibleValue, versions: ended + versions)
            }
            return
        }
        noteConcurrentVersions(state, strategy: strategy)
    }

    /// Sets the register of `state` to what `strategy` picks from its versions. Its
    /// counters are the join of those of every register in `joining` (and of the joined
    /// one) that holds the picked write: the LWW join of the registers may have kept a
    /// concurrent write's register, whose counters are not the pick's.
    private mutating func pickRegister(_ state: inout ActiveActiveKeyState, strategy: ActiveActiveStrategy,
                                       joining: [ActiveActiveString] = []) {
        guard var string = state.string, let versions = string.versions, !versions.isEmpty else { return }
        var (winner, _) = strategy.resolve(versions, functions: mergeFunctions)
        if let value = winner.value, validate(value: value) != nil {
            // A merge result over the value limit: the latest version stands instead.
            winner = ActiveActiveStrategy.lww.resolve(versions, functions: [:]).winner
        }
        var counters: [ReplicaID: CounterContribution] = [:]
        for register in joining + [string] where register.stamp == winner.stamp && register.value == winner.value {
            for (origin, theirs) in register.counters {
                counters[origin] = counters[origin].map { $0.joined(theirs) } ?? theirs
            }
        }
        string.stamp = winner.stamp
        string.value = winner.value
        string.counters = winner.value == nil ? [:] : counters
        state.string = string
    }

    /// Audits (or, under `manual`, queues) the concurrent versions `state` now holds.
    private mutating func noteConcurrentVersions(_ state: ActiveActiveKeyState, strategy: ActiveActiveStrategy) {
        guard let versions = state.string?.versions else { return }
        let key = state.key
        let shown = state.string?.visibleValue
        switch strategy {
        case .manual:
            queueConflict(key, versions: versions)
        case .vectorClock:
            let cap = activeActiveConflicts.settings.maxSiblings
            if versions.count > cap {
                let hidden = versions.sorted(by: ActiveActiveVersion.precedes).prefix(versions.count - cap)
                audit(key, rule: "sibling-cap", detail: "hidden (oldest stamps): " + hidden.map { "\($0.origin)@\($0.stamp.physical).\($0.stamp.logical)" }.joined(separator: ","),
                      winner: shown, versions: versions)
            } else {
                audit(key, rule: "siblings", detail: "\(versions.count) siblings kept; GET reads the latest",
                      winner: shown, versions: versions)
            }
        case .lww, .priority, .custom:
            let rule = strategy.resolve(versions, functions: mergeFunctions).rule
            audit(key, rule: rule, detail: "", winner: shown, versions: versions)
        }
    }

    // MARK: The queue and the trail

    private mutating func queueConflict(_ key: Key, versions: [ActiveActiveVersion]) {
        if let id = activeActiveConflicts.conflictOfKey[key] {
            activeActiveConflicts.conflicts[id]?.versions = versions
            activeActiveConflicts.conflicts[id]?.detectedAt = expiryClock
            return
        }
        let id = activeActiveConflicts.nextConflictID
        activeActiveConflicts.nextConflictID += 1
        activeActiveConflicts.conflicts[id] = ActiveActiveConflict(id: id, key: key, versions: versions, detectedAt: expiryClock)
        activeActiveConflicts.conflictOfKey[key] = id
        trimActiveActiveQueueAndAudit()
    }

    private mutating func closeQueuedConflict(of key: Key) {
        guard let id = activeActiveConflicts.conflictOfKey.removeValue(forKey: key) else { return }
        activeActiveConflicts.conflicts[id] = nil
    }

    /// Appends an audit entry (the apply clock is its time) and applies the retention.
    mutating func audit(_ key: Key, rule: String, detail: String, winner: [UInt8]?, versions: [ActiveActiveVersion]) {
        let id = activeActiveConflicts.nextAuditID
        activeActiveConflicts.nextAuditID += 1
        activeActiveConflicts.audit.append(ActiveActiveAuditEntry(
            id: id, time: expiryClock, key: key, rule: String(rule.utf8.prefix(ActiveActiveAuditEntry.maxRuleSize)) ?? rule,
            detail: String(detail.utf8.prefix(ActiveActiveAuditEntry.maxDetailSize)) ?? "", winner: winner,
            versions: versions.sorted { $0.origin < $1.origin }))
        trimActiveActiveQueueAndAudit()
    }

    /// Applies the bounds: the oldest queued conflicts past the queue's bound are evicted
    /// (audited `queue-full`); audit entries past the count or older than the age go.
    mutating func trimActiveActiveQueueAndAudit() {
        let settings = activeActiveConflicts.settings
        while activeActiveConflicts.conflicts.count > settings.maxConflicts,
              let oldest = activeActiveConflicts.conflicts.keys.min(),
              let conflict = activeActiveConflicts.conflicts[oldest] {
            closeQueuedConflict(of: conflict.key)
            audit(conflict.key, rule: "queue-full", detail: "conflict \(oldest) evicted; the provisional value stays",
                  winner: conflict.provisional?.value, versions: conflict.versions)
        }
        var trail = activeActiveConflicts.audit
        activeActiveConflicts.audit = []  // not shared while trimmed
        if trail.count > settings.auditMaxEntries { trail.removeFirst(trail.count - settings.auditMaxEntries) }
        let clock = expiryClock
        let expired = trail.prefix { clock >= $0.time && clock - $0.time > settings.auditMaxAgeMillis }.count
        if expired > 0 { trail.removeFirst(expired) }
        activeActiveConflicts.audit = trail
    }
}
