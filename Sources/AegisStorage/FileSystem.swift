#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How `FileSystem.open` opens a file.
public enum FileOpenMode: Sendable, Hashable {
    /// An existing file, for writing (`O_WRONLY`).
    case writeExisting
    /// A new file that must not exist yet, for writing (`O_WRONLY | O_CREAT | O_EXCL`).
    case createExclusive
    /// A file created if missing and emptied if present (`O_WRONLY | O_CREAT | O_TRUNC`).
    case createOrTruncate
}

/// The file-system calls `DiskStorage` makes: the seam between the write-ahead log and
/// the disk. The production implementation is `PosixFileSystem`; `SimulatedFileSystem`
/// keeps files in memory and loses what was not synced on a simulated power loss.
///
/// Files are named by path and, once open, by a descriptor the file system hands out.
/// Every call that can fail throws `StorageError` (`io` with the operation, the path and
/// an errno). Nothing is durable before the matching sync: file data after `dataSync`
/// or `fileSync`, names created, renamed or removed after `syncDirectory`.
public protocol FileSystem: AnyObject, Sendable {
    /// Opens `path` and returns its descriptor.
    func open(_ path: String, _ mode: FileOpenMode) throws(StorageError) -> Int32
    /// Closes a descriptor (errors are ignored, as a close after a sync cannot lose data).
    func close(_ fd: Int32)
    /// Writes all of `bytes` at `offset` (not synced).
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(StorageError)
    /// Makes sure `[start, end)` is allocated and reads as zeros, growing the file to
    /// `end` if shorter; throws `StorageError.noSpace` on a full file system.
    func reserveZeros(_ fd: Int32, from start: Int, to end: Int, path: String) throws(StorageError)
    /// Shortens an open file to `length` bytes (not synced).
    func truncate(_ fd: Int32, to length: Int, path: String) throws(StorageError)
    /// The length of an open file.
    func length(_ fd: Int32, path: String) throws(StorageError) -> Int
    /// Makes the file's data and its size durable (`fdatasync`).
    func dataSync(_ fd: Int32, path: String) throws(StorageError)
    /// Makes the file's data and all its metadata durable (`fsync`).
    func fileSync(_ fd: Int32, path: String) throws(StorageError)
    /// Makes names created, renamed and removed in `directory` durable.
    func syncDirectory(_ directory: String) throws(StorageError)
    /// The whole content of a file.
    func readAll(_ path: String) throws(StorageError) -> [UInt8]
    /// Renames `source` to `destination`, replacing it if present (not synced).
    func rename(_ source: String, to destination: String) throws(StorageError)
    /// Removes a name (not synced).
    func remove(_ path: String) throws(StorageError)
    /// The names in a directory (without `.` and `..`).
    func list(_ directory: String) throws(StorageError) -> [String]
    /// Creates `path` (and missing parents) as a directory if it does not exist.
    func makeDirectory(_ path: String) throws(StorageError)
    /// Whether a file or directory named `path` exists.
    func exists(_ path: String) -> Bool
    /// Bytes that can still be allocated on the file system of `fd`; `nil` if unknown.
    func availableBytes(_ fd: Int32) -> Int?
    /// Starts writing `[start, end)` of the file back to the disk without waiting, and
    /// lets the page cache drop it once written: a hint with no effect on durability
    /// (only `dataSync`/`fileSync` make data durable). A large file written in one go
    /// otherwise piles up dirty pages that the final sync flushes all at once, and the
    /// write-ahead log's syncs on the same disk wait behind them.
    func startWriteback(_ fd: Int32, from start: Int, to end: Int)
}

extension FileSystem {
    /// No write-back hint: the default, for file systems without a page cache.
    public func startWriteback(_ fd: Int32, from start: Int, to end: Int) {}

    /// Writes all of `bytes` at `offset` (not synced).
    func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(StorageError) {
        let failure: StorageError? = bytes.withUnsafeBytes { raw in
            do throws(StorageError) { try write(fd, raw, at: offset, path: path) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }

    /// Writes zeros over `[start, end)` of a file (not synced), in chunks of at most 1 MiB.
    func writeZeros(_ fd: Int32, from start: Int, to end: Int, path: String) throws(StorageError) {
        var offset = start
        while offset < end {
            let count = min(end - offset, FileIO.zeroChunk.count)
            let failure: StorageError? = FileIO.zeroChunk.withUnsafeBytes { raw in
                do throws(StorageError) {
                    try write(fd, UnsafeRawBufferPointer(rebasing: raw[..<count]), at: offset, path: path)
                } catch { return error }
                return nil
            }
            if let failure { throw failure }
            offset += count
        }
    }

    /// The `noSpace` error for a write of `needed` bytes into the file system of `fd`.
    func noSpace(_ fd: Int32, path: String, needed: Int) -> StorageError {
        .noSpace(path: path, needed: needed, available: availableBytes(fd) ?? 0)
    }

    /// Writes a whole file durably: a temporary name, `fileSync`, rename, directory sync.
    /// A failure before the rename leaves no file behind; a full disk throws `noSpace`.
    func writeDurably(_ bytes: [UInt8], to path: String, directory: String) throws(StorageError) {
        try writeDurably(to: path, directory: directory, byteCount: bytes.count) { (fd, temporary) throws(StorageError) in
            try writeAll(fd, bytes, at: 0, path: temporary)
        }
    }

    /// Writes a whole file of `byteCount` bytes durably, its contents written by `body`
    /// (given the descriptor and the temporary path) in as many pieces as it likes: the
    /// space is reserved first, then `body`, `fileSync`, rename, directory sync. A
    /// failure before the rename (including one thrown by `body`) leaves no file behind;
    /// a full disk throws `noSpace`.
    func writeDurably(to path: String, directory: String, byteCount: Int,
                      _ body: (Int32, String) throws(StorageError) -> Void) throws(StorageError) {
        let temporary = path + ".tmp"
        let fd = try open(temporary, .createOrTruncate)
        do {
            try reserveZeros(fd, from: 0, to: byteCount, path: temporary)
            try body(fd, temporary)
            try fileSync(fd, path: temporary)
        } catch {
            var failure = error
            if case let .io(_, _, code) = error, FileIO.isNoSpace(code) {
                failure = noSpace(fd, path: temporary, needed: byteCount)
            }
            close(fd)
            try? remove(temporary)
            throw failure
        }
        close(fd)
        try rename(temporary, to: path)
        try syncDirectory(directory)
    }

    /// Shortens a file to `length` bytes and makes that durable.
    func truncateDurably(_ path: String, to length: Int) throws(StorageError) {
        let fd = try open(path, .writeExisting)
        defer { close(fd) }
        try truncate(fd, to: length, path: path)
        try fileSync(fd, path: path)
    }
}

/// The production `FileSystem`: POSIX calls through `FileIO` (`fdatasync`/`fsync`, or
/// `F_FULLFSYNC` on Darwin; `posix_fallocate` on Linux).
public final class PosixFileSystem: FileSystem {
    /// Test hook: makes named system calls fail with an errno.
    let faults: FaultInjector?

    /// The file system of the running process.
    public convenience init() { self.init(faults: nil) }

    init(faults: FaultInjector?) { self.faults = faults }

    public func open(_ path: String, _ mode: FileOpenMode) throws(StorageError) -> Int32 {
        switch mode {
        case .writeExisting: try FileIO.open(path, O_WRONLY, faults)
        case .createExclusive: try FileIO.open(path, O_WRONLY | O_CREAT | O_EXCL, faults)
        case .createOrTruncate: try FileIO.open(path, O_WRONLY | O_CREAT | O_TRUNC, faults)
        }
    }

    public func close(_ fd: Int32) { _ = closeFile(fd) }

    public func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(StorageError) {
        try FileIO.writeAll(fd, bytes, at: offset, path: path, faults: faults)
    }

    public func reserveZeros(_ fd: Int32, from start: Int, to end: Int, path: String) throws(StorageError) {
        try FileIO.reserveZeros(fd, from: start, to: end, path: path, faults: faults)
    }

    public func truncate(_ fd: Int32, to length: Int, path: String) throws(StorageError) {
        try FileIO.truncate(fd, to: length, path: path, faults: faults)
    }

    public func length(_ fd: Int32, path: String) throws(StorageError) -> Int {
        try FileIO.length(fd, path: path)
    }

    public func dataSync(_ fd: Int32, path: String) throws(StorageError) {
        try FileIO.dataSync(fd, path: path, faults: faults)
    }

    public func fileSync(_ fd: Int32, path: String) throws(StorageError) {
        try FileIO.fileSync(fd, path: path, faults: faults)
    }

    public func syncDirectory(_ directory: String) throws(StorageError) {
        try FileIO.syncDirectory(directory, faults: faults)
    }

    public func readAll(_ path: String) throws(StorageError) -> [UInt8] { try FileIO.readAll(path) }

    public func rename(_ source: String, to destination: String) throws(StorageError) {
        try FileIO.check(Glibc_rename(source, destination), "rename", destination, faults)
    }

    public func remove(_ path: String) throws(StorageError) { try FileIO.remove(path, faults: faults) }

    public func list(_ directory: String) throws(StorageError) -> [String] { try FileIO.list(directory) }

    public func makeDirectory(_ path: String) throws(StorageError) { try FileIO.makeDirectory(path) }

    public func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public func availableBytes(_ fd: Int32) -> Int? { FileIO.availableBytes(fd) }

    public func startWriteback(_ fd: Int32, from start: Int, to end: Int) {
        #if os(Linux)
        // POSIX_FADV_DONTNEED starts write-back of the range's dirty pages (without
        // waiting) and drops its clean ones; errors are ignored, as for any hint.
        guard end > start else { return }
        _ = posix_fadvise(fd, off_t(start), off_t(end - start), POSIX_FADV_DONTNEED)
        #endif
    }
}

/// `rename(2)`, under a name that does not clash with `PosixFileSystem.rename`.
private func Glibc_rename(_ source: String, _ destination: String) -> Int32 {
    #if canImport(Glibc)
    return Glibc.rename(source, destination)
    #else
    return Darwin.rename(source, destination)
    #endif
}
