import AegisCRDT
import AegisRaft

// Catching an active-active link up from the source's whole state, when the source
// compacted its log past the link's cursor (the pull answers `410 Gone`).
//
// The receiving leader asks the source for its active-active state a page at a time,
// in ascending key order (`GET /v1/aa/catchup`, see the aegis AA article): every key's
// CRDT state (`StateMachine.activeActiveState(of:)`, tombstones included), at most
// `maxStates` states and about `maxBytes` encoded bytes per page. The first page fixes
// the catch-up's *snapshot index*: the source's applied index when it served it. Later
// pages are read later (their states are at least as new), so once every page is merged
// the receiver holds every change up to that index, and the link resumes the stream
// after it (changes after it that a page already carried are merged again: a join,
// harmless). The source holds its log from the snapshot index for the link meanwhile.
//
// Each page is merged through the receiver's Raft log as command 76
// (`activeActiveCatchUp`, encoding version 4), after the version and type bytes:
//
//     after-key flag byte (0: the page starts at the first key; 1: a key follows),
//     [after key (varint length + bytes)], complete byte (0 or 1: the last page),
//     then an active-active batch body (ActiveActiveCodec.swift) with after-index 0
//     and last index = the snapshot index; its key states are all after the after key
//
// Rules (`StateMachine.applyActiveActiveCatchUp`): a page without an after key starts
// (or restarts) the catch-up of its source; any other page must continue the catch-up
// in progress exactly (the same snapshot index, its after key the last key merged), or
// it fails and changes nothing. States are validated and joined as a batch's are. A
// complete page ends the catch-up: the link's cursor becomes the larger of itself and
// the snapshot index. Until then the progress (snapshot index, last key merged) is
// replicated state, so a restart or a new leader resumes after the last page merged
// rather than from the first key; it is in the snapshot as tagged section 6:
//
//     varint count, then per source in strictly ascending source order: source
//     (UTF-8, 1...255 bytes), varint snapshot index, last-key flag byte (0 or 1),
//     [last key (varint length + bytes)]

/// One page of a source cluster's whole active-active state, for a link that must
/// catch up (see `StateMachine.applyActiveActiveCatchUp`).
public struct ActiveActiveCatchUpPage: Sendable, Hashable {
    /// The page: `source`, `lastIndex` = the snapshot index, `states` = every key after
    /// `afterKey` up to the page's end, in ascending key order. `afterIndex` is 0.
    public var batch: ActiveActiveBatch
    /// The page starts after this key (`nil`: at the first key).
    public var afterKey: Key?
    /// `true` on the last page.
    public var complete: Bool

    /// The source's applied index the catch-up stands for.
    public var snapshotIndex: UInt64 { batch.lastIndex }

    /// Creates a page.
    public init(batch: ActiveActiveBatch, afterKey: Key?, complete: Bool) {
        self.batch = batch
        self.afterKey = afterKey
        self.complete = complete
    }
}

/// How far the catch-up of one link has got (replicated; snapshot section 6).
public struct ActiveActiveCatchUpProgress: Sendable, Hashable {
    /// The source's applied index the catch-up stands for.
    public var snapshotIndex: UInt64
    /// The last key merged (`nil` when the first page was empty).
    public var lastKey: Key?

    /// Creates a progress record.
    public init(snapshotIndex: UInt64, lastKey: Key?) {
        self.snapshotIndex = snapshotIndex
        self.lastKey = lastKey
    }
}

extension StateMachine {
    /// The catch-ups in progress, by source cluster ID.
    public var activeActiveCatchUps: [String: ActiveActiveCatchUpProgress] { activeActiveCatchUpProgress }

    /// One page of this cluster's whole active-active state for a peer's catch-up: the
    /// states of the keys after `afterKey` in ascending order, at most `maxStates` and
    /// about `maxBytes` encoded (at least one state), with `complete` when no key
    /// follows. The batch's last index is this state machine's applied index.
    public func activeActiveCatchUpPage(source: String, after afterKey: Key?, maxStates: Int, maxBytes: Int,
                                        sourceCommit: UInt64, sourceTime: UInt64) -> ActiveActiveCatchUpPage {
        var candidates: [Key] = []
        func consider(_ key: Key) { if afterKey.map({ $0 < key }) ?? true { candidates.append(key) } }
        for key in entries.keys { consider(key) }
        for key in collections.keys where entries.find(key) == nil { consider(key) }
        for key in activeActive.keys.keys where entries.find(key) == nil && collections[key] == nil { consider(key) }
        candidates.sort()
        var states: [ActiveActiveKeyState] = []
        var bytes = 0
        var position = 0
        while position < candidates.count && states.count < Swift.max(1, maxStates) && (states.isEmpty || bytes < maxBytes) {
            let state = activeActiveState(of: candidates[position])
            position += 1
            if state.isEmpty { continue }
            var encoded: [UInt8] = []
            encoded.appendKeyState(state)
            bytes += encoded.count
            states.append(state)
        }
        let batch = ActiveActiveBatch(source: source, afterIndex: 0, lastIndex: appliedIndex,
                                      sourceCommit: Swift.max(sourceCommit, appliedIndex), sourceTime: sourceTime, states: states)
        return ActiveActiveCatchUpPage(batch: batch, afterKey: afterKey, complete: position >= candidates.count)
    }

    /// Merges one catch-up page as the entry at `index` (the rules are in this file's
    /// header): `integer` is the link's cursor once the page is complete (else 0),
    /// `keyCount` the number of key states joined.
    mutating func applyActiveActiveCatchUp(_ page: ActiveActiveCatchUpPage, at index: LogIndex) -> CommandResult {
        guard activeActive.enabled else { return failure(.activeActiveDisabled, at: index) }
        let batch = page.batch
        guard batch.source != replica.rawValue else {
            return failure(.malformedCommand("a catch-up page from this cluster itself (\(batch.source))"), at: index)
        }
        if let afterKey = page.afterKey {
            let progress = activeActiveCatchUpProgress[batch.source]
            guard let progress, progress.snapshotIndex == page.snapshotIndex, progress.lastKey == afterKey else {
                let expected = progress.map { "at index \($0.snapshotIndex) after \($0.lastKey.map { "\($0)" } ?? "the start")" }
                return failure(.malformedCommand("the catch-up page of \(batch.source) at index \(page.snapshotIndex) after "
                                                 + "\(afterKey) does not continue the catch-up in progress (\(expected ?? "none"))"),
                               at: index)
            }
        }
        if let afterKey = page.afterKey, let first = batch.states.first, !(afterKey < first.key) {
            return failure(.malformedCommand("the catch-up page's first key \(first.key) is not after \(afterKey)"), at: index)
        }
        if let error = activeActiveRefusal(of: batch) { return failure(error, at: index) }
        for remote in batch.states {
            var state = activeActiveState(of: remote.key)
            let before = state.string
            state.merge(remote)
            resolveMergedString(&state, before: before, remote: remote.string)
            installActiveActive(state, at: index)
            for stamp in remote.stamps { observe(stamp) }
        }
        var result = CommandResult(index: index, revision: revision)
        result.keyCount = batch.states.count
        if page.complete {
            activeActiveCatchUpProgress[batch.source] = nil
            let previous = activeActive.cursors[batch.source]
            let last = Swift.max(previous?.lastIndex ?? 0, page.snapshotIndex)
            activeActive.cursors[batch.source] = ActiveActiveCursor(
                lastIndex: last, sourceCommit: Swift.max(previous?.sourceCommit ?? 0, batch.sourceCommit, last),
                sourceTime: Swift.max(previous?.sourceTime ?? 0, batch.sourceTime))
            result.integer = Int64(clamping: last)
        } else {
            activeActiveCatchUpProgress[batch.source] = ActiveActiveCatchUpProgress(
                snapshotIndex: page.snapshotIndex, lastKey: batch.states.last?.key ?? page.afterKey)
        }
        return result
    }

    /// Snapshot section 6's body (`nil` when no catch-up is in progress).
    func activeActiveCatchUpSection() -> [UInt8]? {
        guard !activeActiveCatchUpProgress.isEmpty else { return nil }
        var body: [UInt8] = []
        body.appendVarint(UInt64(activeActiveCatchUpProgress.count))
        for source in activeActiveCatchUpProgress.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            guard let progress = activeActiveCatchUpProgress[source] else { continue }  // unreachable
            body.appendLengthPrefixed(Array(source.utf8))
            body.appendVarint(progress.snapshotIndex)
            body.appendOptionalKey(progress.lastKey)
        }
        return body
    }

    /// Reads snapshot section 6.
    static func activeActiveCatchUps(section bytes: [UInt8]) throws(KVError) -> [String: ActiveActiveCatchUpProgress] {
        let decoded = bytes.withUnsafeBytes { raw in
            Result { () throws(KVError) -> [String: ActiveActiveCatchUpProgress] in
                var reader = ByteReader(raw)
                var progress: [String: ActiveActiveCatchUpProgress] = [:]
                let count = try reader.readCount("catch-up count", minimumBytesEach: 4)
                var previous: String?
                for _ in 0 ..< count {
                    let source = try reader.readText("catch-up source", maxBytes: StreamBatch.maxSourceSize)
                    if let previous, !previous.utf8.lexicographicallyPrecedes(source.utf8) {
                        throw .malformedCommand("catch-ups are not in strictly ascending source order at '\(source)'")
                    }
                    previous = source
                    progress[source] = ActiveActiveCatchUpProgress(snapshotIndex: try reader.readCommandVarint("catch-up index"),
                                                                   lastKey: try reader.readOptionalKey("catch-up last key"))
                }
                guard reader.remaining == 0 else { throw .malformedCommand("\(reader.remaining) unexpected bytes at the end") }
                return progress
            }
        }
        do {
            return try decoded.get()
        } catch {
            throw .malformedSnapshot("active-active catch-up section: \(error)")
        }
    }
}

// MARK: Command 76's body

extension ActiveActiveCatchUpPage {
    /// Appends the page's body (after the command's version and type bytes).
    func append(to bytes: inout [UInt8]) {
        bytes.appendOptionalKey(afterKey)
        bytes.append(complete ? 1 : 0)
        batch.append(to: &bytes)
    }
}

extension Array where Element == UInt8 {
    /// A flag byte (0 or 1), then the key if it is present.
    mutating func appendOptionalKey(_ key: Key?) {
        guard let key else {
            append(0)
            return
        }
        append(1)
        appendKey(key)
    }
}

extension ByteReader {
    @usableFromInline mutating func readOptionalKey(_ name: String) throws(KVError) -> Key? {
        guard let flag = readByte(), flag <= 1 else { throw .malformedCommand("missing or unknown \(name) flag") }
        return flag == 1 ? try readKey() : nil
    }

    @usableFromInline mutating func readActiveActiveCatchUp() throws(KVError) -> ActiveActiveCatchUpPage {
        let afterKey = try readOptionalKey("catch-up after-key")
        guard let complete = readByte(), complete <= 1 else { throw .malformedCommand("missing or unknown complete flag") }
        let batch = try readActiveActiveBatch()
        guard batch.afterIndex == 0 else {
            throw .malformedCommand("a catch-up page's batch starts after index \(batch.afterIndex), not 0")
        }
        return ActiveActiveCatchUpPage(batch: batch, afterKey: afterKey, complete: complete == 1)
    }
}
