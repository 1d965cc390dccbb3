import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private let systemRead = Glibc.read
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemRead = Darwin.read
private let systemWrite = Darwin.write
#endif

/// Where a repository's objects live: a local directory, or an object store. Names are
/// `/`-separated paths relative to the repository root.
///
/// An object becomes visible only when its writer commits (a local file is renamed
/// into place, an S3 object or multipart upload is completed), so a reader never sees
/// half an object.
public protocol BackupTarget: Sendable {
    /// A human-readable description (`/var/backups/aegis`, `s3://bucket/prefix`).
    var location: String { get }
    /// Starts writing object `name`.
    func makeWriter(_ name: String) async throws(BackupError) -> any BackupObjectWriter
    /// Reads object `name` in pieces of at most `chunkSize` bytes, in order.
    func read(_ name: String, chunkSize: Int,
              _ body: ([UInt8]) throws(BackupError) -> Void) async throws(BackupError)
    /// The names of every object whose name starts with `prefix`.
    func list(prefix: String) async throws(BackupError) -> [String]
    /// Deletes object `name` (no error if it does not exist).
    func delete(_ name: String) async throws(BackupError)
}

extension BackupTarget {
    /// The whole object (for small objects: manifests, locks).
    public func readAll(_ name: String) async throws(BackupError) -> [UInt8] {
        var bytes: [UInt8] = []
        try await read(name, chunkSize: 1 << 20) { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// Writes a small object in one piece.
    public func write(_ name: String, _ bytes: [UInt8]) async throws(BackupError) {
        let writer = try await makeWriter(name)
        do {
            try await writer.write(bytes)
            try await writer.commit()
        } catch {
            await writer.abort()
            throw error
        }
    }
}

/// Writes one object in pieces.
public protocol BackupObjectWriter: AnyObject {
    /// Appends bytes.
    func write(_ bytes: [UInt8]) async throws(BackupError)
    /// Makes the object visible (durably).
    func commit() async throws(BackupError)
    /// Discards what was written.
    func abort() async
}

/// A repository in a local directory. Objects are files; a writer writes
/// `name.partial-<random>`, fsyncs it, renames it into place and fsyncs the directory.
public struct LocalDirectoryTarget: BackupTarget {
    /// The repository root.
    public let root: String
    public var location: String { root }

    /// A target rooted at `root` (created when first written).
    public init(root: String) { self.root = root }

    func path(_ name: String) throws(BackupError) -> String {
        if name.isEmpty || name.hasPrefix("/") || name.split(separator: "/").contains("..") {
            throw .invalidArgument("invalid object name '\(name)'")
        }
        return root + "/" + name
    }

    public func makeWriter(_ name: String) async throws(BackupError) -> any BackupObjectWriter {
        let final = try path(name)
        let directory = (final as NSString).deletingLastPathComponent
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw .target(operation: "create directory", name: directory, detail: "\(error)")
        }
        let partial = final + ".partial-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw .target(operation: "create", name: partial, detail: String(cString: strerror(errno))) }
        return LocalObjectWriter(fd: fd, partial: partial, final: final, directory: directory)
    }

    public func read(_ name: String, chunkSize: Int,
                     _ body: ([UInt8]) throws(BackupError) -> Void) async throws(BackupError) {
        let file = try path(name)
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            throw errno == ENOENT ? .damaged(file: name, detail: "missing from \(root)")
                : .target(operation: "open", name: file, detail: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: max(chunkSize, 4096))
        while true {
            let n = buffer.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .target(operation: "read", name: file, detail: String(cString: strerror(errno)))
            }
            if n == 0 { return }
            try body(Array(buffer[0..<n]))
        }
    }

    public func list(prefix: String) async throws(BackupError) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
        var names: [String] = []
        while let item = enumerator.nextObject() as? String {
            guard item.hasPrefix(prefix), !item.contains(".partial-") else { continue }
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + item, isDirectory: &isDirectory), !isDirectory.boolValue {
                names.append(item)
            }
        }
        return names.sorted()
    }

    public func delete(_ name: String) async throws(BackupError) {
        let file = try path(name)
        if unlink(file) != 0 && errno != ENOENT {
            throw .target(operation: "delete", name: file, detail: String(cString: strerror(errno)))
        }
        // Remove the folder when it became empty (a pruned backup).
        let directory = (file as NSString).deletingLastPathComponent
        if directory != root { _ = rmdir(directory) }
    }
}

/// A file being written by `LocalDirectoryTarget`.
final class LocalObjectWriter: BackupObjectWriter {
    private var fd: Int32
    private let partial: String, final: String, directory: String

    init(fd: Int32, partial: String, final: String, directory: String) {
        self.fd = fd
        self.partial = partial
        self.final = final
        self.directory = directory
    }

    deinit { if fd >= 0 { close(fd); unlink(partial) } }

    func write(_ bytes: [UInt8]) async throws(BackupError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { systemWrite(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .target(operation: "write", name: partial, detail: String(cString: strerror(errno)))
            }
            offset += n
        }
    }

    func commit() async throws(BackupError) {
        if fsync(fd) != 0 { throw .target(operation: "fsync", name: partial, detail: String(cString: strerror(errno))) }
        close(fd)
        fd = -1
        if rename(partial, final) != 0 {
            let why = String(cString: strerror(errno))
            unlink(partial)
            throw .target(operation: "rename", name: final, detail: why)
        }
        let dirFD = open(directory, O_RDONLY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }

    func abort() async {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        unlink(partial)
    }
}

/// The target a repository location names: `s3://bucket/prefix` (see
/// `S3Target.fromURL(_:environment:)`) or a local directory.
public func makeBackupTarget(_ location: String) throws(BackupError) -> any BackupTarget {
    location.hasPrefix("s3://") ? try S3Target.fromURL(location) : LocalDirectoryTarget(root: location)
}
