import AegisRaft
import Foundation
import Testing
@testable import AegisStorage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A full disk is not a disk failure: writes fail with the retryable
// `StorageError.noSpace`, nothing is half-written, and writes resume once space returns.

private func bigEntry(_ index: LogIndex, bytes: Int = 8192) -> LogEntry {
    LogEntry(index: index, term: 1, data: (0..<bytes).map { UInt8(truncatingIfNeeded: Int(index) &* 31 &+ $0) },
             timestamp: index)
}

/// A small tmpfs mounted on a fresh directory, unmounted when released.
final class SmallFileSystem {
    let path: String

    private init(path: String) { self.path = path }

    /// Mounts a tmpfs of `megabytes`; `nil`, with the reason printed, where that is not
    /// permitted (not root, no `mount`, a container without the capability).
    static func mount(megabytes: Int) -> SmallFileSystem? {
        let path = NSTemporaryDirectory() + "aegis-small-disk-\(UUID().uuidString)"
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let (status, output) = try run(["mount", "-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
            if status == 0 { return SmallFileSystem(path: path) }
            print("SKIPPED small-disk test: `mount -t tmpfs -o size=\(megabytes)m` failed (\(status)): \(output)")
        } catch {
            print("SKIPPED small-disk test: cannot run mount: \(error)")
        }
        try? FileManager.default.removeItem(atPath: path)
        return nil
    }

    private static func run(_ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Writes a file of 1 MiB chunks until the file system is full; returns its size.
    @discardableResult
    func fill(_ name: String) -> Int {
        let fd = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0xAB, count: 1 << 20)
        var total = 0
        var size = chunk.count
        while size > 0 {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, size) }
            if n > 0 { total += n; continue }
            size /= 2   // fill the last pages too
        }
        return total
    }

    func available() -> Int {
        var st = statvfs()
        return statvfs(path, &st) == 0 ? Int(st.f_bavail) * Int(st.f_frsize) : -1
    }

    deinit {
        _ = try? Self.run(["umount", path])
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A node starts on a 20 MB file system with the default 64 MiB segments, writes until
/// the disk is full, gets `noSpace` (not a fatal error), restarts while full, and writes
/// again once a file is deleted; no acknowledged entry is lost.
@Test(arguments: [64 << 20, 256 << 10])
func test_smallDisk_writesUntilFullThenResumesWhenSpaceReturns(segmentSize: Int) throws {
    guard let disk = SmallFileSystem.mount(megabytes: 20) else { return }
    let dir = disk.path + "/data"
    let options = DiskStorageOptions(segmentSize: segmentSize)
    var storage = try DiskStorage(directory: dir, options: options)
    let segment = try FileIO.list(dir).filter { $0.hasSuffix(".wal") }
    let segmentLength = try FileIO.readAll(dir + "/" + (segment.first ?? "")).count
    #expect(segmentLength <= 20 << 20 / 4, "preallocation adapted to the free space: \(segmentLength) bytes")

    var acked: LogIndex = 0
    for i in LogIndex(1)...200 {
        try storage.append([bigEntry(i)])
        acked = i
    }
    disk.fill("filler")

    // Append until the disk refuses; each success is acknowledged.
    var refused: StorageError?
    for i in (acked + 1)...(acked + 5000) {
        let result = Result { () throws(StorageError) in
            try storage.save(hardState: RaftState(term: 1, votedFor: "n1", commitIndex: acked), entries: [bigEntry(i)])
        }
        if case .failure(let error) = result {
            refused = error
            break
        }
        acked = i
    }
    guard case let .noSpace(path, needed, available)? = refused else {
        Issue.record("expected noSpace, got \(String(describing: refused))"); return
    }
    #expect(path.hasPrefix(dir) && needed > 0 && available < needed, "\(String(describing: refused))")
    #expect(refused?.isRetryable == true && refused?.isFatal == false)
    #expect(storage.failure == nil, "a full disk does not stop the storage")
    #expect(try storage.entries(from: 1, to: acked + 1, maxBytes: .max).count == Int(acked), "reads still work")

    // Still full: a retry fails the same way, and so does a snapshot, which leaves nothing behind.
    #expect(throws: StorageError.self) { try storage.save(hardState: nil, entries: [bigEntry(acked + 1)]) }
    do {
        try storage.createSnapshot(at: acked, conf: ConfState(voters: ["n1"]), data: [UInt8](repeating: 1, count: 2 << 20))
        Issue.record("a snapshot was written on a full disk")
    } catch let error as StorageError {
        #expect(error.isRetryable, "\(error)")
    }
    #expect(try FileIO.list(dir).filter { $0.hasSuffix(".tmp") || $0.hasSuffix(".snap") }.isEmpty)
    #expect(storage.failure == nil)

    // A restart while the disk is still full recovers every acknowledged entry.
    storage.close()
    storage = try DiskStorage(directory: dir, options: options)
    #expect(try storage.lastIndex() == acked, "only acknowledged entries are in the log")
    #expect(throws: StorageError.self) { try storage.save(hardState: nil, entries: [bigEntry(acked + 1)]) }

    // Space returns: the same write succeeds, and the log goes on.
    try FileIO.remove(disk.path + "/filler")
    try storage.save(hardState: RaftState(term: 1, votedFor: "n1", commitIndex: acked), entries: [bigEntry(acked + 1)])
    acked += 1
    for _ in 0..<20 {
        try storage.append([bigEntry(acked + 1)])
        acked += 1
    }
    try storage.createSnapshot(at: acked, conf: ConfState(voters: ["n1"]), data: [1, 2, 3])
    storage.close()

    let reopened = try DiskStorage(directory: dir, options: options)
    defer { reopened.close() }
    #expect(try reopened.lastIndex() == acked)
    #expect(try reopened.entries(from: 1, to: acked + 1, maxBytes: .max) == (1...acked).map { bigEntry($0) })
    #expect(try reopened.snapshot().metadata.index == acked)
}

/// The same contract without a real full disk (runs everywhere): the reservation of new
/// space fails, nothing is written, the storage stays open, and waiting again retries.
@Test func test_diskStorage_noSpaceIsRetryableAndLeavesNothingHalfWritten() async throws {
    let dir = TemporaryDirectory()
    var options = DiskStorageOptions(segmentSize: 1 << 20)
    options.preallocateSegments = false
    let full = LockedFlag()
    options.faults = { operation, _ in operation == "reserve" && full.value ? ENOSPC : nil }
    let storage = try DiskStorage(directory: dir.path, options: options)
    for i in LogIndex(1)...5 { try storage.append([bigEntry(i, bytes: 100)]) }
    guard let segment = try FileIO.list(dir.path).first(where: { $0.hasSuffix(".wal") }) else {
        Issue.record("no segment"); return
    }
    let before = try FileIO.readAll(dir.path + "/" + segment)

    full.value = true
    #expect(throws: StorageError.self) { try storage.save(hardState: nil, entries: [bigEntry(6, bytes: 100)]) }
    do {
        try storage.append([bigEntry(7, bytes: 100)])
        Issue.record("append succeeded on a full disk")
    } catch let error as StorageError {
        guard case .noSpace = error else { Issue.record("expected noSpace, got \(error)"); return }
    }
    do {
        try await storage.saveAsync(entries: [bigEntry(8, bytes: 100)])
        Issue.record("saveAsync succeeded on a full disk")
    } catch {
        #expect(error.isRetryable)
    }
    #expect(storage.failure == nil)
    #expect(try FileIO.readAll(dir.path + "/" + segment) == before, "nothing was written")

    full.value = false
    try storage.sync()
    try storage.append([bigEntry(9, bytes: 100)])
    storage.close()
    let reopened = try DiskStorage(directory: dir.path, options: options)
    defer { reopened.close() }
    #expect(try reopened.entries(from: 1, to: 10, maxBytes: .max) == (1...9).map { bigEntry($0, bytes: 100) })
}
