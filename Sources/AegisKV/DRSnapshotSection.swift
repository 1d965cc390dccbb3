// The DR section of a key-value snapshot (format 3): the cluster's epoch, role,
// primary addresses, lease and link cursors, as the body of tagged section 2 (see
// KVSnapshotSections.swift). Self-contained: a varint length, then that many bytes:
//
//     varint epoch, role byte (1 primary, 2 standby, 3 fenced),
//     primary, primary admin (each varint length + UTF-8, at most 1024 bytes),
//     varint lease ms,
//     varint cursor count, then per cursor in strictly ascending source order:
//       source (varint length + UTF-8, 1...255 bytes), varint last index,
//       varint epoch, varint last HLC physical time, varint source commit,
//     then, only when not empty: the pending seed's source (varint length + UTF-8,
//       1...255 bytes; `Command.drRejoin`); a section without it reads as empty
//
// Snapshots of formats 1 and 2 have no section: they restore `DRState()`.

/// The longest DR section a reader accepts, in bytes (a cursor takes at most about 290).
let maxDRSectionSize = 1 << 20

extension DRState {
    /// The section's bytes, length prefix included.
    func snapshotSection() -> [UInt8] {
        var body: [UInt8] = []
        body.appendVarint(epoch)
        body.append(role.rawValue)
        body.appendLengthPrefixed(Array(primary.utf8))
        body.appendLengthPrefixed(Array(primaryAdmin.utf8))
        body.appendVarint(leaseMillis)
        body.appendVarint(UInt64(cursors.count))
        for source in cursors.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            guard let cursor = cursors[source] else { continue }  // unreachable: keys come from cursors
            body.appendLengthPrefixed(Array(source.utf8))
            body.appendVarint(cursor.lastIndex)
            body.appendVarint(cursor.epoch)
            body.appendVarint(cursor.lastPhysical)
            body.appendVarint(cursor.sourceCommit)
        }
        if !pendingSeed.isEmpty { body.appendLengthPrefixed(Array(pendingSeed.utf8)) }
        var section: [UInt8] = []
        section.appendLengthPrefixed(body)
        return section
    }
}

extension DRState {
    /// Reads a whole DR section (tagged section 2's body).
    init(section bytes: [UInt8]) throws(KVError) {
        let state = try bytes.withUnsafeBytes { raw in
            Result { () throws(KVError) -> DRState? in
                var reader = ByteReader(raw)
                guard let state = try reader.readDRSection(), reader.remaining == 0 else { return nil }
                return state
            }
        }.get()
        guard let state else { throw .malformedSnapshot("the DR section is truncated or followed by stray bytes") }
        self = state
    }
}

extension ByteReader {
    /// Reads a DR section; `nil` (consuming nothing) when it is not complete yet.
    ///
    /// - Throws: `KVError.malformedSnapshot` when the section breaks a rule.
    mutating func readDRSection() throws(KVError) -> DRState? {
        let start = offset
        let bad = { KVError.malformedSnapshot("invalid varint in the DR section") }
        guard let body = try readLengthPrefixed(
            limit: maxDRSectionSize, tooLong: { .malformedSnapshot("a DR section of \($0) bytes is too long") },
            badVarint: bad) else {
            offset = start
            return nil
        }
        var reader = ByteReader(body)
        do {
            return try reader.readDRBody()
        } catch {
            throw .malformedSnapshot("DR section: \(error)")
        }
    }

    /// Reads the section's body, which must be consumed exactly.
    private mutating func readDRBody() throws(KVError) -> DRState {
        var state = DRState()
        state.epoch = try readCommandVarint("epoch")
        guard let rawRole = readByte(), let role = ClusterRole(rawValue: rawRole) else {
            throw .malformedCommand("missing or unknown role")
        }
        state.role = role
        state.primary = try readText("primary", maxBytes: DRTransition.maxPrimarySize, allowEmpty: true)
        state.primaryAdmin = try readText("primary admin", maxBytes: DRTransition.maxPrimarySize, allowEmpty: true)
        state.leaseMillis = try readCommandVarint("lease")
        let count = try readCount("cursor count", minimumBytesEach: 6)
        var previous: String?
        for _ in 0 ..< count {
            let source = try readText("cursor source", maxBytes: StreamBatch.maxSourceSize)
            if let previous, !previous.utf8.lexicographicallyPrecedes(source.utf8) {
                throw .malformedCommand("cursors are not in strictly ascending source order at '\(source)'")
            }
            previous = source
            state.cursors[source] = StreamCursor(lastIndex: try readCommandVarint("cursor index"),
                                                 epoch: try readCommandVarint("cursor epoch"),
                                                 lastPhysical: try readCommandVarint("cursor clock"),
                                                 sourceCommit: try readCommandVarint("cursor source commit"))
        }
        if remaining > 0 { state.pendingSeed = try readText("pending seed source", maxBytes: StreamBatch.maxSourceSize) }
        guard remaining == 0 else { throw .malformedCommand("\(remaining) unexpected bytes at the end") }
        return state
    }
}
