// The sections block of a version 3 snapshot, after the collections and before the
// trailer (see KVSnapshot.swift):
//
//     count        varint: the number of sections
//     per section  in strictly ascending tag order: tag (varint), body length (varint),
//                  body bytes
//
// Tags: 1 = client sessions (ClientSessions.swift), 2 = the cluster's DR state
// (DRSnapshotSection.swift; written only when it differs from `DRState()`), 3 = the
// active-active settings, cursors, CRDT metadata and garbage-collection vectors
// (ActiveActiveCodec.swift; written only when they differ from a plain cluster's), 4 = a DR standby's re-seed in
// progress (DRSeed.swift; written only during one), 5 = the active-active conflict
// strategies, manual queue and audit trail (ActiveActiveConflicts.swift; written only
// when they differ from a plain cluster's), 6 = active-active catch-ups in
// progress (ActiveActiveCatchUp.swift; written only during one), 7 = the
// active-active topology (ActiveActiveTopologyCommand.swift; written only when one is
// set). A section with nothing to say is
// left out, so a store without sessions writes a count of 0. An unknown tag, a
// duplicate or out-of-order tag, or a body over `KVSnapshotSection.maxBodySize` is a
// malformed snapshot: every section is replicated state, so none may be skipped.

/// One section of a version 3 snapshot.
struct KVSnapshotSection: Sendable {
    /// The client sessions' tag.
    static let sessionsTag: UInt64 = 1
    /// The DR state's tag.
    static let drTag: UInt64 = 2
    /// The active-active state's tag.
    static let activeActiveTag: UInt64 = 3
    /// The active-active conflict strategies, queue and audit trail's tag.
    static let activeActiveConflictsTag: UInt64 = 5
    /// A DR re-seed in progress' tag.
    static let seedTag: UInt64 = 4
    /// Active-active catch-ups in progress' tag.
    static let activeActiveCatchUpTag: UInt64 = 6
    /// The active-active topology's tag.
    static let activeActiveTopologyTag: UInt64 = 7
    /// The tags this build reads.
    static let knownTags: Set<UInt64> = [sessionsTag, drTag, activeActiveTag, seedTag, activeActiveConflictsTag,
                                          activeActiveCatchUpTag, activeActiveTopologyTag]
    /// The largest section body read.
    static let maxBodySize = 1 << 30

    var tag: UInt64
    var body: [UInt8]

    /// The block's bytes for `sections` (sorted by tag here).
    static func block(_ sections: [KVSnapshotSection]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendVarint(UInt64(sections.count))
        for section in sections.sorted(by: { $0.tag < $1.tag }) {
            bytes.appendVarint(section.tag)
            bytes.appendLengthPrefixed(section.body)
        }
        return bytes
    }
}

extension StateMachine {
    /// The sections this state has something for.
    func snapshotSections() -> [KVSnapshotSection] {
        var sections: [KVSnapshotSection] = []
        let sessions = encodedSessions()
        if !sessions.isEmpty { sections.append(KVSnapshotSection(tag: KVSnapshotSection.sessionsTag, body: sessions)) }
        if drState != DRState() { sections.append(KVSnapshotSection(tag: KVSnapshotSection.drTag, body: drState.snapshotSection())) }
        if !activeActive.isInitial {
            sections.append(KVSnapshotSection(tag: KVSnapshotSection.activeActiveTag, body: activeActive.snapshotSection { key in
                entries.find(key).map { entries.value(at: $0) }
            }))
        }
        if let drSeed { sections.append(KVSnapshotSection(tag: KVSnapshotSection.seedTag, body: drSeed.sectionBody())) }
        if !activeActiveConflicts.isInitial {
            sections.append(KVSnapshotSection(tag: KVSnapshotSection.activeActiveConflictsTag,
                                              body: activeActiveConflicts.snapshotSection()))
        }
        if let catchUps = activeActiveCatchUpSection() {
            sections.append(KVSnapshotSection(tag: KVSnapshotSection.activeActiveCatchUpTag, body: catchUps))
        }
        if let topology = activeActiveTopologyState {
            let body = topology.sectionBody(version: activeActiveTopologyVersionState)
            sections.append(KVSnapshotSection(tag: KVSnapshotSection.activeActiveTopologyTag, body: body))
        }
        return sections
    }
}

extension KVSnapshotReader {
    /// Reads the whole sections block; `false` (consuming nothing) if it is not
    /// complete yet.
    mutating func readSections(_ reader: inout ByteReader) throws(KVError) -> Bool {
        let start = reader.offset
        let badVarint = { KVError.malformedSnapshot("invalid varint in the sections block") }
        guard let count = try reader.readVarint(context: badVarint) else { return false }
        guard count <= UInt64(KVSnapshotSection.knownTags.count) else {
            throw .malformedSnapshot("\(count) sections, but this build knows \(KVSnapshotSection.knownTags.count)")
        }
        var read: [UInt64: [UInt8]] = [:]
        var previous: UInt64 = 0
        for _ in 0 ..< count {
            guard let tag = try reader.readVarint(context: badVarint) else {
                reader.offset = start
                return false
            }
            guard KVSnapshotSection.knownTags.contains(tag) else { throw .malformedSnapshot("unknown section tag \(tag)") }
            guard tag > previous else { throw .malformedSnapshot("section tag \(tag) is out of order or repeated") }
            previous = tag
            guard let body = try reader.readLengthPrefixed(
                limit: KVSnapshotSection.maxBodySize,
                tooLong: { .malformedSnapshot("section \(tag) has \($0) bytes, more than \(KVSnapshotSection.maxBodySize)") },
                badVarint: badVarint)
            else {
                reader.offset = start
                return false
            }
            read[tag] = Array(body)
        }
        sections = read
        return true
    }
}
