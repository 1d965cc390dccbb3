import AegisBackup
import AegisKV
import AegisRaft
import AegisStorage
import Foundation

/// A scratch directory removed at the end of a test.
final class ScratchDirectory: @unchecked Sendable {
    let path: String

    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "aegis-backup-\(safe)-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func sub(_ name: String) -> String { path + "/" + name }
}

/// A data directory written the way a node writes it (DiskStorage: entries, hard state,
/// snapshots, compaction, the identity file), with a model of the committed state.
final class FakeNode {
    let directory: String
    let storage: DiskStorage
    let uuid: String
    var machine = StateMachine()
    var index: LogIndex = 0
    var term: Term = 1
    /// The model: key → value after each index.
    var model: [String: String] = [:]
    var history: [LogIndex: [String: String]] = [0: [:]]
    /// Entry timestamps: 1_000_000 + 10 ms per index.
    static func time(_ index: LogIndex) -> UInt64 { 1_000_000 + index * 10 }

    init(directory: String, uuid: String = "11111111-2222-3333-4444-555555555555") throws {
        self.directory = directory
        self.uuid = uuid
        storage = try DiskStorage(directory: directory,
                                  options: DiskStorageOptions(segmentSize: 64 << 10, initialConf: ConfState(voters: ["n1"])))
        try DataDirectoryIdentity(clusterID: "test", clusterUUID: uuid, nodeID: "n1", membership: .member)
            .write(to: directory)
    }

    /// Commits `count` SETs `prefix<i> = v<index>`.
    func write(_ count: Int, prefix: String = "k", keySpace: Int = 50) throws {
        var entries: [LogEntry] = []
        for i in 0..<count {
            index += 1
            let key = "\(prefix)\(i % keySpace)", value = "v\(index)"
            let entry = LogEntry(index: index, term: term, type: .command,
                                 data: Command.set(Key(key), Array(value.utf8)).encoded(), timestamp: Self.time(index))
            entries.append(entry)
            machine.apply(entry)
            model[key] = value
            history[index] = model
        }
        try storage.save(hardState: RaftState(term: term, votedFor: nil, commitIndex: index), entries: entries)
    }

    /// Commits `commands` (the model of string values is not updated).
    func commit(_ commands: [Command]) throws {
        var entries: [LogEntry] = []
        for command in commands {
            index += 1
            let entry = LogEntry(index: index, term: term, type: .command, data: command.encoded(), timestamp: Self.time(index))
            entries.append(entry)
            machine.apply(entry)
        }
        try storage.save(hardState: RaftState(term: term, votedFor: nil, commitIndex: index), entries: entries)
    }

    /// Takes a node snapshot at the current index and compacts the log before it.
    func snapshotAndCompact() throws {
        try storage.createSnapshot(at: index, conf: ConfState(voters: ["n1"]), data: machine.snapshotData())
        try storage.compact(upTo: index)
    }

    func close() { storage.close() }
}

/// The state machine's keys and values as a dictionary (for comparison with a model).
func contents(_ machine: StateMachine, keys: some Sequence<String>) -> [String: String] {
    var result: [String: String] = [:]
    for key in keys {
        if let value = machine.value(for: Key(key)) { result[key] = String(decoding: value, as: UTF8.self) }
    }
    return result
}

/// Flips one byte of a file in place.
func flipByte(_ path: String, at offset: Int? = nil) throws {
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    let at = offset ?? bytes.count / 2
    bytes[at] ^= 0x5A
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Runs a program; returns its exit status and standard output.
@discardableResult
func run(_ program: String, _ arguments: [String], stdin: String? = nil) throws -> (status: Int32, output: Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [program] + arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, data)
}

/// Deterministic bytes, half compressible.
func sampleBytes(_ count: Int, seed: UInt64 = 42) -> [UInt8] {
    var state = seed
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count)
    for i in 0..<count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        bytes.append(i % 2 == 0 ? UInt8(truncatingIfNeeded: state >> 33) : UInt8(i % 7))
    }
    return bytes
}

/// A manual clock: each reading advances it by one second.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var millis: UInt64 = 1_700_000_000_000

    func now() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        millis += 1000
        return millis
    }
}

extension FakeNode {
    /// Commits `keys` SETs of random (incompressible) values.
    func writeRandom(keys: Int, valueBytes: Int) throws {
        var entries: [LogEntry] = []
        for i in 0..<keys {
            index += 1
            let value = (0..<valueBytes).map { _ in UInt8.random(in: 0...255) }
            let entry = LogEntry(index: index, term: term, type: .command,
                                 data: Command.set(Key("random\(i)"), value).encoded(), timestamp: Self.time(index))
            entries.append(entry)
            machine.apply(entry)
        }
        try storage.save(hardState: RaftState(term: term, votedFor: nil, commitIndex: index), entries: entries)
    }
}
