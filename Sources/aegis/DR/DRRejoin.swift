import AegisKV
import AegisRaft
import AegisReplication
import AegisStream
import Foundation

// Failback: a primary that a failover replaced rejoins as the standby of the cluster
// that replaced it (`aegis dr rejoin`, `POST /v1/dr/rejoin`).
//
// The new primary's cursor for this cluster (`have`) is the last of this cluster's log
// it received. This cluster's leader first fences itself at the new epoch (if it is not
// fenced yet: from then on no client write is applied here), so its divergent tail is
// exactly its committed log after `have` up to its first fence. The client writes in
// that tail are written to a side file for the operator (below), then the cluster
// becomes a standby that must be re-seeded from the new primary (`Command.drRejoin`):
// the seed replaces its whole state, which discards the tail; it then follows the new
// primary's stream. Comparing positions is enough: both clusters' logs agree up to
// `have` (the new primary applied exactly this log's entries up to there, in order).
// Entries of the tail that this cluster already compacted cannot be listed; the file's
// header says which (`compactedFrom...compactedThrough`).
//
// Side file `dr-divergent-e<epoch>-<first>-<last>.bin` in the answering leader's data
// directory, written to a temporary name, fsynced and renamed:
//
//     line 1   "AEGIS-DR-DIVERGENT 1\n"
//     line 2   a JSON object and "\n": cluster, newPrimary, epoch, newPrimaryHas (the
//              last index the new primary has), commitIndex (the last of this cluster's
//              tail), compactedFrom/compactedThrough (absent when none), createdMillis
//     records  until the end of the file, each: body length (u32 little-endian), CRC-32C
//              of the body (u32 little-endian), body = a stream batch's body (AegisKV's
//              `StreamBatch.encodedBody()`, layout in CommandCodec.swift): the client
//              writes of one stretch of the tail, each with its log index and HLC time
//
// `aegis dr divergent FILE [--json]` prints it and the SHA-256 of its records (the same
// digest the rejoin answer reports).

/// What `POST /v1/dr/rejoin` did.
struct RejoinReport: Codable, Sendable {
    var cluster: String
    var epoch: UInt64
    /// The rejoin entry's index in this cluster's log.
    var index: UInt64
    var newPrimary: String
    var newPrimaryHas: UInt64
    var commitIndex: UInt64
    var divergentWrites: Int
    var compactedFrom: UInt64?
    var compactedThrough: UInt64?
    /// The side file (on the answering node), and the SHA-256 of its records.
    var sideFile: String
    var sha256: String
}

/// The side file's header line.
struct DivergentHeader: Codable, Sendable {
    var cluster: String
    var newPrimary: String
    var epoch: UInt64
    var newPrimaryHas: UInt64
    var commitIndex: UInt64
    var compactedFrom: UInt64?
    var compactedThrough: UInt64?
    var createdMillis: UInt64
}

/// The side file's layout, written and read in one place.
enum DivergentFile {
    static let magic = "AEGIS-DR-DIVERGENT 1\n"
    /// The largest record read back (a batch is at most `StreamLimits.maxBatchBytes`).
    static let maxRecordBytes = 64 << 20

    static func record(_ batch: StreamBatch) -> [UInt8] {
        let body = batch.encodedBody()
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 8)
        for value in [UInt32(body.count), CRC32C.checksum(body)] {
            withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
        }
        out.append(contentsOf: body)
        return out
    }

    /// Reads a whole side file: its header and batches, and the SHA-256 of its records.
    static func read(_ path: String) throws -> (DivergentHeader, [StreamBatch], String) {
        guard let data = FileManager.default.contents(atPath: path) else { throw ToolError("cannot read \(path)") }
        let bytes = [UInt8](data)
        guard bytes.starts(with: Array(magic.utf8)) else { throw ToolError("\(path) is not a divergent-tail file") }
        var offset = magic.utf8.count
        guard let newline = bytes[offset...].firstIndex(of: UInt8(ascii: "\n")) else {
            throw ToolError("\(path): the header line is cut")
        }
        let header = try JSONDecoder().decode(DivergentHeader.self, from: Data(bytes[offset ..< newline]))
        offset = newline + 1
        var sha = SHA256()
        sha.update(Array(bytes[offset...]))
        var batches: [StreamBatch] = []
        while offset < bytes.count {
            guard bytes.count - offset >= 8 else { throw ToolError("\(path): a record header is cut at byte \(offset)") }
            let length = Int(le32(bytes, offset)), crc = le32(bytes, offset + 4)
            guard length <= maxRecordBytes, length <= bytes.count - offset - 8 else {
                throw ToolError("\(path): the record at byte \(offset) claims \(length) bytes")
            }
            let body = Array(bytes[(offset + 8) ..< (offset + 8 + length)])
            guard CRC32C.checksum(body) == crc else { throw ToolError("\(path): the record at byte \(offset) is damaged (CRC)") }
            batches.append(try StreamBatch(decodingBody: body))
            offset += 8 + length
        }
        return (header, batches, hexString(sha.finalize()))
    }

    private static func le32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        (0 ..< 4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * $1) }
    }
}

extension DRCoordinator {
    /// Fails this (replaced) primary back as a standby of `source` (see the file's notes).
    func rejoin(epoch: UInt64, primary: String, primaryAdmin: String, source: String,
                have: UInt64) async throws -> RejoinReport {
        guard let runtime else { throw ToolError("the node is starting") }
        let status = runtime.status
        guard status.role == .leader else {
            throw ToolError("not the leader (\(status.leader?.rawValue ?? "none known")): rejoin on the leader")
        }
        let dr = status.dr
        guard dr.role != .standby else { throw ToolError("this cluster is already a standby (of \(dr.primary))") }
        guard epoch > dr.epoch || (dr.role == .fenced && epoch == dr.epoch) else {
            throw ToolError("epoch \(epoch) is not the new primary's: this cluster is \(dr.role) at epoch \(dr.epoch)")
        }
        guard source != clusterID, !source.isEmpty, source.utf8.count <= StreamBatch.maxSourceSize else {
            throw ToolError("source '\(source)' is not another cluster's ID")
        }
        // 1. No client write is applied here after this entry.
        if dr.role == .primary || dr.epoch < epoch {
            _ = try await transition(DRTransition(epoch: epoch, role: .fenced, primary: primary, primaryAdmin: primaryAdmin))
        }
        let committed = runtime.status.commitIndex
        guard have <= committed else {
            throw ToolError("the new primary says it has this cluster's log up to \(have), past its commit \(committed): another cluster?")
        }
        let commit = try await tailEnd(after: have, commit: committed, runtime: runtime)
        // 2. The divergent tail, to the side file.
        var header = DivergentHeader(cluster: clusterID, newPrimary: source, epoch: epoch, newPrimaryHas: have,
                                     commitIndex: commit, createdMillis: Self.wallMillis())
        let path = dataDirectory + "/dr-divergent-e\(epoch)-\(have + 1)-\(commit).bin"
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: nil),
              let file = FileHandle(forWritingAtPath: temporary) else {
            throw ToolError("cannot create \(temporary)")
        }
        var sha = SHA256()
        var writes = 0
        do {
            defer { try? file.close() }
            var records: [[UInt8]] = []
            var batcher = StreamBatcher(source: clusterID)
            var after = have
            while after < commit {
                let read = try await runtime.committedEntries(after: after, maxCount: settings.maxBatchEntries,
                                                              maxBytes: settings.maxBatchBytes)
                if after + 1 < read.firstIndex {
                    // Compacted here: those entries cannot be listed.
                    header.compactedFrom = header.compactedFrom ?? after + 1
                    header.compactedThrough = min(read.firstIndex - 1, commit)
                    after = min(read.firstIndex - 1, commit)
                    continue
                }
                let entries = read.entries.filter { $0.index <= commit }
                guard !entries.isEmpty else { break }
                let batch = batcher.batch(after: after, entries: entries, epoch: dr.epoch, sourceCommit: commit)
                writes += batch.changes.count
                if !batch.changes.isEmpty { records.append(DivergentFile.record(batch)) }
                after = batch.lastIndex
                if records.count >= 16 {
                    try flush(&records, to: file, sha: &sha, header: header)
                }
            }
            try flush(&records, to: file, sha: &sha, header: header)
            try file.synchronize()
        }
        guard rename(temporary, path) == 0 else { throw ToolError("cannot rename \(temporary) to \(path)") }
        syncDirectory(dataDirectory)
        // 3. Become the new primary's standby, to be re-seeded from it.
        let result = try await runtime.execute(.drRejoin(DRTransition(
            epoch: epoch, role: .standby, primary: primary, primaryAdmin: primaryAdmin,
            leaseMillis: settings.leaseMillis, resumeSource: source)))
        if let error = result.error { throw ToolError("\(error)") }
        logger.warning("failback: this cluster rejoins as a standby; its divergent tail is in the side file", metadata: [
            "new_primary": "\(source)", "epoch": "\(epoch)", "writes": "\(writes)", "file": "\(path)"])
        return RejoinReport(cluster: clusterID, epoch: epoch, index: result.index, newPrimary: source, newPrimaryHas: have,
                            commitIndex: header.commitIndex, divergentWrites: writes, compactedFrom: header.compactedFrom,
                            compactedThrough: header.compactedThrough, sideFile: path, sha256: hexString(sha.finalize()))
    }

    /// Where the divergent tail ends: at this cluster's first fence (or demotion) after
    /// `after` (a client write logged after it was refused when applied), else `commit`.
    private func tailEnd(after start: LogIndex, commit: LogIndex, runtime: NodeRuntime) async throws -> LogIndex {
        var after = start
        while after < commit {
            let read = try await runtime.committedEntries(after: after, maxCount: settings.maxBatchEntries,
                                                          maxBytes: settings.maxBatchBytes)
            if after + 1 < read.firstIndex {
                after = min(read.firstIndex - 1, commit)
                continue
            }
            let entries = read.entries.filter { $0.index <= commit }
            if let fence = entries.first(where: Self.endsWrites) { return fence.index }
            guard let last = entries.last else { break }
            after = last.index
        }
        return commit
    }

    /// Whether `entry` takes this cluster out of the primary role (no client write is
    /// applied after it).
    static func endsWrites(_ entry: LogEntry) -> Bool {
        guard entry.type == .command, let command = try? Command(decoding: entry.data) else { return false }
        switch command {
        case .setDRState(let transition), .drRejoin(let transition): return transition.role != .primary
        default: return false
        }
    }

    /// Writes the header (first call) and the records held so far.
    private func flush(_ records: inout [[UInt8]], to file: FileHandle, sha: inout SHA256,
                       header: DivergentHeader) throws {
        if (try file.offset()) == 0 {
            var head = Array(DivergentFile.magic.utf8)
            head += Array(try JSONEncoder().encode(header))
            head.append(UInt8(ascii: "\n"))
            try file.write(contentsOf: head)
        }
        for record in records {
            sha.update(record)
            try file.write(contentsOf: record)
        }
        records.removeAll()
    }

    private func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        _ = close(fd)
    }
}
