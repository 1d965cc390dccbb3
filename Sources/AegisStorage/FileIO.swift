#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A test hook that makes a named system call fail with an errno (for example
/// `("fdatasync", EIO)`), to check that the storage stops on I/O errors.
typealias FaultInjector = @Sendable (_ operation: String, _ path: String) -> Int32?

/// Thin, throwing wrappers over the POSIX calls the storage needs. `DiskStorage` reaches
/// them through `PosixFileSystem` (see `FileSystem`); the data-directory identity and the
/// snapshot receive file call them directly.
enum FileIO {
    static func check(_ result: Int32, _ operation: String, _ path: String,
                      _ faults: FaultInjector? = nil) throws(StorageError) {
        if let code = faults?(operation, path) { throw .io(operation: operation, path: path, errno: code) }
        if result < 0 { throw .io(operation: operation, path: path, errno: errno) }
    }

    /// Whether `code` means the file system (or the user's quota) is out of space.
    static func isNoSpace(_ code: Int32) -> Bool { code == ENOSPC || code == EDQUOT }

    /// Bytes an unprivileged writer can still allocate on the file system of `fd`
    /// (`fstatvfs`: available blocks × fragment size); `nil` if the call fails.
    static func availableBytes(_ fd: Int32) -> Int? {
        var st = statvfs()
        guard fstatvfs(fd, &st) == 0 else { return nil }
        let (bytes, overflow) = Int(st.f_bavail).multipliedReportingOverflow(by: Int(st.f_frsize))
        return overflow ? .max : bytes
    }

    /// The length of an open file.
    static func length(_ fd: Int32, path: String) throws(StorageError) -> Int {
        var st = stat()
        try check(fstat(fd, &st), "fstat", path)
        return Int(st.st_size)
    }

    /// Makes sure `[start, end)` of the file is allocated and reads as zeros, growing the
    /// file to `end` if it is shorter; writes no other byte. On a full file system it
    /// throws `StorageError.noSpace` and the file holds at most some of those zeros (at
    /// its old length or longer): never a partial record.
    ///
    /// Linux: `posix_fallocate` (falls back to writing zeros where it is not supported);
    /// elsewhere: zeros are written.
    static func reserveZeros(_ fd: Int32, from start: Int, to end: Int, path: String,
                             faults: FaultInjector? = nil) throws(StorageError) {
        guard end > start else { return }
        if let code = faults?("reserve", path) {
            if isNoSpace(code) { throw noSpace(fd, path: path, needed: end - start) }
            throw .io(operation: "reserve", path: path, errno: code)
        }
        #if os(Linux)
        // posix_fallocate returns the error number (it does not set errno).
        var code: Int32
        repeat { code = posix_fallocate(fd, off_t(start), off_t(end - start)) } while code == EINTR
        if code == 0 { return }
        if isNoSpace(code) { throw noSpace(fd, path: path, needed: end - start) }
        if code != EOPNOTSUPP && code != ENOSYS { throw .io(operation: "fallocate", path: path, errno: code) }
        #endif
        do {
            try writeZeros(fd, from: start, to: end, path: path, faults: faults)
        } catch let StorageError.io(_, _, code) where isNoSpace(code) {
            throw noSpace(fd, path: path, needed: end - start)
        }
    }

    /// The `noSpace` error for a write of `needed` bytes into the file system of `fd`.
    static func noSpace(_ fd: Int32, path: String, needed: Int) -> StorageError {
        .noSpace(path: path, needed: needed, available: availableBytes(fd) ?? 0)
    }

    static func open(_ path: String, _ flags: Int32, _ faults: FaultInjector? = nil) throws(StorageError) -> Int32 {
        let fd = Glibc_open(path, flags | O_CLOEXEC, 0o644)
        try check(fd, "open", path, faults)
        return fd
    }

    /// Writes all of `bytes` at `offset`, retrying short writes and `EINTR`.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String,
                         faults: FaultInjector? = nil) throws(StorageError) {
        if let code = faults?("write", path) { throw .io(operation: "write", path: path, errno: code) }
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress.map { $0 + done }, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "write", path: path, errno: errno)
            }
            done += n
        }
    }

    /// Writes all of `bytes` at `offset`.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String,
                         faults: FaultInjector? = nil) throws(StorageError) {
        let failure: StorageError? = bytes.withUnsafeBytes { raw in
            do throws(StorageError) { try writeAll(fd, raw, at: offset, path: path, faults: faults) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }

    /// Writes zeros over `[start, end)` of a file (not synced).
    static func writeZeros(_ fd: Int32, from start: Int, to end: Int, path: String,
                           faults: FaultInjector? = nil) throws(StorageError) {
        var offset = start
        while offset < end {
            let count = min(end - offset, zeroChunk.count)
            let failure: StorageError? = zeroChunk.withUnsafeBytes { raw in
                do throws(StorageError) {
                    try writeAll(fd, UnsafeRawBufferPointer(rebasing: raw[..<count]), at: offset, path: path, faults: faults)
                } catch { return error }
                return nil
            }
            if let failure { throw failure }
            offset += count
        }
    }

    /// The source of `writeZeros` (and of `FileSystem.writeZeros`).
    static let zeroChunk = [UInt8](repeating: 0, count: 1 << 20)

    /// Shortens an open file to `length` bytes (not synced).
    static func truncate(_ fd: Int32, to length: Int, path: String, faults: FaultInjector? = nil) throws(StorageError) {
        try check(ftruncate(fd, off_t(length)), "ftruncate", path, faults)
    }

    /// Flushes a file's data (and the metadata needed to read it back, such as its size)
    /// to stable storage.
    ///
    /// Linux: `fdatasync`. Darwin: `fcntl(F_FULLFSYNC)`, because `fsync` there only
    /// hands the data to the drive, whose volatile cache may still lose it on power
    /// loss; if the file system does not support it, `fsync`.
    static func dataSync(_ fd: Int32, path: String, faults: FaultInjector? = nil) throws(StorageError) {
        #if canImport(Darwin)
        try check(fullSync(fd), "fsync", path, faults)
        #elseif os(Linux)
        try check(fdatasync(fd), "fdatasync", path, faults)
        #else
        try check(fsync(fd), "fsync", path, faults)
        #endif
    }

    /// Flushes a file's data and all its metadata to stable storage: `fsync`, or
    /// `F_FULLFSYNC` on Darwin (see `dataSync`).
    static func fileSync(_ fd: Int32, path: String, faults: FaultInjector? = nil) throws(StorageError) {
        #if canImport(Darwin)
        try check(fullSync(fd), "fsync", path, faults)
        #else
        try check(fsync(fd), "fsync", path, faults)
        #endif
    }

    #if canImport(Darwin)
    /// `F_FULLFSYNC` (flushes the drive's cache too), falling back to `fsync` where the
    /// file system refuses it.
    private static func fullSync(_ fd: Int32) -> Int32 {
        if fcntl(fd, F_FULLFSYNC) == 0 { return 0 }
        return fsync(fd)
    }
    #endif

    /// Makes created, renamed and removed names in `directory` durable.
    static func syncDirectory(_ directory: String, faults: FaultInjector? = nil) throws(StorageError) {
        let fd = try open(directory, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        #if canImport(Darwin)
        try check(fullSync(fd), "fsync (directory)", directory, faults)
        #else
        try check(fsync(fd), "fsync (directory)", directory, faults)
        #endif
    }

    /// The whole content of a file.
    static func readAll(_ path: String) throws(StorageError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        var st = stat()
        try check(fstat(fd, &st), "fstat", path)
        // Read straight into uninitialized memory: zero-filling first would touch every
        // page of a multi-gigabyte snapshot twice.
        var failure: StorageError?
        let bytes = [UInt8](unsafeUninitializedCapacity: Int(st.st_size)) { raw, initialized in
            do throws(StorageError) {
                initialized = try read(fd, into: UnsafeMutableRawBufferPointer(raw), at: 0, path: path)
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Reads into `buffer` from file offset `offset` until it is full or the file ends;
    /// returns the number of bytes read.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int,
                     path: String) throws(StorageError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress.map { $0 + done }, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "read", path: path, errno: errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes a whole file durably: a temporary name, fsync, rename, directory fsync.
    static func writeDurably(_ bytes: [UInt8], to path: String, directory: String,
                             faults: FaultInjector? = nil) throws(StorageError) {
        let temporary = path + ".tmp"
        let fd = try open(temporary, O_WRONLY | O_CREAT | O_TRUNC, faults)
        do {
            try reserveZeros(fd, from: 0, to: bytes.count, path: temporary, faults: faults)
            try writeAll(fd, bytes, at: 0, path: temporary, faults: faults)
            try fileSync(fd, path: temporary, faults: faults)
        } catch {
            var failure = error
            if case let .io(_, _, code) = error, isNoSpace(code) { failure = noSpace(fd, path: temporary, needed: bytes.count) }
            close(fd)
            unlink(temporary)
            throw failure
        }
        close(fd)
        try check(rename(temporary, path), "rename", path, faults)
        try syncDirectory(directory, faults: faults)
    }

    static func remove(_ path: String, faults: FaultInjector? = nil) throws(StorageError) {
        try check(unlink(path), "unlink", path, faults)
    }

    /// Creates `path` (and missing parents) as a directory if it does not exist.
    static func makeDirectory(_ path: String) throws(StorageError) {
        var built = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o755) < 0 && errno != EEXIST {
                throw .io(operation: "mkdir", path: built, errno: errno)
            }
        }
    }

    /// The names in a directory (without `.` and `..`).
    static func list(_ directory: String) throws(StorageError) -> [String] {
        guard let dir = opendir(directory) else { throw .io(operation: "opendir", path: directory, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// `open(2)` with a mode, under a name that does not clash with `FileIO.open`.
@inline(__always)
private func Glibc_open(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
    #if canImport(Glibc)
    return Glibc.open(path, flags, mode)
    #else
    return Darwin.open(path, flags, mode)
    #endif
}

/// `close(2)`.
@discardableResult
func closeFile(_ fd: Int32) -> Int32 { close(fd) }

/// `unlink(2)`.
@discardableResult
func unlinkFile(_ path: String) -> Int32 { unlink(path) }
