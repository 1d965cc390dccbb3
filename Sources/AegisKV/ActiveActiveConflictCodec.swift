import AegisCRDT

// The conflict-resolution commands (encoding version 4, types 72, 73 and 74) and
// snapshot section 5 (see ActiveActiveConflicts.swift for its layout). Integers are
// unsigned LEB128 varints; texts and byte strings a varint length then the bytes.
//
//     setActiveActiveStrategies (72)  varint rule count (<= 256), then per rule in
//                             strictly ascending prefix order: prefix (bytes, at most
//                             the key size limit), strategy tag (1 lww, 2 priority,
//                             3 vector-clock, 4 custom, 5 manual), then for priority a
//                             varint count (1...64) and that many distinct cluster IDs
//                             (UTF-8, 1...255 bytes, highest priority first), for custom
//                             the function's name (UTF-8, 1...255 bytes); then varint
//                             max siblings (1...64), varint max conflicts (1...100,000),
//                             varint audit max entries (1...1,000,000), varint audit max
//                             age (ms, >= 1)
//     resolveActiveActiveConflict (73)  key, varint conflict ID, choice tag (0 a value,
//                             then the value; 1 a pick, then the varint index of the
//                             version in the conflict's ascending origin order)
//     setWithContext (74)     key, value, context (as a string's versions' context,
//                             see ActiveActiveVersions.swift)

/// A conflict-resolution command (types 72 to 74).
public enum ActiveActiveConflictCommand: Sendable, Hashable {
    /// Replaces the strategy table and bounds (72). Refused, changing nothing, when a
    /// bound is out of range, a prefix repeats, or a custom strategy names a merge
    /// function not registered on the node.
    case setStrategies(ActiveActiveConflictSettings)
    /// Resolves the open manual conflict `id` of `key` (73): a local write of the
    /// chosen value that replaces every concurrent version (and ships to the peers).
    case resolve(key: Key, id: UInt64, choice: ActiveActiveResolution)
    /// Writes `value` to `key` replacing the versions `token` covers (74); versions
    /// written concurrently with what the token saw stay siblings.
    case setWithContext(key: Key, value: [UInt8], token: ActiveActiveContextToken)

    /// The command's type.
    public var type: CommandType {
        switch self {
        case .setStrategies: return .setActiveActiveStrategies
        case .resolve: return .resolveActiveActiveConflict
        case .setWithContext: return .setWithContext
        }
    }

    /// The key written (the empty key for the settings).
    public var key: Key {
        switch self {
        case .setStrategies: return .empty
        case .resolve(let key, _, _), .setWithContext(let key, _, _): return key
        }
    }
}

/// How an operator resolves a manual conflict.
public enum ActiveActiveResolution: Sendable, Hashable {
    /// A value of the operator's choosing.
    case value([UInt8])
    /// One of the conflict's versions, by index in ascending origin order (a deleted
    /// version deletes the key).
    case pick(Int)
}

extension ActiveActiveStrategy {
    var tag: UInt8 {
        switch self {
        case .lww: return 1
        case .priority: return 2
        case .vectorClock: return 3
        case .custom: return 4
        case .manual: return 5
        }
    }
}

extension ActiveActiveConflictSettings {
    func append(to bytes: inout [UInt8]) {
        bytes.appendVarint(UInt64(rules.count))
        for rule in rules {
            bytes.appendLengthPrefixed(rule.prefix)
            bytes.append(rule.strategy.tag)
            switch rule.strategy {
            case .priority(let clusters):
                bytes.appendVarint(UInt64(clusters.count))
                for cluster in clusters { bytes.appendLengthPrefixed(Array(cluster.utf8)) }
            case .custom(let name):
                bytes.appendLengthPrefixed(Array(name.utf8))
            case .lww, .vectorClock, .manual:
                break
            }
        }
        bytes.appendVarint(UInt64(maxSiblings))
        bytes.appendVarint(UInt64(maxConflicts))
        bytes.appendVarint(UInt64(auditMaxEntries))
        bytes.appendVarint(auditMaxAgeMillis)
    }
}

extension ActiveActiveConflictCommand {
    func append(to bytes: inout [UInt8]) {
        switch self {
        case .setStrategies(let settings):
            settings.append(to: &bytes)
        case .resolve(let key, let id, let choice):
            bytes.appendKey(key)
            bytes.appendVarint(id)
            switch choice {
            case .value(let value):
                bytes.append(0)
                bytes.appendLengthPrefixed(value)
            case .pick(let position):
                bytes.append(1)
                bytes.appendVarint(UInt64(clamping: position))
            }
        case .setWithContext(let key, let value, let token):
            bytes.appendKey(key)
            bytes.appendLengthPrefixed(value)
            bytes.appendContext(token.context)
        }
    }
}

extension ByteReader {
    mutating func readConflictSettings() throws(KVError) -> ActiveActiveConflictSettings {
        let count = try readCount("strategy rule count", minimumBytesEach: 2)
        guard count <= ActiveActiveConflictSettings.maxRules else {
            throw .malformedCommand("\(count) strategy rules, more than \(ActiveActiveConflictSettings.maxRules)")
        }
        var rules: [ActiveActiveStrategyRule] = []
        for _ in 0 ..< count {
            let prefix = try readField("strategy prefix")
            if let previous = rules.last, !previous.prefix.lexicographicallyPrecedes(prefix) {
                throw .malformedCommand("strategy rules are not in strictly ascending prefix order")
            }
            let strategy: ActiveActiveStrategy
            switch readByte() {
            case 1: strategy = .lww
            case 2:
                let clusters = try readCount("priority cluster count", minimumBytesEach: 2)
                guard (1 ... ActiveActiveStrategy.maxPriorityClusters).contains(clusters) else {
                    throw .malformedCommand("a priority list of \(clusters) clusters")
                }
                var list: [String] = []
                for _ in 0 ..< clusters { list.append(try readText("priority cluster", maxBytes: StreamBatch.maxSourceSize)) }
                strategy = .priority(list)
            case 3: strategy = .vectorClock
            case 4: strategy = .custom(try readText("merge function name", maxBytes: Command.maxCustomNameSize))
            case 5: strategy = .manual
            default: throw .malformedCommand("missing or unknown strategy tag")
            }
            rules.append(ActiveActiveStrategyRule(prefix: prefix, strategy: strategy))
        }
        func bound(_ name: String) throws(KVError) -> Int {
            guard let value = Int(exactly: try readCommandVarint(name)) else { throw .malformedCommand("\(name) is too large") }
            return value
        }
        return ActiveActiveConflictSettings(rules: rules, maxSiblings: try bound("max siblings"),
                                            maxConflicts: try bound("max conflicts"),
                                            auditMaxEntries: try bound("audit max entries"),
                                            auditMaxAgeMillis: try readCommandVarint("audit max age"))
    }

    @usableFromInline mutating func readConflictCommand(_ type: CommandType) throws(KVError) -> ActiveActiveConflictCommand {
        switch type {
        case .setActiveActiveStrategies:
            return .setStrategies(try readConflictSettings())
        case .resolveActiveActiveConflict:
            let key = try readKey()
            let id = try readCommandVarint("conflict ID")
            switch readByte() {
            case 0: return .resolve(key: key, id: id, choice: .value(try readField("resolved value")))
            case 1:
                guard let position = Int(exactly: try readCommandVarint("picked version")),
                      position < ActiveActiveBatch.maxProgressEntries else {
                    throw .malformedCommand("a picked version index past \(ActiveActiveBatch.maxProgressEntries - 1)")
                }
                return .resolve(key: key, id: id, choice: .pick(position))
            default: throw .malformedCommand("missing or unknown resolution choice tag")
            }
        case .setWithContext:
            return .setWithContext(key: try readKey(), value: try readField("value"),
                                   token: ActiveActiveContextToken(try readContext()))
        default:
            throw .malformedCommand("\(type) is not a conflict-resolution command")
        }
    }
}

// MARK: Snapshot section 5

extension Array where Element == UInt8 {
    fileprivate mutating func appendVersionList(_ versions: [ActiveActiveVersion]) {
        appendVarint(UInt64(versions.count))
        for version in versions {
            appendStamp(version.stamp)
            appendOptionalValue(version.value)
        }
    }

    fileprivate mutating func appendOptionalValue(_ value: [UInt8]?) {
        if let value {
            append(1)
            appendLengthPrefixed(value)
        } else {
            append(0)
        }
    }
}

extension ByteReader {
    fileprivate mutating func readVersionList() throws(KVError) -> [ActiveActiveVersion] {
        let count = try readCount("version count", minimumBytesEach: 4)
        guard count <= ActiveActiveBatch.maxProgressEntries + 1 else { throw .malformedCommand("\(count) versions") }
        var versions: [ActiveActiveVersion] = []
        for _ in 0 ..< count { versions.append(ActiveActiveVersion(stamp: try readStamp(), value: try readOptionalValue())) }
        return versions
    }

    fileprivate mutating func readOptionalValue() throws(KVError) -> [UInt8]? {
        switch readByte() {
        case 0: return nil
        case 1: return try readField("value")
        default: throw .malformedCommand("missing or unknown liveness byte")
        }
    }
}

extension ActiveActiveConflictState {
    /// Section 5's body.
    func snapshotSection() -> [UInt8] {
        var body: [UInt8] = []
        settings.append(to: &body)
        body.appendVarint(nextConflictID)
        body.appendVarint(UInt64(conflicts.count))
        for id in conflicts.keys.sorted() {
            guard let conflict = conflicts[id] else { continue }  // unreachable: keys come from conflicts
            body.appendVarint(id)
            body.appendKey(conflict.key)
            body.appendVarint(conflict.detectedAt)
            body.appendVersionList(conflict.versions)
        }
        body.appendVarint(nextAuditID)
        body.appendVarint(UInt64(audit.count))
        for entry in audit {
            body.appendVarint(entry.id)
            body.appendVarint(entry.time)
            body.appendKey(entry.key)
            body.appendLengthPrefixed(Array(entry.rule.utf8))
            body.appendLengthPrefixed(Array(entry.detail.utf8))
            body.appendOptionalValue(entry.winner)
            body.appendVersionList(entry.versions)
        }
        return body
    }

    /// Reads section 5's body.
    init(section bytes: [UInt8]) throws(KVError) {
        let decoded = bytes.withUnsafeBytes { raw in
            Result { () throws(KVError) -> ActiveActiveConflictState in
                var reader = ByteReader(raw)
                var state = ActiveActiveConflictState()
                state.settings = try reader.readConflictSettings()
                state.nextConflictID = try reader.readCommandVarint("next conflict ID")
                let conflicts = try reader.readCount("conflict count", minimumBytesEach: 4)
                guard conflicts <= state.settings.maxConflicts else { throw .malformedCommand("\(conflicts) conflicts") }
                for _ in 0 ..< conflicts {
                    let id = try reader.readCommandVarint("conflict ID")
                    guard state.nextConflictID > id, (state.conflicts.keys.max() ?? 0) < id else {
                        throw .malformedCommand("conflict IDs are not ascending below the next ID")
                    }
                    let conflict = ActiveActiveConflict(id: id, key: try reader.readKey(),
                                                        versions: [], detectedAt: try reader.readCommandVarint("detected at"))
                    var filled = conflict
                    filled.versions = try reader.readVersionList()
                    guard state.conflictOfKey[filled.key] == nil else { throw .malformedCommand("two conflicts of one key") }
                    state.conflicts[id] = filled
                    state.conflictOfKey[filled.key] = id
                }
                state.nextAuditID = try reader.readCommandVarint("next audit ID")
                let entries = try reader.readCount("audit count", minimumBytesEach: 6)
                guard entries <= state.settings.auditMaxEntries else { throw .malformedCommand("\(entries) audit entries") }
                for _ in 0 ..< entries {
                    let id = try reader.readCommandVarint("audit ID")
                    guard state.nextAuditID > id, (state.audit.last?.id ?? 0) < id else {
                        throw .malformedCommand("audit IDs are not ascending below the next ID")
                    }
                    state.audit.append(ActiveActiveAuditEntry(
                        id: id, time: try reader.readCommandVarint("audit time"), key: try reader.readKey(),
                        rule: try reader.readText("audit rule", maxBytes: ActiveActiveAuditEntry.maxRuleSize),
                        detail: try reader.readText("audit detail", maxBytes: ActiveActiveAuditEntry.maxDetailSize,
                                                    allowEmpty: true),
                        winner: try reader.readOptionalValue(), versions: try reader.readVersionList()))
                }
                guard reader.remaining == 0 else { throw .malformedCommand("\(reader.remaining) unexpected bytes at the end") }
                return state
            }
        }
        do {
            self = try decoded.get()
        } catch {
            throw .malformedSnapshot("active-active conflict section: \(error)")
        }
    }
}
