// Re-seeding a DR standby from its primary's snapshot, when the primary compacted its
// log past the standby's cursor (the stream answers `410 Gone`).
//
// The standby's leader reads the primary's newest snapshot file (its data: a key-value
// snapshot, KVSnapshot.swift) a chunk at a time and logs each chunk in its own cluster
// as one `drSeedChunk` command, so every standby node stages the same bytes at the same
// place in its log. The chunk that completes the snapshot installs it: the keys, sets,
// hashes, deadlines, clocks and client sessions become the primary's at the snapshot's
// index, and the link's cursor becomes that index, in the same entry (so the standby
// then pulls the stream from exactly there). The standby's own DR state (role, epoch,
// addresses, lease, other cursors) is kept. Until then the standby serves its previous
// state, unchanged.
//
// Command `drSeedChunk` (raw value 50, encoding version 4), after the version and type
// bytes:
//
//     source cluster ID (varint length + UTF-8, 1...255 bytes), varint epoch,
//     varint snapshot index (>= 1), varint total bytes (1 ... 2^30 - 2^20),
//     varint offset, chunk (varint length + bytes, 1 ... 4 MiB, offset + length <= total)
//
// The same body (without version and type) is the payload of `GET /v1/dr/seed` (see
// the aegis DR article), so the standby's leader decodes what it logs with this reader.
//
// Rules (`StateMachine.applySeedChunk`): only a standby applies a chunk, and only at an
// epoch at least its own. A chunk at offset 0 starts a new staging (dropping any
// other); any other chunk must continue the staging exactly (same source, epoch, index
// and total, offset = the bytes staged), else it fails with `streamGap(source:,
// cursor: bytes staged, afterIndex: offset)` and changes nothing. The staged bytes are
// at most `Limits.maxSeedBytes`. The last chunk installs the snapshot if it is complete,
// its checksum matches, its applied index is the chunk's snapshot index and that index
// is past the link's cursor; otherwise the entry fails, the staging is dropped and the
// state is unchanged.
//
// Snapshot section 4 (KVSnapshotSections.swift) holds a staging in progress, so a
// standby node restored from its own cluster's snapshot mid-seed stages the same bytes:
//
//     source (varint length + UTF-8), varint epoch, varint snapshot index,
//     varint total, staged bytes (varint length + bytes, 1 ... total - 1)
//
// A transition out of the standby role drops a staging in progress.
//
// Memory: a staging in progress is held in memory on every standby node (the state
// machine is pure: no files). Per node, for one seed of S bytes (S <= `total` <=
// `Limits.maxSeedBytes`, by default 1 GiB - 1 MiB; `aegis serve` does not change it):
// the staged bytes take at most S (their capacity is reserved once at offset 0); a
// snapshot of the node taken while a seed is staged builds section 4 and the sections
// block from it, up to 2 S more until that snapshot is written (off the node's loop);
// the installing chunk decodes the snapshot into a new state beside the current one
// (the old state is freed when the entry is applied). The chunks' log entries (at most
// 4 MiB each) are held like any entry until the log is compacted. A staging in
// a file in the data directory (bounded by the same limit) is not built: it needs an
// I/O seam the pure state machine does not have.
//
// Failback (`drRejoin`, raw value 51, a setDRState body): a primary that a failover
// replaced becomes a standby of the new primary (`resumeSource`) with its cursor for it
// dropped and `DRState.pendingSeed` set: it applies none of that source's stream
// batches (they fail with `streamGap`) until a seed from it installs, which replaces
// its whole state — and so discards the writes it took that the new primary never
// received (the operator's copy of them is the side file `aegis dr rejoin` writes).

import AegisRaft

/// One chunk of a primary's snapshot data, logged by a standby being re-seeded.
public struct DRSeedChunk: Sendable, Hashable {
    /// The primary's cluster ID: the link whose cursor the snapshot sets.
    public var source: String
    /// The primary's epoch when it served the chunk.
    public var epoch: UInt64
    /// The primary's log index the snapshot was taken at (the cursor afterwards).
    public var snapshotIndex: UInt64
    /// The snapshot data's whole size in bytes.
    public var total: UInt64
    /// Where `bytes` start in the snapshot data.
    public var offset: UInt64
    /// The chunk.
    public var bytes: [UInt8]

    /// The largest chunk, in bytes (4 MiB).
    public static let maxChunkBytes = 4 << 20
    /// The largest snapshot a seed may stage (the section that carries it is at most 1 GiB).
    public static let maxTotalBytes: UInt64 = (1 << 30) - (1 << 20)

    /// Creates a chunk.
    public init(source: String, epoch: UInt64, snapshotIndex: UInt64, total: UInt64, offset: UInt64, bytes: [UInt8]) {
        self.source = source
        self.epoch = epoch
        self.snapshotIndex = snapshotIndex
        self.total = total
        self.offset = offset
        self.bytes = bytes
    }

    /// The offset after this chunk.
    public var end: UInt64 { offset + UInt64(bytes.count) }

    /// Appends the chunk's body (after the command's version and type bytes).
    func append(to out: inout [UInt8]) {
        out.appendLengthPrefixed(Array(source.utf8))
        out.appendVarint(epoch)
        out.appendVarint(snapshotIndex)
        out.appendVarint(total)
        out.appendVarint(offset)
        out.appendLengthPrefixed(bytes)
    }

    /// The size of `append(to:)`'s output.
    var bodySize: Int {
        varintSize(UInt64(source.utf8.count)) + source.utf8.count + varintSize(epoch) + varintSize(snapshotIndex)
            + varintSize(total) + varintSize(offset) + varintSize(UInt64(bytes.count)) + bytes.count
    }

    /// The body alone (no version or type bytes): the payload of `GET /v1/dr/seed`.
    public func encodedBody() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bodySize)
        append(to: &out)
        return out
    }

    /// Decodes a body written by `encodedBody()`, as strictly as a command.
    ///
    /// - Throws: `KVError.malformedCommand` when the bytes are not exactly one valid chunk.
    public init(decodingBody body: [UInt8]) throws(KVError) {
        let decoded = body.withUnsafeBytes { raw in
            Result { () throws(KVError) -> DRSeedChunk in
                var reader = ByteReader(raw)
                let chunk = try reader.readSeedChunk()
                guard reader.remaining == 0 else {
                    throw .malformedCommand("\(reader.remaining) unexpected bytes after the seed chunk")
                }
                return chunk
            }
        }
        self = try decoded.get()
    }
}

extension ByteReader {
    /// Reads a seed chunk's body, checking every rule a well-formed chunk follows.
    @usableFromInline mutating func readSeedChunk() throws(KVError) -> DRSeedChunk {
        let source = try readText("seed source", maxBytes: StreamBatch.maxSourceSize)
        let epoch = try readCommandVarint("seed epoch")
        let index = try readCommandVarint("seed snapshot index")
        guard index >= 1 else { throw .malformedCommand("a seed snapshot index must be at least 1") }
        let total = try readCommandVarint("seed total")
        guard (1 ... DRSeedChunk.maxTotalBytes).contains(total) else {
            throw .malformedCommand("a seed of \(total) bytes: must be 1 to \(DRSeedChunk.maxTotalBytes)")
        }
        let offset = try readCommandVarint("seed offset")
        let bytes = try readField("seed chunk")
        guard !bytes.isEmpty, bytes.count <= DRSeedChunk.maxChunkBytes else {
            throw .malformedCommand("a seed chunk of \(bytes.count) bytes: must be 1 to \(DRSeedChunk.maxChunkBytes)")
        }
        guard offset < total, UInt64(bytes.count) <= total - offset else {
            throw .malformedCommand("a seed chunk at \(offset) of \(bytes.count) bytes runs past the total \(total)")
        }
        return DRSeedChunk(source: source, epoch: epoch, snapshotIndex: index, total: total, offset: offset, bytes: bytes)
    }
}

/// A seed in progress on a standby: the primary's snapshot bytes received so far.
struct DRSeedStaging: Sendable, Hashable {
    var source: String
    var epoch: UInt64
    var snapshotIndex: UInt64
    var total: UInt64
    var bytes: [UInt8]

    /// Whether `chunk` continues this staging.
    func isContinued(by chunk: DRSeedChunk) -> Bool {
        chunk.source == source && chunk.epoch == epoch && chunk.snapshotIndex == snapshotIndex && chunk.total == total
            && chunk.offset == UInt64(bytes.count)
    }

    /// The body of snapshot section 4.
    func sectionBody() -> [UInt8] {
        var body: [UInt8] = []
        body.appendLengthPrefixed(Array(source.utf8))
        body.appendVarint(epoch)
        body.appendVarint(snapshotIndex)
        body.appendVarint(total)
        body.appendLengthPrefixed(bytes)
        return body
    }

    /// Reads snapshot section 4's body (exactly).
    init(section: [UInt8]) throws(KVError) {
        let decoded = section.withUnsafeBytes { raw in
            Result { () throws(KVError) -> DRSeedStaging in
                var reader = ByteReader(raw)
                let source = try reader.readText("seed source", maxBytes: StreamBatch.maxSourceSize)
                let epoch = try reader.readCommandVarint("seed epoch")
                let index = try reader.readCommandVarint("seed snapshot index")
                let total = try reader.readCommandVarint("seed total")
                let bytes = try reader.readField("staged seed bytes")
                guard index >= 1, (1 ... DRSeedChunk.maxTotalBytes).contains(total), UInt64(bytes.count) < total,
                      !bytes.isEmpty, reader.remaining == 0 else {
                    throw .malformedCommand("inconsistent seed staging (index \(index), \(bytes.count) of \(total) bytes)")
                }
                return DRSeedStaging(source: source, epoch: epoch, snapshotIndex: index, total: total, bytes: bytes)
            }
        }
        do {
            self = try decoded.get()
        } catch {
            throw .malformedSnapshot("seed section: \(error)")
        }
    }

    init(source: String, epoch: UInt64, snapshotIndex: UInt64, total: UInt64, bytes: [UInt8]) {
        self.source = source
        self.epoch = epoch
        self.snapshotIndex = snapshotIndex
        self.total = total
        self.bytes = bytes
    }
}

extension StateMachine {
    /// The seed in progress, if any: its source, snapshot index, and bytes staged of the total.
    public var seedProgress: (source: String, snapshotIndex: UInt64, staged: UInt64, total: UInt64)? {
        drSeed.map { ($0.source, $0.snapshotIndex, UInt64($0.bytes.count), $0.total) }
    }

    /// Applies a seed chunk as the entry at `index`: the result's `integer` is the bytes
    /// staged after it, or, once the snapshot is installed, the link's new cursor (and
    /// `keyCount` the keys installed).
    mutating func applySeedChunk(_ chunk: DRSeedChunk, at index: LogIndex) -> CommandResult {
        guard chunk.epoch >= drState.epoch else {
            return failure(.staleEpoch(received: chunk.epoch, current: drState.epoch, primary: drState.primary), at: index)
        }
        guard drState.role == .standby else {
            return failure(.notStandby(role: drState.role, epoch: drState.epoch), at: index)
        }
        guard chunk.total <= UInt64(limits.maxSeedBytes) else {
            return failure(.malformedCommand("a seed of \(chunk.total) bytes is over the limit of \(limits.maxSeedBytes)"),
                           at: index)
        }
        var staging: DRSeedStaging
        if chunk.offset == 0 {
            staging = DRSeedStaging(source: chunk.source, epoch: chunk.epoch, snapshotIndex: chunk.snapshotIndex,
                                    total: chunk.total, bytes: [])
            // Once, for the whole seed (total <= maxSeedBytes, checked above): the staged
            // bytes never take more than `total` (growth by doubling would take up to twice).
            staging.bytes.reserveCapacity(Int(chunk.total))
        } else if let current = drSeed, current.isContinued(by: chunk) {
            staging = current
            drSeed = nil  // the bytes are moved, not copied
        } else {
            var result = failure(.streamGap(source: chunk.source, cursor: UInt64(drSeed?.bytes.count ?? 0),
                                            afterIndex: chunk.offset), at: index)
            result.integer = Int64(clamping: drSeed?.bytes.count ?? 0)
            return result
        }
        staging.bytes.append(contentsOf: chunk.bytes)
        guard UInt64(staging.bytes.count) == staging.total else {
            drSeed = staging
            var result = CommandResult(index: index, revision: revision)
            result.integer = Int64(clamping: staging.bytes.count)
            return result
        }
        drSeed = nil
        return installSeed(staging, at: index)
    }

    /// Installs a complete staged snapshot (see the file's rules).
    private mutating func installSeed(_ staging: DRSeedStaging, at index: LogIndex) -> CommandResult {
        let applied = drState.cursors[staging.source]?.lastIndex ?? 0
        guard staging.snapshotIndex > applied else {
            return failure(.streamGap(source: staging.source, cursor: applied, afterIndex: staging.snapshotIndex), at: index)
        }
        var reader = makeSnapshotReader()
        do throws(KVError) {
            try reader.feed(staging.bytes)
            guard reader.isComplete else { throw .malformedSnapshot("the seed snapshot is truncated") }
            guard reader.appliedIndex == staging.snapshotIndex else {
                throw .malformedSnapshot("the seed snapshot was taken at \(reader.appliedIndex), "
                    + "not at \(staging.snapshotIndex) as announced")
            }
            var installed = self
            try installed.restore(from: reader)
            // The standby's own DR state stays; only the link's cursor moves.
            var dr = drState
            let kept = dr.cursors[staging.source]
            dr.epoch = staging.epoch
            dr.cursors[staging.source] = StreamCursor(
                lastIndex: staging.snapshotIndex, epoch: staging.epoch,
                lastPhysical: Swift.max(kept?.lastPhysical ?? 0, installed.lastTimestamp.physical),
                sourceCommit: Swift.max(kept?.sourceCommit ?? 0, staging.snapshotIndex))
            if dr.pendingSeed == staging.source { dr.pendingSeed = "" }
            installed.drState = dr
            installed.drSeed = nil
            installed.appliedIndex = appliedIndex
            installed.revision = Swift.max(installed.revision, revision)
            installed.orderedKeys.indexedRevision = installed.revision
            installed.expiryClock = Swift.max(installed.expiryClock, expiryClock)
            self = installed
        } catch {
            return failure(error, at: index)
        }
        var result = CommandResult(index: index, revision: revision)
        result.integer = Int64(clamping: staging.snapshotIndex)
        result.keyCount = entries.count + collections.count
        return result
    }

    /// Applies a rejoin (failback) as the entry at `index`: the result's `integer` is the epoch.
    mutating func applyRejoin(_ transition: DRTransition, at index: LogIndex) -> CommandResult {
        guard transition.role == .standby, !transition.resumeSource.isEmpty, transition.resumeIndex == 0 else {
            return failure(.malformedCommand("a rejoin makes a standby of a named source, with no resume index"), at: index)
        }
        guard transition.epoch >= drState.epoch else {
            return failure(.staleEpoch(received: transition.epoch, current: drState.epoch, primary: drState.primary),
                           at: index)
        }
        drState.epoch = transition.epoch
        drState.role = .standby
        drState.primary = transition.primary
        drState.primaryAdmin = transition.primaryAdmin
        drState.leaseMillis = transition.leaseMillis
        drState.cursors[transition.resumeSource] = nil
        drState.pendingSeed = transition.resumeSource
        drSeed = nil
        var result = CommandResult(index: index, revision: revision)
        result.integer = Int64(clamping: transition.epoch)
        return result
    }
}
