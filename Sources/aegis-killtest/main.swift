// aegis-killtest: kills a WAL appender with SIGKILL at random moments and checks that
// every acknowledged entry survives, intact, with nothing after a gap.
//
// A process kill, not a power loss: the page cache survives it, so this cannot show
// that a sync is needed (it passes without any). Power losses are simulated by
// `SimulatedFileSystem` (PowerLossTests, `aegis-sim --layer node`).
//
//   aegis-killtest --runs 50 [--json] [--seed N] [--appenders 8] [--max-delay-ms 300]
//   aegis-killtest child --dir D [--appenders 8] [--segment-size BYTES]
//
// The driver spawns itself as a child, which appends entries to a DiskStorage from
// several threads and prints each index once its append is acknowledged (durable).
// All runs share one directory, so every run also recovers what the previous kill left.
import AegisRaft
import AegisStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The payload of the entry at `index`: deterministic, so the verifier can recompute it.
func payload(for index: LogIndex) -> [UInt8] {
    var state = index &* 0x9E37_79B9_7F4A_7C15
    let count = 32 + Int(index % 200)
    var bytes = [UInt8]()
    bytes.reserveCapacity(count)
    while bytes.count < count {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        for shift in stride(from: 0, to: 64, by: 8) where bytes.count < count {
            bytes.append(UInt8(truncatingIfNeeded: z >> UInt64(shift)))
        }
    }
    return bytes
}

func entry(_ index: LogIndex) -> LogEntry {
    LogEntry(index: index, term: 1, data: payload(for: index), timestamp: index)
}

func option(_ name: String, in args: [String]) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

func fail(_ message: String, code: Int32 = 2) -> Never {
    FileHandle.standardError.write(Data("aegis-killtest: \(message)\n".utf8))
    exit(code)
}

// MARK: Child: append forever, print acknowledged indexes.

func runChild(_ args: [String]) -> Never {
    guard let dir = option("--dir", in: args) else { fail("child needs --dir") }
    let appenders = Int(option("--appenders", in: args) ?? "8") ?? 8
    let segmentSize = Int(option("--segment-size", in: args) ?? "65536") ?? 65536
    let storage: DiskStorage
    do {
        storage = try DiskStorage(directory: dir, options: DiskStorageOptions(segmentSize: segmentSize))
    } catch {
        fail("child cannot open \(dir): \(error)", code: 3)
    }
    let lock = NSLock()
    nonisolated(unsafe) var next = (try? storage.lastIndex()).map { $0 + 1 } ?? 1
    for _ in 0..<appenders {
        Thread {
            while true {
                lock.lock()
                let index = next
                next += 1
                let ticket: WriteTicket
                do { ticket = try storage.submit(entries: [entry(index)]) } catch {
                    lock.unlock()
                    fail("submit \(index): \(error)", code: 4)
                }
                lock.unlock()
                do { try storage.waitUntilDurable(ticket) } catch { fail("append \(index): \(error)", code: 4) }
                let line = Array("\(index)\n".utf8)
                _ = line.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                if index % 400 == 0 { maintain(storage, acked: index) }
            }
        }.start()
    }
    while true { sleep(60) }
}

/// Exercises the other record types: hard state, snapshot, compaction.
func maintain(_ storage: DiskStorage, acked index: LogIndex) {
    do {
        try storage.setHardState(RaftState(term: 1, votedFor: "child", commitIndex: index))
        try storage.createSnapshot(at: index - 100, conf: ConfState(voters: ["child"]), data: payload(for: index))
        try storage.compact(upTo: index - 200)
    } catch RaftError.snapshotTemporarilyUnavailable {
        return  // another thread made a newer snapshot
    } catch {
        fail("maintenance at \(index): \(error)", code: 4)
    }
}

// MARK: Driver

/// Reads a child's stdout until EOF on a thread of its own.
final class LineCollector: @unchecked Sendable {
    private let lock = NSCondition()
    private var buffer = Data()
    private var finished = false

    init(_ handle: FileHandle) {
        Thread { [self] in
            while true {
                let chunk = handle.availableData
                lock.lock()
                if chunk.isEmpty { finished = true } else { buffer.append(chunk) }
                lock.broadcast()
                lock.unlock()
                if chunk.isEmpty { return }
            }
        }.start()
    }

    /// Waits until some output arrived or `timeout` passed; `true` if output arrived.
    func waitForOutput(timeout: TimeInterval) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while buffer.isEmpty && !finished && lock.wait(until: deadline) {}
        return !buffer.isEmpty
    }

    /// Every complete line once the child's stdout is closed.
    func lines() -> [Substring] {
        lock.lock()
        while !finished { lock.wait() }
        let text = String(decoding: buffer, as: UTF8.self)
        lock.unlock()
        guard let end = text.lastIndex(of: "\n") else { return [] }
        return text[..<end].split(separator: "\n")
    }
}

struct Totals {
    var runs = 0, acked = 0, lost = 0, corruptions = 0, tornTails = 0
    var lastIndex: LogIndex = 0
}

/// Reopens the directory and checks every acknowledged index. Returns the lost ones.
func verify(dir: String, acked: [LogIndex], totals: inout Totals) -> Bool {
    let storage: DiskStorage
    do {
        storage = try DiskStorage(directory: dir)
    } catch {
        totals.corruptions += 1
        FileHandle.standardError.write(Data("  recovery refused the directory: \(error)\n".utf8))
        return false
    }
    defer { storage.close() }
    if storage.recovery.tornTail != nil { totals.tornTails += 1 }
    do {
        let first = try storage.firstIndex(), last = try storage.lastIndex()
        totals.lastIndex = last
        let present = try storage.entries(from: first, to: last + 1, maxBytes: .max)
        for (k, e) in present.enumerated() where e.index != first + LogIndex(k) || e.data != payload(for: e.index) {
            FileHandle.standardError.write(Data("  entry \(e.index) is damaged or out of place\n".utf8))
            totals.lost += 1
            return false
        }
        let lost = acked.filter { $0 > last }
        if !lost.isEmpty {
            FileHandle.standardError.write(Data("  lost \(lost.count) acknowledged entries, e.g. \(lost.prefix(5))\n".utf8))
        }
        totals.lost += lost.count
        return lost.isEmpty
    } catch {
        FileHandle.standardError.write(Data("  reading back failed: \(error)\n".utf8))
        totals.lost += acked.count
        return false
    }
}

func runDriver(_ args: [String]) -> Never {
    let runs = Int(option("--runs", in: args) ?? "10") ?? 10
    let json = args.contains("--json")
    var seed = UInt64(option("--seed", in: args) ?? "") ?? UInt64(Date().timeIntervalSince1970 * 1000)
    let maxDelay = Int(option("--max-delay-ms", in: args) ?? "300") ?? 300
    let appenders = option("--appenders", in: args) ?? "8"
    let dir = option("--dir", in: args) ?? NSTemporaryDirectory() + "aegis-killtest-\(getpid())-\(seed)"
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let started = Date()
    var totals = Totals()
    let initialSeed = seed
    func random(_ bound: Int) -> Int {
        seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int((seed >> 33) % UInt64(max(bound, 1)))
    }
    for run in 1...max(runs, 1) {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: me)
        child.arguments = ["child", "--dir", dir, "--appenders", appenders]
        let pipe = Pipe()
        child.standardOutput = pipe
        do { try child.run() } catch { fail("cannot start \(me): \(error)") }
        let collector = LineCollector(pipe.fileHandleForReading)
        if !collector.waitForOutput(timeout: 30) { fail("run \(run): the child acknowledged nothing in 30 s") }
        usleep(UInt32(1 + random(maxDelay)) * 1000)
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        let acked = collector.lines().compactMap { LogIndex($0) }
        totals.runs += 1
        totals.acked += acked.count
        let ok = verify(dir: dir, acked: acked, totals: &totals)
        FileHandle.standardError.write(Data(
            "run \(run)/\(runs): \(acked.count) acknowledged, last index \(totals.lastIndex), \(ok ? "ok" : "FAILED")\n".utf8))
        if !ok { break }
    }
    if !args.contains("--keep") { try? FileManager.default.removeItem(atPath: dir) }
    let seconds = Date().timeIntervalSince(started)
    let line = "{\"runs\":\(totals.runs),\"acked_entries\":\(totals.acked),\"lost_acked\":\(totals.lost),"
        + "\"corruptions_detected\":\(totals.corruptions),\"torn_tails_truncated\":\(totals.tornTails),"
        + "\"final_last_index\":\(totals.lastIndex),\"seed\":\(initialSeed),\"seconds\":\(String(format: "%.1f", seconds))}"
    if json {
        print(line)
    } else {
        print("\(totals.runs) runs, \(totals.acked) acknowledged entries, \(totals.lost) lost, "
              + "\(totals.corruptions) corruptions detected, \(totals.tornTails) torn tails truncated")
    }
    exit(totals.lost == 0 && totals.corruptions == 0 ? 0 : 1)
}

/// Prints every record of a directory's WAL, one per line (for investigating a failure).
func runDump(_ args: [String]) -> Never {
    guard let dir = option("--dir", in: args) else { fail("dump needs --dir") }
    do {
        var reader = try WALReader(directory: dir)
        while let item = try reader.next() {
            let name = item.file.split(separator: "/").last ?? ""
            switch item.record {
            case .entry(let e): print("\(name) @\(item.offset) entry \(e.index) term \(e.term)")
            default: print("\(name) @\(item.offset) \(item.record)")
            }
        }
    } catch {
        fail("\(error)")
    }
    exit(0)
}

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "child": runChild(arguments)
case "dump": runDump(arguments)
default: runDriver(arguments)
}
