import AegisCRDT

// The encodings of active-active: the two commands (version 4, types 70 and 71), the
// key state they and the snapshot carry, and tagged snapshot section 3. All integers
// are unsigned LEB128 varints; texts and byte strings are a varint length then bytes.
//
//     setActiveActive (70)    enabled byte (0 or 1), varint max clock skew (ms)
//     activeActiveBatch (71)  source cluster ID (UTF-8, 1...255 bytes), varint
//                             after-index, varint last index (>= after-index), varint
//                             source commit (>= last index), varint source time (ms),
//                             varint state count (<= 50,000), then the key states in
//                             strictly ascending key order, then optionally (absent in
//                             batches written before garbage collection) the source's
//                             progress vector, then optionally (only in a star or
//                             tree, see ActiveActiveTopology.swift) the relayed
//                             reports as a report list, then optionally (when the
//                             source's topology was set by a change, not a starting
//                             file) a topology version and a topology as in command 77
//                             (ActiveActiveTopologyCommand.swift); a batch with a
//                             topology writes the progress vector and report list
//                             before it, empty if need be
//     report list             varint count (<= 64), then per cluster in strictly
//                             ascending order: cluster (UTF-8, 1...255 bytes), its
//                             progress vector
//     progress vector         varint count (<= 64), then per origin in strictly
//                             ascending origin order: origin (UTF-8, 1...255 bytes),
//                             varint stamp physical (ms), varint stamp logical
//                             (<= 2^32 - 1), varint dot counter
//     key state               key, parts byte (bit 0 string, bit 1 set, bit 2 hash;
//                             no other bit, at least one), then each part present:
//       string                stamp, live byte (0 deleted, 1 live), value (if live),
//                             varint counter count (0 if deleted), then per counter in
//                             strictly ascending origin order: origin (UTF-8, 1...255
//                             bytes), varint increments, varint decrements
//       set, hash             stamp, then the CRDT (ORSet of byte strings, or ORMap of
//                             byte-string fields to LWW registers) in AegisCRDT's
//                             tagged binary encoding, as one byte string
//       hash counters         (parts bit 3, only with bit 2: HINCRBY fields) varint
//                             field count (>= 1), then per field in strictly ascending
//                             byte order: field, base stamp, base value, varint counter
//                             count, then the counters as for a string
//       string versions       (parts bit 4, only with bit 0: a string under a strategy
//                             other than lww) see ActiveActiveVersions.swift
//     stamp                   varint physical (ms), varint logical (<= 2^32 - 1),
//                             replica (UTF-8, 0...255 bytes)
//
// Snapshot section 3 (written only when the state differs from a plain cluster's):
//
//     enabled byte, varint max clock skew, varint cursor count, then per cursor in
//     strictly ascending source order: source (UTF-8, 1...255 bytes), varint last
//     index, varint source commit, varint source time; varint key count, then the
//     keys' metadata as key states in strictly ascending key order (a visible set or
//     hash is an empty placeholder there: the snapshot's collections hold it); then,
//     optionally (absent in sections written before garbage collection): the merged
//     vector as a progress vector, varint report count (<= 64), then per peer in
//     strictly ascending order: peer (UTF-8, 1...255 bytes), its progress vector.

/// The longest active-active snapshot section a reader accepts.
let maxActiveActiveSectionSize = 1 << 30

extension Array where Element == UInt8 {
    mutating func appendStamp(_ stamp: HLCTimestamp) {
        appendVarint(stamp.physical)
        appendVarint(UInt64(stamp.logical))
        appendLengthPrefixed(Array(stamp.replica.rawValue.utf8))
    }

    mutating func appendKeyState(_ state: ActiveActiveKeyState) {
        appendKey(state.key)
        let counters = state.hash?.counters ?? [:]
        append((state.string == nil ? 0 : 1) | (state.set == nil ? 0 : 2) | (state.hash == nil ? 0 : 4)
               | (counters.isEmpty ? 0 : 8) | (state.string?.versions == nil ? 0 : 16))
        if let string = state.string {
            appendStamp(string.stamp)
            if let value = string.value {
                append(1)
                appendLengthPrefixed(value)
            } else {
                append(0)
            }
            appendContributions(string.counters)
        }
        for part in [state.set, state.hash] {
            guard let part else { continue }
            appendStamp(part.stamp)
            appendLengthPrefixed(part.value.encoded())
        }
        if !counters.isEmpty { appendHashCounters(counters) }
        if let string = state.string, let versions = string.versions { appendVersions(versions, context: string.context) }
    }

    private mutating func appendHashCounters(_ counters: [[UInt8]: HashFieldCounter]) {
        appendVarint(UInt64(counters.count))
        for field in counters.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            guard let counter = counters[field] else { continue }  // unreachable: keys come from counters
            appendLengthPrefixed(field)
            appendStamp(counter.base)
            appendLengthPrefixed(counter.baseValue)
            appendContributions(counter.contributions)
        }
    }

    /// A varint count, then per origin in ascending order: origin, increments, decrements.
    mutating func appendContributions(_ contributions: [ReplicaID: CounterContribution]) {
        appendVarint(UInt64(contributions.count))
        for origin in contributions.keys.sorted() {
            let contribution = contributions[origin] ?? CounterContribution()
            appendLengthPrefixed(Array(origin.rawValue.utf8))
            appendVarint(contribution.increments)
            appendVarint(contribution.decrements)
        }
    }
}

extension ActiveActiveBatch {
    /// Appends the batch's body (after the command's version and type bytes).
    func append(to bytes: inout [UInt8]) {
        bytes.appendLengthPrefixed(Array(source.utf8))
        bytes.appendVarint(afterIndex)
        bytes.appendVarint(lastIndex)
        bytes.appendVarint(sourceCommit)
        bytes.appendVarint(sourceTime)
        bytes.appendVarint(UInt64(states.count))
        for state in states.sorted(by: { $0.key < $1.key }) { bytes.appendKeyState(state) }
        if !progress.isEmpty || !relayed.isEmpty || topology != nil { bytes.appendProgress(progress) }
        if !relayed.isEmpty || topology != nil { bytes.appendReports(relayed) }
        if let topology {
            bytes.appendTopologyVersion(topology.version)
            topology.topology.append(to: &bytes)
        }
    }
}

extension Array where Element == UInt8 {
    /// Appends a report list (progress vectors by cluster).
    mutating func appendReports(_ reports: [String: [String: ActiveActiveProgress]]) {
        appendVarint(UInt64(reports.count))
        for peer in reports.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            appendLengthPrefixed(Array(peer.utf8))
            appendProgress(reports[peer] ?? [:])
        }
    }

    mutating func appendProgress(_ vector: [String: ActiveActiveProgress]) {
        appendVarint(UInt64(vector.count))
        for origin in vector.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            guard let entry = vector[origin] else { continue }  // unreachable: keys come from vector
            appendLengthPrefixed(Array(origin.utf8))
            appendVarint(entry.physical)
            appendVarint(UInt64(entry.logical))
            appendVarint(entry.dot)
        }
    }
}

extension ActiveActiveSettings {
    func append(to bytes: inout [UInt8]) {
        bytes.append(enabled ? 1 : 0)
        bytes.appendVarint(maxClockSkewMillis)
    }
}

extension ByteReader {
    mutating func readStamp() throws(KVError) -> HLCTimestamp {
        let physical = try readCommandVarint("stamp")
        guard let logical = UInt32(exactly: try readCommandVarint("stamp logical part")) else {
            throw .malformedCommand("a stamp's logical part is over 32 bits")
        }
        return HLCTimestamp(physical: physical, logical: logical, replica: try readReplica())
    }

    /// A stamp's replica: 0 to `StreamBatch.maxSourceSize` bytes of UTF-8, the
    /// previous stamp's replica when the bytes are the same.
    mutating func readReplica() throws(KVError) -> ReplicaID {
        let start = offset
        if let last = lastReplica, let field = (try? readLengthPrefixed(
            limit: StreamBatch.maxSourceSize, tooLong: { _ in .malformedCommand("") }, badVarint: { .malformedCommand("") })) ?? nil,
            last.rawValue.utf8.elementsEqual(field) {
            return last
        }
        offset = start
        let replica = ReplicaID(try readText("stamp replica", maxBytes: StreamBatch.maxSourceSize, allowEmpty: true))
        lastReplica = replica
        return replica
    }

    mutating func readKeyState() throws(KVError) -> ActiveActiveKeyState {
        var state = ActiveActiveKeyState(key: try readKey())
        guard let parts = readByte(), parts & 7 != 0, parts & ~31 == 0, parts & 8 == 0 || parts & 4 != 0,
              parts & 16 == 0 || parts & 1 != 0 else {
            throw .malformedCommand("missing or unknown key state parts")
        }
        if parts & 1 != 0 {
            let stamp = try readStamp()
            var value: [UInt8]?
            switch readByte() {
            case 0: value = nil
            case 1: value = try readField("string value")
            default: throw .malformedCommand("missing or unknown string liveness")
            }
            let counters = try readContributions()
            guard value != nil || counters.isEmpty else { throw .malformedCommand("a deleted string with counters") }
            state.string = ActiveActiveString(stamp: stamp, value: value, counters: counters)
        }
        for (bit, type) in [(UInt8(2), ValueType.set), (4, .hash)] where parts & bit != 0 {
            let stamp = try readStamp()
            let bytes = try readField("\(type.name) state")
            let value: CollectionValue
            do {
                value = try CollectionValue(type: type, encoded: bytes)
            } catch {
                throw .malformedCommand("the \(type.name) state of \(state.key): \(error)")
            }
            let part = ActiveActiveCollection(value: value, stamp: stamp)
            if type == .set { state.set = part } else { state.hash = part }
        }
        if parts & 8 != 0 {
            let count = try readCount("hash counter count", minimumBytesEach: 5)
            guard count > 0 else { throw .malformedCommand("an empty hash counter list") }
            var previous: [UInt8]?
            for _ in 0 ..< count {
                let field = try readField("hash counter field")
                if let previous, !previous.lexicographicallyPrecedes(field) {
                    throw .malformedCommand("hash counters are not in strictly ascending field order")
                }
                previous = field
                let counter = HashFieldCounter(base: try readStamp(), baseValue: try readField("hash counter base"),
                                               contributions: try readContributions())
                state.hash?.counters[field] = counter
            }
            state.hash?.settleCounters()  // the registers show the counters, whatever the peer sent
        }
        if parts & 16 != 0 {
            let (versions, context) = try readVersions()
            state.string?.versions = versions
            state.string?.context = context
        }
        return state
    }

    mutating func readContributions() throws(KVError) -> [ReplicaID: CounterContribution] {
        let count = try readCount("counter count", minimumBytesEach: 4)
        var counters: [ReplicaID: CounterContribution] = [:]
        var previous: ReplicaID?
        for _ in 0 ..< count {
            let origin = ReplicaID(try readText("counter origin", maxBytes: StreamBatch.maxSourceSize))
            if let previous, !(previous < origin) {
                throw .malformedCommand("counters are not in strictly ascending origin order at '\(origin)'")
            }
            previous = origin
            counters[origin] = CounterContribution(increments: try readCommandVarint("increments"),
                                                   decrements: try readCommandVarint("decrements"))
        }
        return counters
    }

    mutating func readKeyStates(_ name: String, limit: Int) throws(KVError) -> [ActiveActiveKeyState] {
        let count = try readCount(name, minimumBytesEach: 3)
        guard count <= limit else { throw .malformedCommand("\(count) key states, more than \(limit)") }
        var states: [ActiveActiveKeyState] = []
        states.reserveCapacity(count)
        var previous: Key?
        for _ in 0 ..< count {
            let state = try readKeyState()
            if let previous, !(previous < state.key) {
                throw .malformedCommand("key states are not in strictly ascending key order at \(state.key)")
            }
            previous = state.key
            states.append(state)
        }
        return states
    }

    @usableFromInline mutating func readActiveActiveSettings() throws(KVError) -> ActiveActiveSettings {
        guard let enabled = readByte(), enabled <= 1 else { throw .malformedCommand("missing or unknown enabled flag") }
        return ActiveActiveSettings(enabled: enabled == 1, maxClockSkewMillis: try readCommandVarint("max clock skew"))
    }

    @usableFromInline mutating func readActiveActiveBatch() throws(KVError) -> ActiveActiveBatch {
        let source = try readText("source cluster ID", maxBytes: StreamBatch.maxSourceSize)
        let after = try readCommandVarint("batch after-index")
        let last = try readCommandVarint("batch last index")
        guard last >= after else { throw .malformedCommand("the batch ends at \(last), before its start \(after)") }
        let commit = try readCommandVarint("source commit index")
        guard commit >= last else { throw .malformedCommand("the source commit \(commit) is before the batch's end \(last)") }
        let time = try readCommandVarint("source time")
        let states = try readKeyStates("key state count", limit: ActiveActiveBatch.maxStates)
        let progress = remaining > 0 ? try readProgress("batch progress") : [:]
        let relayed = remaining > 0 ? try readReports("relayed report") : [:]
        var topology: ActiveActiveVersionedTopology?
        if remaining > 0 {
            let version = try readTopologyVersion()
            guard !version.isZero else { throw .malformedCommand("a batch's topology has version zero") }
            topology = ActiveActiveVersionedTopology(topology: try readTopology(), version: version)
        }
        return ActiveActiveBatch(source: source, afterIndex: after, lastIndex: last, sourceCommit: commit,
                                 sourceTime: time, states: states, progress: progress, relayed: relayed, topology: topology)
    }

    /// Reads a cluster ID (UTF-8, 1...255 bytes) that must sort strictly after `previous`
    /// (byte-wise), and makes it the new `previous`.
    mutating func readAscendingClusterID(_ name: String, after previous: inout String?) throws(KVError) -> String {
        let id = try readText(name, maxBytes: StreamBatch.maxSourceSize)
        if let previous, !previous.utf8.lexicographicallyPrecedes(id.utf8) {
            throw .malformedCommand("\(name) '\(id)' is not in strictly ascending order")
        }
        previous = id
        return id
    }

    /// Reads a report list (at most 64 vectors, clusters strictly ascending).
    mutating func readReports(_ name: String) throws(KVError) -> [String: [String: ActiveActiveProgress]] {
        let count = try readCount("\(name) count", minimumBytesEach: 2)
        guard count <= ActiveActiveBatch.maxProgressEntries else {
            throw .malformedCommand("\(count) \(name)s, more than \(ActiveActiveBatch.maxProgressEntries)")
        }
        var reports: [String: [String: ActiveActiveProgress]] = [:]
        var previous: String?
        for _ in 0 ..< count {
            let peer = try readAscendingClusterID("\(name) cluster", after: &previous)
            reports[peer] = try readProgress("\(name) of \(peer)")
        }
        return reports
    }

    mutating func readProgress(_ name: String) throws(KVError) -> [String: ActiveActiveProgress] {
        let count = try readCount("\(name) count", minimumBytesEach: 5)
        guard count <= ActiveActiveBatch.maxProgressEntries else {
            throw .malformedCommand("\(name): \(count) entries, more than \(ActiveActiveBatch.maxProgressEntries)")
        }
        var vector: [String: ActiveActiveProgress] = [:]
        var previous: String?
        for _ in 0 ..< count {
            let origin = try readAscendingClusterID("\(name) origin", after: &previous)
            let physical = try readCommandVarint("\(name) physical")
            guard let logical = UInt32(exactly: try readCommandVarint("\(name) logical")) else {
                throw .malformedCommand("\(name): a logical part over 32 bits")
            }
            vector[origin] = ActiveActiveProgress(physical: physical, logical: logical,
                                                  dot: try readCommandVarint("\(name) dot"))
        }
        return vector
    }
}

// MARK: Snapshot section 3

extension ActiveActiveState {
    /// The section's body; `value` gives a plain record's value (the key-value
    /// table's), so every state is written whole.
    func snapshotSection(value: (Key) -> [UInt8]?) -> [UInt8] {
        var body: [UInt8] = []
        settings.append(to: &body)
        body.appendVarint(UInt64(cursors.count))
        for source in cursors.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            guard let cursor = cursors[source] else { continue }  // unreachable: keys come from cursors
            body.appendLengthPrefixed(Array(source.utf8))
            body.appendVarint(cursor.lastIndex)
            body.appendVarint(cursor.sourceCommit)
            body.appendVarint(cursor.sourceTime)
        }
        body.appendVarint(UInt64(keys.count))
        for key in keys.keys.sorted() {
            guard let state = keys.state(of: key, value: value) else { continue }  // unreachable
            body.appendKeyState(state)
        }
        if !merged.isEmpty || !reports.isEmpty {
            body.appendProgress(merged)
            body.appendReports(reports)
        }
        return body
    }

    /// Reads a whole section body.
    init(section bytes: [UInt8]) throws(KVError) {
        let decoded = bytes.withUnsafeBytes { raw in
            Result { () throws(KVError) -> ActiveActiveState in
                var reader = ByteReader(raw)
                var state = ActiveActiveState()
                state.settings = try reader.readActiveActiveSettings()
                let count = try reader.readCount("cursor count", minimumBytesEach: 5)
                var previous: String?
                for _ in 0 ..< count {
                    let source = try reader.readAscendingClusterID("cursor source", after: &previous)
                    state.cursors[source] = ActiveActiveCursor(lastIndex: try reader.readCommandVarint("cursor index"),
                                                               sourceCommit: try reader.readCommandVarint("cursor commit"),
                                                               sourceTime: try reader.readCommandVarint("cursor time"))
                }
                for keyState in try reader.readKeyStates("metadata key count", limit: Int.max) {
                    state.keys.set(keyState.key, .full(keyState))  // compacted by the restore
                }
                if reader.remaining > 0 {
                    state.merged = try reader.readProgress("merged vector")
                    state.reports = try reader.readReports("report")
                }
                guard reader.remaining == 0 else { throw .malformedCommand("\(reader.remaining) unexpected bytes at the end") }
                return state
            }
        }
        do {
            self = try decoded.get()
        } catch {
            throw .malformedSnapshot("active-active section: \(error)")
        }
    }
}

extension ActiveActiveBatch {
    /// The batch's body alone (no command version or type bytes): the payload of an
    /// active-active stream frame. `init(decodingBody:)` reads it back.
    public func encodedBody() -> [UInt8] {
        var bytes: [UInt8] = []
        append(to: &bytes)
        return bytes
    }

    /// The bytes of `Command.activeActiveBatch(batch).encoded()` for the batch whose
    /// `encodedBody()` is `body`: a receiver that decoded a peer's frame proposes the
    /// body it received without encoding the batch again.
    public static func encodedCommand(body: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(2 + body.count)
        bytes.append(CommandType.activeActiveBatch.encodingVersion)
        bytes.append(CommandType.activeActiveBatch.rawValue)
        bytes.append(contentsOf: body)
        return bytes
    }

    /// Decodes a body written by `encodedBody()`, as strictly as a command.
    ///
    /// - Throws: `KVError.malformedCommand` when the bytes are not exactly one valid batch.
    public init(decodingBody bytes: [UInt8]) throws(KVError) {
        let decoded = bytes.withUnsafeBytes { raw in
            Result { () throws(KVError) -> ActiveActiveBatch in
                var reader = ByteReader(raw)
                let batch = try reader.readActiveActiveBatch()
                guard reader.remaining == 0 else {
                    throw .malformedCommand("\(reader.remaining) unexpected bytes after the active-active batch")
                }
                return batch
            }
        }
        self = try decoded.get()
    }
}
