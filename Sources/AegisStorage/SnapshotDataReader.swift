public import AegisRaft
import Foundation

/// Reads the data of a node's snapshot file a range at a time, without reading the
/// whole file (a DR primary serves it to a standby being re-seeded). Read-only: the node
/// may be running; it may also remove the file (after two newer snapshots), and a read
/// then fails with `StorageError.io`.
///
/// The file layout is `SnapshotFile`'s; only the header is parsed here. The data's own
/// integrity is the reader's business (a key-value snapshot ends with its CRC-32C).
public struct SnapshotDataFile: Sendable, Hashable {
    /// The snapshot's index and term.
    public var index: LogIndex
    public var term: Term
    /// The file's path.
    public var path: String
    /// Where the data starts in the file, and its length in bytes.
    public var dataOffset: Int
    public var dataCount: Int

    /// The largest header read (magic, version, index, term, membership, data length).
    static let maxHeaderBytes = 1 << 20

    /// The newest snapshot file in `directory`, or `nil` when there is none.
    ///
    /// - Throws: `StorageError` when the directory or the file's header cannot be read.
    public static func newest(in directory: String) throws(StorageError) -> SnapshotDataFile? {
        let names = try PosixFileSystem().list(directory)
        let newest = names.compactMap { name in SnapshotFile.parse(name).map { (name, $0) } }
            .max { ($0.1.index, $0.1.term) < ($1.1.index, $1.1.term) }
        guard let (name, position) = newest else { return nil }
        return try open(directory + "/" + name, index: position.index, term: position.term)
    }

    /// The snapshot file at `index` in `directory`, or `nil` when there is none (any longer).
    public static func at(index: LogIndex, in directory: String) throws(StorageError) -> SnapshotDataFile? {
        let names = try PosixFileSystem().list(directory)
        guard let (name, position) = names.compactMap({ name in SnapshotFile.parse(name).map { (name, $0) } })
            .first(where: { $0.1.index == index }) else { return nil }
        return try open(directory + "/" + name, index: position.index, term: position.term)
    }

    private static func open(_ path: String, index: LogIndex, term: Term) throws(StorageError) -> SnapshotDataFile {
        let size: Int
        let head: [UInt8]
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            size = Int(try handle.seekToEnd())
            try handle.seek(toOffset: 0)
            head = [UInt8](try handle.read(upToCount: min(size, maxHeaderBytes)) ?? Data())
        } catch {
            throw .io(operation: "read the snapshot header (\(error))", path: path, errno: 0)
        }
        let parsed: Result<(UInt64, Int), DecodeError> = head.withUnsafeBytes { raw in
            SnapshotFile.decodeHeader(raw).flatMap { header in
                header.metadata.index == index && header.metadata.term == term
                    ? .success((header.dataCount, header.dataStart))
                    : .failure(DecodeError(reason: "holds another index or term than its name says"))
            }
        }
        switch parsed {
        case .success(let (count, start)):
            // The data, then the 4-byte checksum, end the file.
            guard count <= UInt64(Int.max), Int(count) <= size - start - 4 else {
                throw .corruption(CorruptionReport(file: path, offset: start, firstLostIndex: 1, lastLostIndex: index,
                                                   reason: "snapshot data length \(count) does not match the file"))
            }
            return SnapshotDataFile(index: index, term: term, path: path, dataOffset: start, dataCount: Int(count))
        case .failure(let error):
            throw .corruption(CorruptionReport(file: path, offset: 0, firstLostIndex: 1, lastLostIndex: index,
                                               reason: "snapshot file is malformed (\(error.reason))"))
        }
    }

    /// Up to `count` data bytes from `offset` (fewer at the end of the data).
    public func read(offset: Int, count: Int) throws(StorageError) -> [UInt8] {
        guard offset >= 0, count > 0, offset < dataCount else {
            throw .invalidArgument("a read at \(offset) of \(count) bytes is outside the \(dataCount) data bytes")
        }
        let length = min(count, dataCount - offset)
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(dataOffset + offset))
            let data = try handle.read(upToCount: length) ?? Data()
            guard data.count == length else { throw StorageError.invalidArgument("short read") }
            return [UInt8](data)
        } catch {
            throw .io(operation: "read snapshot data at \(offset) (\(error))", path: path, errno: 0)
        }
    }
}
