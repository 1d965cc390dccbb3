import Crypto
import Foundation
public import AegisRaft

/// What a backup holds.
public enum BackupKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// The whole state machine at one committed index.
    case full
    /// The committed log since the previous backup of any kind.
    case incremental
    /// The committed log since the last full backup.
    case differential
    /// A piece of the continuously archived committed log (not a backup on its own).
    case archive
}

/// One stored file of a backup.
public struct BackupFile: Sendable, Hashable, Codable {
    /// What the file holds.
    public enum Role: String, Sendable, Hashable, Codable {
        /// A key-value snapshot (`StateMachine` snapshot bytes).
        case state
        /// Framed WAL entry records.
        case log
    }
    /// The object name relative to the backup's folder.
    public var name: String
    /// What the file holds.
    public var role: Role
    /// How it is compressed.
    public var compression: BackupCompression
    /// Stored (compressed) size in bytes.
    public var size: UInt64
    /// SHA-256 of the stored bytes (lower-case hexadecimal).
    public var sha256: String
    /// Size before compression.
    public var rawSize: UInt64
    /// SHA-256 of the bytes before compression.
    public var rawSHA256: String

    public init(name: String, role: Role, compression: BackupCompression, size: UInt64, sha256: String,
                rawSize: UInt64, rawSHA256: String) {
        self.name = name
        self.role = role
        self.compression = compression
        self.size = size
        self.sha256 = sha256
        self.rawSize = rawSize
        self.rawSHA256 = rawSHA256
    }
}

/// A log position: index and the term of the entry there.
public struct LogPosition: Sendable, Hashable, Codable, Comparable {
    public var index: LogIndex
    public var term: Term
    public init(index: LogIndex, term: Term) {
        self.index = index
        self.term = term
    }
    public static func < (a: LogPosition, b: LogPosition) -> Bool { a.index < b.index }
}

/// A Raft membership as stored in a manifest.
public struct BackupMembership: Sendable, Hashable, Codable {
    public var voters: [String]
    public var outgoingVoters: [String]
    public var learners: [String]

    public init(_ conf: ConfState) {
        voters = conf.voters.map(\.rawValue).sorted()
        outgoingVoters = conf.outgoingVoters.map(\.rawValue).sorted()
        learners = conf.learners.map(\.rawValue).sorted()
    }
}

/// The manifest of one backup (`manifest.json`), written last: a backup without one
/// is incomplete and ignored. See the "Repository format" article.
public struct BackupManifest: Sendable, Hashable, Codable {
    /// The format version this build writes and reads.
    public static let formatVersion = 1
    /// The manifest's file name in the backup's folder.
    public static let fileName = "manifest.json"

    /// The format version.
    public var format: Int
    /// The backup ID (also its folder name): sortable by creation time.
    public var id: String
    public var kind: BackupKind
    /// The cluster ID and UUID of the data directory it was taken from.
    public var clusterID: String
    public var clusterUUID: String
    /// The member it was taken from.
    public var nodeID: String
    /// The previous backup this one needs (incremental: the previous backup of any
    /// kind; differential: the last full; full and archive pieces: none).
    public var parent: String?
    /// Full: where the stored state stands (index, term) and the membership there.
    public var snapshot: LogPosition?
    public var membership: BackupMembership?
    /// The log entries stored (`first...last`), if any. Entry `first - 1` is `start`.
    public var logFirst: LogIndex?
    public var logLast: LogIndex?
    /// The position the backup starts from (the end of its parent; zero for a full).
    public var start: LogPosition
    /// The position the backup restores to.
    public var end: LogPosition
    /// The proposing leaders' timestamps (ms since 1970) of the first and last entry
    /// the backup covers; `nil` when unknown (a full taken right at a snapshot).
    public var leaderTimeFirst: UInt64?
    public var leaderTimeLast: UInt64?
    /// SHA-256 of the state machine's canonical snapshot at `end` (`StateMachine.digest()`).
    public var digest: String
    /// Keys in the state at `end`.
    public var keyCount: Int
    /// When the backup was taken (ms since 1970, the taking machine's clock).
    public var createdAt: UInt64
    /// The stored files.
    public var files: [BackupFile]
    /// SHA-256 of the manifest's canonical encoding with this field empty: a damaged
    /// manifest is refused, not trusted.
    public var checksum: String = ""

    /// Total stored bytes.
    public var storedBytes: UInt64 { files.reduce(0) { $0 &+ $1.size } }

    /// Encodes as pretty-printed JSON with sorted keys, with its checksum.
    public func encoded() throws(BackupError) -> [UInt8] {
        var sealed = self
        sealed.checksum = try canonicalChecksum()
        return try sealed.canonical()
    }

    /// The canonical encoding (sorted keys), `checksum` included as it is.
    private func canonical() throws(BackupError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { return Array(try encoder.encode(self)) } catch {
            throw .invalidArgument("cannot encode the manifest of \(id): \(error)")
        }
    }

    /// SHA-256 of the canonical encoding with an empty `checksum`.
    func canonicalChecksum() throws(BackupError) -> String {
        var unsealed = self
        unsealed.checksum = ""
        return hex(Crypto.SHA256.hash(data: try unsealed.canonical()))
    }

    /// Decodes and checks a manifest read from `file`.
    public static func decode(_ bytes: [UInt8], file: String) throws(BackupError) -> BackupManifest {
        struct Header: Decodable { var format: Int? }
        guard let header = try? JSONDecoder().decode(Header.self, from: Data(bytes)) else {
            throw .damaged(file: file, detail: "not a backup manifest (not JSON, or truncated)")
        }
        guard header.format == formatVersion else {
            throw .foreign(file: file, detail: "manifest format \(header.format.map(String.init) ?? "missing") is not "
                + "supported (this build reads \(formatVersion))")
        }
        let manifest: BackupManifest
        do { manifest = try JSONDecoder().decode(BackupManifest.self, from: Data(bytes)) } catch {
            throw .damaged(file: file, detail: "malformed manifest: \(error)")
        }
        let actual = try manifest.canonicalChecksum()
        guard actual == manifest.checksum else {
            throw .checksumMismatch(file: file, expected: "sha256:\(manifest.checksum)", actual: "sha256:\(actual)")
        }
        try manifest.validate(file: file)
        return manifest
    }

    /// The manifest's own consistency rules (values come from a file).
    func validate(file: String) throws(BackupError) {
        func bad(_ why: String) -> BackupError { .damaged(file: file, detail: "inconsistent manifest: \(why)") }
        if end.index < start.index { throw bad("end \(end.index) is before start \(start.index)") }
        switch kind {
        case .full:
            guard let snapshot, parent == nil else { throw bad("a full backup has a snapshot and no parent") }
            if snapshot.index > end.index { throw bad("snapshot after the end") }
            if !files.contains(where: { $0.role == .state }) { throw bad("a full backup has a state file") }
        case .incremental, .differential:
            if parent == nil { throw bad("\(kind.rawValue) backups name their parent") }
        case .archive:
            if parent != nil { throw bad("archive pieces have no parent") }
        }
        if let first = logFirst, let last = logLast {
            guard first <= last, first >= 1, last == end.index else { throw bad("log range \(first)...\(last)") }
            let base = kind == .full ? (snapshot?.index ?? 0) : start.index
            guard first == base + 1 else { throw bad("the log starts at \(first), expected \(base + 1)") }
        } else if kind != .full, end.index != start.index {
            throw bad("no log, but start and end differ")
        }
        for file in files where file.name.contains("/") || file.name.hasPrefix(".") || file.name.isEmpty {
            throw bad("file name '\(file.name)'")
        }
    }
}

/// Lower-case hexadecimal.
func hex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}
