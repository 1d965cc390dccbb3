public import AegisRaft

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `SnapshotReceiver` that writes the chunks of an incoming snapshot to a temporary
/// file instead of memory, reads the file back when the last chunk arrives, and
/// deletes it.
///
/// While a transfer is in progress the node holds only one chunk in memory, however
/// large the snapshot and however slowly it arrives. The file is not synced: it is
/// scratch space; the finished snapshot is made durable by the storage when the shell
/// persists the `Ready` that carries it.
///
/// The file is `<directory>/snapshot-receive.partial`. Leftovers of an earlier run
/// (a crash mid-transfer) are deleted when the receiver is created.
///
/// Not thread-safe: the core that owns it uses it from its one executor.
public final class FileSnapshotReceiver: SnapshotReceiver {
    /// The folder of the temporary file.
    public let directory: String
    /// The temporary file.
    public let path: String
    private var fd: Int32 = -1
    /// Bytes written so far. Invariant: chunks arrive at exactly this offset.
    private var written: UInt64 = 0

    /// Creates a receiver that keeps its temporary file in `directory` (created if
    /// missing), deleting any file an earlier run left there.
    public init(directory: String) throws {
        self.directory = directory
        path = directory + "/snapshot-receive.partial"
        try FileIO.makeDirectory(directory)
        unlinkFile(path)
    }

    deinit { abort() }

    public func begin(_ metadata: SnapshotMetadata) throws {
        abort()
        fd = try FileIO.open(path, O_WRONLY | O_CREAT | O_TRUNC)
        written = 0
    }

    public func append(_ bytes: [UInt8], at offset: UInt64) throws {
        guard fd >= 0 else { throw StorageError.invalidArgument("snapshot chunk at \(offset) without begin") }
        guard offset == written else {
            throw StorageError.invalidArgument("snapshot chunk at offset \(offset), expected \(written)")
        }
        guard let start = Int(exactly: offset) else {
            throw StorageError.invalidArgument("snapshot offset \(offset) does not fit in a file offset")
        }
        do {
            try FileIO.writeAll(fd, bytes, at: start, path: path)
        } catch {
            abort()
            throw error
        }
        written += UInt64(bytes.count)
    }

    public func finish() throws -> [UInt8] {
        guard fd >= 0 else { throw StorageError.invalidArgument("snapshot finished without begin") }
        closeFile(fd)
        fd = -1
        defer { abort() }
        let data = try FileIO.readAll(path)
        guard UInt64(data.count) == written else {
            throw StorageError.invalidArgument("snapshot file \(path) holds \(data.count) bytes, \(written) were written")
        }
        return data
    }

    public func abort() {
        if fd >= 0 {
            closeFile(fd)
            fd = -1
        }
        unlinkFile(path)
        written = 0
    }
}
