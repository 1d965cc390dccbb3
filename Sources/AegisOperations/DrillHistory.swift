public import AegisServer
public import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One DR drill (`aegis dr drill`): when it ran, whether it worked, and the RTO and RPO
/// it measured. A line of the drill history (JSON, one record per line).
public struct DrillRecord: Codable, Sendable, Hashable {
    /// When the drill started and finished, in milliseconds since 1970.
    public var startedAt: UInt64
    public var finishedAt: UInt64
    /// `true` when the copy was promoted, took a write and read it back.
    public var ok: Bool
    /// Why it failed.
    public var error: String?
    /// The standby cluster copied, and the primary it follows.
    public var standbyCluster: String
    public var primaryCluster: String?
    /// Drill start to the copy's first acknowledged write, in seconds.
    public var rtoSeconds: Double?
    /// How far the copy was behind the primary when it was taken: entries, and an upper
    /// bound in seconds (the time since the copy's newest change, when it was behind).
    public var rpoEntries: UInt64?
    public var rpoSeconds: Double?
    /// Keys in the copy.
    public var keys: UInt64?
    /// Where the time went: phase name to milliseconds.
    public var phasesMillis: [String: UInt64]

    /// Creates a record.
    public init(startedAt: UInt64, finishedAt: UInt64, ok: Bool, error: String? = nil, standbyCluster: String,
                primaryCluster: String? = nil, rtoSeconds: Double? = nil, rpoEntries: UInt64? = nil,
                rpoSeconds: Double? = nil, keys: UInt64? = nil, phasesMillis: [String: UInt64] = [:]) {
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.ok = ok
        self.error = error
        self.standbyCluster = standbyCluster
        self.primaryCluster = primaryCluster
        self.rtoSeconds = rtoSeconds
        self.rpoEntries = rpoEntries
        self.rpoSeconds = rpoSeconds
        self.keys = keys
        self.phasesMillis = phasesMillis
    }

    /// The largest encoded record, in bytes (a POSTed record or a history line).
    public static let maxEncodedBytes = 8192
    /// The longest error text and cluster ID, in bytes.
    public static let maxErrorBytes = 2048
    public static let maxClusterBytes = 128
    /// The most phases.
    public static let maxPhases = 16

    /// Why the record is not acceptable (from the network or a file), or `nil`.
    public var problem: String? {
        if finishedAt < startedAt { return "finishedAt is before startedAt" }
        for (name, value) in [("rtoSeconds", rtoSeconds), ("rpoSeconds", rpoSeconds)] {
            if let value, !(value.isFinite && value >= 0 && value <= 1e9) { return "\(name) must be a number of seconds ≥ 0" }
        }
        if (error?.utf8.count ?? 0) > Self.maxErrorBytes { return "error is longer than \(Self.maxErrorBytes) bytes" }
        if standbyCluster.isEmpty || standbyCluster.utf8.count > Self.maxClusterBytes
            || (primaryCluster?.utf8.count ?? 0) > Self.maxClusterBytes {
            return "a cluster ID must be 1 to \(Self.maxClusterBytes) bytes"
        }
        if phasesMillis.count > Self.maxPhases || phasesMillis.keys.contains(where: { $0.isEmpty || $0.utf8.count > 32 }) {
            return "at most \(Self.maxPhases) phases with names of 1 to 32 bytes"
        }
        if !ok && error == nil { return "a failed drill needs an error" }
        return nil
    }

    /// Decodes and checks one record (a POST body or a history line).
    public static func decode(_ bytes: Data) throws(DrillHistoryError) -> DrillRecord {
        guard bytes.count <= maxEncodedBytes else {
            throw DrillHistoryError("a drill record is at most \(maxEncodedBytes) bytes; got \(bytes.count)")
        }
        let record: DrillRecord
        do {
            record = try JSONDecoder().decode(DrillRecord.self, from: bytes)
        } catch {
            throw DrillHistoryError("not a drill record: \(error)")
        }
        if let problem = record.problem { throw DrillHistoryError("bad drill record: \(problem)") }
        return record
    }

    /// The record as one JSON line (keys sorted), without the newline.
    public func encoded() throws(DrillHistoryError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data: Data
        do { data = try encoder.encode(self) } catch { throw DrillHistoryError("cannot encode a drill record: \(error)") }
        guard data.count <= Self.maxEncodedBytes else {
            throw DrillHistoryError("the drill record is \(data.count) bytes; at most \(Self.maxEncodedBytes)")
        }
        return data
    }
}

/// A drill history file could not be read or written, or a record was refused.
public struct DrillHistoryError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public var description: String
    /// Creates an error.
    public init(_ description: String) { self.description = description }
}

/// The drill history of a node: a file of `DrillRecord`s, one JSON object per line,
/// oldest first, holding at most `retention` records (older ones are dropped when a
/// record is appended). Written whole to a temporary file and renamed, so a reader
/// never sees half a record; lines that do not decode are skipped and counted.
public struct DrillHistory: Sendable {
    /// The history file (`<data-dir>/dr-drills.jsonl` on a node).
    public let path: String
    /// The most records kept.
    public let retention: Int

    /// The largest retention.
    public static let maxRetention = 1000
    /// The file name in a node's data directory.
    public static let fileName = "dr-drills.jsonl"

    /// Creates a history; `retention` is clamped to 1 … `maxRetention`.
    public init(path: String, retention: Int) {
        self.path = path
        self.retention = min(max(retention, 1), Self.maxRetention)
    }

    /// The records, oldest first (at most `retention`), and how many lines were skipped.
    public func read() throws(DrillHistoryError) -> (records: [DrillRecord], skipped: Int) {
        guard FileManager.default.fileExists(atPath: path) else { return ([], 0) }
        let limit = (retention + 1) * (DrillRecord.maxEncodedBytes + 1)
        guard let handle = FileHandle(forReadingAtPath: path) else { throw DrillHistoryError("cannot open \(path)") }
        defer { try? handle.close() }
        let data: Data
        do { data = try handle.read(upToCount: limit + 1) ?? Data() } catch {
            throw DrillHistoryError("cannot read \(path): \(error)")
        }
        guard data.count <= limit else { throw DrillHistoryError("\(path) is larger than \(limit) bytes: not a drill history") }
        var records: [DrillRecord] = []
        var skipped = 0
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            do { records.append(try DrillRecord.decode(Data(line))) } catch { skipped += 1 }
        }
        return (Array(records.suffix(retention)), skipped)
    }

    /// Appends a record, dropping the oldest beyond `retention`. The caller serializes
    /// appends to one file.
    public func append(_ record: DrillRecord) throws(DrillHistoryError) {
        if let problem = record.problem { throw DrillHistoryError("bad drill record: \(problem)") }
        var records = try read().records
        records.append(record)
        var text = Data()
        for kept in records.suffix(retention) {
            text.append(try kept.encoded())
            text.append(UInt8(ascii: "\n"))
        }
        let temporary = path + ".tmp"
        do {
            try text.write(to: URL(fileURLWithPath: temporary))
        } catch {
            throw DrillHistoryError("cannot write \(temporary): \(error)")
        }
        // rename(2) replaces the old file atomically.
        guard rename(temporary, path) == 0 else {
            throw DrillHistoryError("cannot replace \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// The `dr-drill` health check: fails when the last drill failed; warns when the last
    /// successful one is older than `maxAge` (or there is none, on a cluster in a DR pair).
    public static func health(_ records: [DrillRecord], maxAge: Duration, now: UInt64, inDRPair: Bool) -> HealthCheckResult {
        guard let last = records.last else {
            return inDRPair ? .warn("no DR drill recorded: run `aegis dr drill`") : .pass("no DR drill recorded")
        }
        if !last.ok {
            return .fail("the last DR drill (finished \(ago(last.finishedAt, now)) ago) failed: \(last.error ?? "no reason given")")
        }
        let maxAgeMillis = UInt64(max(0, maxAge.components.seconds)) * 1000
        let ageMillis = now > last.finishedAt ? now - last.finishedAt : 0
        let figures = "RTO " + (last.rtoSeconds.map { String(format: "%.3f s", $0) } ?? "?")
            + ", RPO " + (last.rpoEntries.map { "\($0) entries" } ?? "?")
            + (last.rpoSeconds.map { String(format: " / %.3f s", $0) } ?? "")
        let result: HealthCheckResult = ageMillis > maxAgeMillis
            ? .warn("the last successful DR drill finished \(ago(last.finishedAt, now)) ago, more than \(maxAgeMillis / 1000) s (\(figures))")
            : .pass("last DR drill \(ago(last.finishedAt, now)) ago: \(figures)")
        return result.observed(Double(ageMillis) / 1000, "s")
    }

    private static func ago(_ millis: UInt64, _ now: UInt64) -> String {
        let seconds = now > millis ? (now - millis) / 1000 : 0
        if seconds >= 86_400 { return "\(seconds / 86_400) d" }
        if seconds >= 3600 { return "\(seconds / 3600) h" }
        if seconds >= 60 { return "\(seconds / 60) min" }
        return "\(seconds) s"
    }
}
