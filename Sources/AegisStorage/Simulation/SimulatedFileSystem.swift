import AegisRaft
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A sync that a mutation test removes, to show that the storage needs it: with the
/// mutation the simulated call does nothing (and reports success).
public enum SyncMutation: String, Sendable, Hashable, CaseIterable {
    /// `dataSync` of a segment file (`.wal`): the group commit's `fdatasync`.
    case segmentDataSync
    /// `fileSync` of a snapshot's temporary file before it is renamed.
    case snapshotFileSync
    /// `syncDirectory` after a segment file was created.
    case segmentCreationDirectorySync
    /// `syncDirectory` after a snapshot file was renamed into place.
    case snapshotRenameDirectorySync
    /// Every `syncDirectory` (also after files are removed).
    case directorySync
}

/// An in-memory `FileSystem` that keeps, per file, what is durable and what is only
/// written, and loses what was not synced on a simulated power loss. Deterministic: every
/// choice comes from the seeds it is given.
///
/// - File data becomes durable with `dataSync`/`fileSync` (both persist the size).
/// - Names (created, renamed, removed) become durable with `syncDirectory`.
/// - Directories themselves are durable once made (the storage makes its directory
///   before anything else and never removes it).
/// - `cutPower(afterOperations:)` makes a later operation, and every one after it,
///   fail with `EIO`: the moment the power went out.
/// - `powerLoss(seed:)` then decides what survived: each file keeps its durable
///   content plus a prefix of its unsynced writes, the first one left out possibly torn
///   at a 512-byte sector boundary; a prefix of the unsynced name changes survives (or,
///   with `orderedNameChanges` off, each one independently survives or reverts); and
///   at the configured rates a bit of a synced file flips or one of its sectors becomes
///   unreadable. Descriptors opened before it are invalid afterwards.
///
/// Thread-safe (one lock), because `DiskStorage` writes from its writer thread.
public final class SimulatedFileSystem: FileSystem, @unchecked Sendable {
    /// What the simulated disk does besides losing unsynced data.
    public struct Configuration: Sendable {
        /// Whether the first unsynced write left out on a power loss may be torn at a
        /// sector boundary (part of it kept).
        public var tornWrites = true
        /// Per power loss: the chance that one bit of a synced file flips.
        public var bitFlipRate = 0.0
        /// Per power loss: the chance that one sector of a synced file becomes unreadable
        /// (reads of the file throw `EIO`).
        public var readErrorRate = 0.0
        /// Whether unsynced name changes survive a power loss in the order they were
        /// made (a journaling file system such as ext4 or XFS: some prefix of them is
        /// kept), rather than each one independently (all POSIX promises).
        public var orderedNameChanges = true
        /// What `availableBytes` reports.
        public var capacity = 1 << 40
        /// Syncs that do nothing (mutation tests).
        public var mutations: Set<SyncMutation> = []

        /// A disk that loses unsynced data and tears writes, but corrupts nothing synced.
        public init(tornWrites: Bool = true, orderedNameChanges: Bool = true, bitFlipRate: Double = 0,
                    readErrorRate: Double = 0) {
            self.tornWrites = tornWrites
            self.orderedNameChanges = orderedNameChanges
            self.bitFlipRate = bitFlipRate
            self.readErrorRate = readErrorRate
        }
    }

    /// What the simulated disk did so far.
    public struct Statistics: Sendable, Hashable {
        /// Power losses simulated.
        public var powerLosses = 0
        /// Unsynced writes kept in part (cut at a sector boundary).
        public var tornWrites = 0
        /// Unsynced writes and size changes lost.
        public var lostWrites = 0
        /// Unsynced name changes undone (a created name gone, a removed one back).
        public var revertedNames = 0
        /// Bits flipped in synced files.
        public var bitFlips = 0
        /// Sectors of synced files made unreadable.
        public var readErrors = 0
        /// Operations that failed because the power was out.
        public var failedWhilePowerOff = 0
        /// The paths of the files whose bits flipped or sectors became unreadable, in
        /// the order it happened.
        public var damagedFiles: [String] = []
    }

    /// The size of a sector: the unit of a torn write.
    public static let sectorSize = 512

    /// A change to a file not yet covered by a sync, in the order it was made.
    private enum PendingChange {
        case write(offset: Int, bytes: [UInt8])
        case resize(length: Int)
    }

    private struct Inode {
        var durable: [UInt8] = []
        var current: [UInt8] = []
        var pending: [PendingChange] = []
        /// Sectors whose reads fail.
        var unreadableSectors: Set<Int> = []
    }

    private struct Directory {
        /// Name → inode, as the running system sees it.
        var current: [String: Int] = [:]
        /// Name → inode, as it would be found after a power loss.
        var durable: [String: Int] = [:]
    }

    /// One name change: in `directory`, `name` now refers to `inode` (`nil`: removed).
    private struct NameChange {
        var directory: String, name: String, inode: Int?
    }

    /// Unsynced name changes, one group per operation (a rename is one), oldest first.
    private var pendingNameChanges: [[NameChange]] = []
    private let lock = NSLock()
    private var configuration: Configuration
    private var inodes: [Int: Inode] = [:]
    private var directories: [String: Directory] = [:]
    private var descriptors: [Int32: Int] = [:]
    private var nextDescriptor: Int32 = 3
    private var nextInode = 1
    /// Operations left before the power goes out; `nil` when no cut is scheduled.
    private var operationsBeforeCut: Int?
    private var powerIsOff = false
    private var stats = Statistics()

    /// An empty disk.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Counters of what the disk did.
    public var statistics: Statistics { withLock { stats } }

    /// Whether the power is out (every operation fails until `powerLoss(seed:)`).
    public var isPowerOff: Bool { withLock { powerIsOff } }

    /// Syncs that do nothing from now on (mutation tests).
    func setMutations(_ mutations: Set<SyncMutation>) { withLock { configuration.mutations = mutations } }

    /// Cuts the power when `count` more operations have run: that one (counted from 1)
    /// fails with `EIO`, and so does everything after it until `powerLoss(seed:)`.
    public func cutPower(afterOperations count: Int) {
        withLock { operationsBeforeCut = max(count, 1) }
    }

    /// Simulates the power going out now (if it is not out already) and the machine
    /// starting again: decides, from `seed`, what survived. See the type's description.
    public func powerLoss(seed: UInt64) {
        withLock {
            var random = SplitMix64(seed: seed)
            stats.powerLosses += 1
            resolveNames(&random)
            resolveData(&random)
            injectDamage(&random)
            descriptors.removeAll()
            operationsBeforeCut = nil
            powerIsOff = false
        }
    }

    // MARK: FileSystem

    public func open(_ path: String, _ mode: FileOpenMode) throws(StorageError) -> Int32 {
        try withLock { () throws(StorageError) -> Int32 in
            try tick("open", path)
            let (directory, name) = try split(path, "open")
            var inode = directories[directory]?.current[name]
            switch mode {
            case .writeExisting:
                if inode == nil { throw .io(operation: "open", path: path, errno: ENOENT) }
            case .createExclusive:
                if inode != nil { throw .io(operation: "open", path: path, errno: EEXIST) }
            case .createOrTruncate:
                if let existing = inode { change(existing, .resize(length: 0)) }
            }
            if inode == nil {
                inode = nextInode
                inodes[nextInode] = Inode()
                directories[directory]?.current[name] = nextInode
                pendingNameChanges.append([NameChange(directory: directory, name: name, inode: nextInode)])
                nextInode += 1
            }
            let fd = nextDescriptor
            nextDescriptor += 1
            descriptors[fd] = inode
            return fd
        }
    }

    public func close(_ fd: Int32) { _ = withLock { descriptors.removeValue(forKey: fd) } }

    public func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(StorageError) {
        try withLock { () throws(StorageError) in
            try tick("write", path)
            change(try inode(fd, "write", path), .write(offset: offset, bytes: Array(bytes)))
        }
    }

    public func reserveZeros(_ fd: Int32, from start: Int, to end: Int, path: String) throws(StorageError) {
        try withLock { () throws(StorageError) in
            try tick("reserve", path)
            let id = try inode(fd, "reserve", path)
            if let file = inodes[id], file.current.count < end { change(id, .resize(length: end)) }
        }
    }

    public func truncate(_ fd: Int32, to length: Int, path: String) throws(StorageError) {
        try withLock { () throws(StorageError) in
            try tick("ftruncate", path)
            change(try inode(fd, "ftruncate", path), .resize(length: length))
        }
    }

    public func length(_ fd: Int32, path: String) throws(StorageError) -> Int {
        try withLock { () throws(StorageError) -> Int in
            try checkPower("fstat", path)
            return inodes[try inode(fd, "fstat", path)]?.current.count ?? 0
        }
    }

    public func dataSync(_ fd: Int32, path: String) throws(StorageError) {
        try withLock { () throws(StorageError) in
            try tick("fdatasync", path)
            let id = try inode(fd, "fdatasync", path)
            if configuration.mutations.contains(.segmentDataSync) && path.hasSuffix(".wal") { return }
            makeDurable(id)
        }
    }

    public func fileSync(_ fd: Int32, path: String) throws(StorageError) {
        try withLock { () throws(StorageError) in
            try tick("fsync", path)
            let id = try inode(fd, "fsync", path)
            if configuration.mutations.contains(.snapshotFileSync) && path.hasSuffix(".snap.tmp") { return }
            makeDurable(id)
        }
    }

    public func syncDirectory(_ directory: String) throws(StorageError) {
        try withLock { () throws(StorageError) in
            try tick("fsync (directory)", directory)
            guard let entries = directories[directory] else {
                throw .io(operation: "fsync (directory)", path: directory, errno: ENOENT)
            }
            if skipsDirectorySync(directory) { return }
            directories[directory]?.durable = entries.current
            pendingNameChanges = pendingNameChanges.compactMap { group in
                let rest = group.filter { $0.directory != directory }
                return rest.isEmpty ? nil : rest
            }
        }
    }

    public func readAll(_ path: String) throws(StorageError) -> [UInt8] {
        try withLock { () throws(StorageError) -> [UInt8] in
            try checkPower("read", path)
            let (directory, name) = try split(path, "open")
            guard let id = directories[directory]?.current[name], let file = inodes[id] else {
                throw .io(operation: "open", path: path, errno: ENOENT)
            }
            let sectors = (file.current.count + Self.sectorSize - 1) / Self.sectorSize
            if file.unreadableSectors.contains(where: { $0 < sectors }) {
                throw .io(operation: "read", path: path, errno: EIO)
            }
            return file.current
        }
    }

    public func rename(_ source: String, to destination: String) throws(StorageError) {
        try withLock { () throws(StorageError) in
            try tick("rename", destination)
            let (fromDirectory, fromName) = try split(source, "rename")
            let (toDirectory, toName) = try split(destination, "rename")
            guard let id = directories[fromDirectory]?.current.removeValue(forKey: fromName) else {
                throw .io(operation: "rename", path: source, errno: ENOENT)
            }
            directories[toDirectory]?.current[toName] = id
            pendingNameChanges.append([NameChange(directory: fromDirectory, name: fromName, inode: nil),
                                       NameChange(directory: toDirectory, name: toName, inode: id)])
        }
    }

    public func remove(_ path: String) throws(StorageError) {
        try withLock { () throws(StorageError) in
            try tick("unlink", path)
            let (directory, name) = try split(path, "unlink")
            if directories[directory]?.current.removeValue(forKey: name) == nil {
                throw .io(operation: "unlink", path: path, errno: ENOENT)
            }
            pendingNameChanges.append([NameChange(directory: directory, name: name, inode: nil)])
        }
    }

    public func list(_ directory: String) throws(StorageError) -> [String] {
        try withLock { () throws(StorageError) -> [String] in
            try checkPower("opendir", directory)
            guard let entries = directories[directory] else {
                throw .io(operation: "opendir", path: directory, errno: ENOENT)
            }
            return entries.current.keys.sorted()
        }
    }

    public func makeDirectory(_ path: String) throws(StorageError) {
        try withLock { () throws(StorageError) in
            try checkPower("mkdir", path)
            var built = ""
            for part in path.split(separator: "/") {
                built += (built.isEmpty && !path.hasPrefix("/") ? "" : "/") + part
                if directories[built] == nil { directories[built] = Directory() }
            }
        }
    }

    public func exists(_ path: String) -> Bool {
        withLock {
            if directories[path] != nil { return true }
            guard let (directory, name) = try? split(path, "stat") else { return false }
            return directories[directory]?.current[name] != nil
        }
    }

    public func availableBytes(_ fd: Int32) -> Int? { withLock { configuration.capacity } }

    // MARK: Internals (all under the lock)

    private func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Counts a mutating operation; throws `EIO` once the power is out.
    private func tick(_ operation: String, _ path: String) throws(StorageError) {
        if let left = operationsBeforeCut {
            if left <= 1 {
                operationsBeforeCut = nil
                powerIsOff = true
            } else {
                operationsBeforeCut = left - 1
            }
        }
        try checkPower(operation, path)
    }

    private func checkPower(_ operation: String, _ path: String) throws(StorageError) {
        if powerIsOff {
            stats.failedWhilePowerOff += 1
            throw .io(operation: operation, path: path, errno: EIO)
        }
    }

    private func split(_ path: String, _ operation: String) throws(StorageError) -> (String, String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash]), name = String(path[path.index(after: slash)...])
        if directories[directory] == nil { throw .io(operation: operation, path: path, errno: ENOENT) }
        return (directory, name)
    }

    private func inode(_ fd: Int32, _ operation: String, _ path: String) throws(StorageError) -> Int {
        guard let id = descriptors[fd], inodes[id] != nil else { throw .io(operation: operation, path: path, errno: EBADF) }
        return id
    }

    private func change(_ id: Int, _ pending: PendingChange) {
        guard var file = inodes[id] else { return }
        Self.apply(pending, to: &file.current)
        file.pending.append(pending)
        inodes[id] = file
    }

    private func makeDurable(_ id: Int) {
        guard var file = inodes[id] else { return }
        file.durable = file.current
        file.pending.removeAll()
        inodes[id] = file
    }

    private static func apply(_ change: PendingChange, to bytes: inout [UInt8]) {
        switch change {
        case let .write(offset, written):
            if bytes.count < offset + written.count {
                bytes.append(contentsOf: repeatElement(0, count: offset + written.count - bytes.count))
            }
            bytes.replaceSubrange(offset..<offset + written.count, with: written)
        case .resize(let length):
            if length < bytes.count {
                bytes.removeSubrange(length...)
            } else {
                bytes.append(contentsOf: repeatElement(0, count: length - bytes.count))
            }
        }
    }

    /// Ordered: a prefix of the unsynced name changes survives. Unordered: each name
    /// whose unsynced state differs from its durable one keeps the new state or reverts,
    /// at even odds. Files no name refers to any more are dropped.
    private func resolveNames(_ random: inout SplitMix64) {
        defer {
            pendingNameChanges.removeAll()
            let referenced = Set(directories.values.flatMap { $0.current.values })
            for id in inodes.keys where !referenced.contains(id) { inodes[id] = nil }
        }
        if configuration.orderedNameChanges {
            let kept = Int(random.next() % UInt64(pendingNameChanges.count + 1))
            var resolved = directories.mapValues(\.durable)
            for change in pendingNameChanges[..<kept].joined() {
                resolved[change.directory]?[change.name] = change.inode
            }
            directories = resolved.mapValues { Directory(current: $0, durable: $0) }
            stats.revertedNames += pendingNameChanges.count - kept
            return
        }
        for path in directories.keys.sorted() {
            guard var entries = directories[path] else { continue }
            let names = Set(entries.current.keys).union(entries.durable.keys).sorted()
            for name in names where entries.current[name] != entries.durable[name] {
                if random.next() % 2 == 0 {
                    entries.current[name] = entries.durable[name]
                    stats.revertedNames += 1
                }
            }
            entries.durable = entries.current
            directories[path] = entries
        }
    }

    /// Each file keeps its durable content plus a prefix of its unsynced changes; the
    /// first change left out may be torn (a write kept up to a sector boundary).
    private func resolveData(_ random: inout SplitMix64) {
        for id in inodes.keys.sorted() {
            guard var file = inodes[id], !file.pending.isEmpty else { continue }
            let kept = Int(random.next() % UInt64(file.pending.count + 1))
            var bytes = file.durable
            for change in file.pending[..<kept] { Self.apply(change, to: &bytes) }
            if kept < file.pending.count {
                stats.lostWrites += file.pending.count - kept
                if configuration.tornWrites, case let .write(offset, written) = file.pending[kept] {
                    let boundaries = stride(from: (offset / Self.sectorSize + 1) * Self.sectorSize,
                                            to: offset + written.count, by: Self.sectorSize).map { $0 }
                    if !boundaries.isEmpty && random.next() % 2 == 0 {
                        let cut = boundaries[Int(random.next() % UInt64(boundaries.count))]
                        Self.apply(.write(offset: offset, bytes: Array(written[..<(cut - offset)])), to: &bytes)
                        stats.tornWrites += 1
                    }
                }
            }
            file.durable = bytes
            file.current = bytes
            file.pending.removeAll()
            inodes[id] = file
        }
    }

    /// Whether a mutation removes this directory sync, judged by the last name change in
    /// the directory (the one the sync is for).
    private func skipsDirectorySync(_ directory: String) -> Bool {
        let mutations = configuration.mutations
        if mutations.contains(.directorySync) { return true }
        guard let last = pendingNameChanges.joined().last(where: { $0.directory == directory }),
              last.inode != nil else { return false }
        if mutations.contains(.segmentCreationDirectorySync) && last.name.hasSuffix(".wal") { return true }
        return mutations.contains(.snapshotRenameDirectorySync) && last.name.hasSuffix(".snap")
    }

    /// The paths that name inode `id`.
    private func paths(of id: Int) -> [String] {
        directories.keys.sorted().flatMap { directory in
            (directories[directory]?.current ?? [:]).filter { $0.value == id }.keys.sorted().map { directory + "/" + $0 }
        }
    }

    /// At the configured rates: flips one bit of a non-empty file, or makes one of its
    /// sectors unreadable (everything is synced at this point).
    private func injectDamage(_ random: inout SplitMix64) {
        let candidates = inodes.keys.sorted().filter { (inodes[$0]?.durable.count ?? 0) > 0 }
        guard !candidates.isEmpty else { return }
        if Double.random(in: 0..<1, using: &random) < configuration.bitFlipRate {
            let id = candidates[Int(random.next() % UInt64(candidates.count))]
            if var file = inodes[id] {
                let offset = Int(random.next() % UInt64(file.durable.count))
                file.durable[offset] ^= UInt8(1) << (random.next() % 8)
                file.current = file.durable
                inodes[id] = file
                stats.bitFlips += 1
                stats.damagedFiles += paths(of: id)
            }
        }
        if Double.random(in: 0..<1, using: &random) < configuration.readErrorRate {
            let id = candidates[Int(random.next() % UInt64(candidates.count))]
            if let count = inodes[id]?.durable.count {
                inodes[id]?.unreadableSectors.insert(Int(random.next() % UInt64(count)) / Self.sectorSize)
                stats.readErrors += 1
                stats.damagedFiles += paths(of: id)
            }
        }
    }
}
