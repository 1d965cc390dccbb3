import AegisKV
import AegisRaft
import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `aegis-bench kv`: applies encoded log entries to the key-value state machine and
/// reports applies per second for set (new keys), set (overwrites) and get, plus the
/// resident memory afterwards.
struct KVBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv",
        abstract: "Key-value state machine: applies per second (set, overwrite, get) and resident memory.")

    @Option(help: "Number of distinct keys.")
    var keys: Int = 1_000_000

    @Option(help: "Value size in bytes.")
    var valueBytes: Int = 256

    @Option(help: "Entries encoded ahead of each timed batch.")
    var batch: Int = 65_536

    @Flag(help: "Reserve room for all keys before loading (no table growth while timed).")
    var reserve = false

    @Flag(help: "Enable active-active first (CRDT metadata for every key written: the cost a cluster in an active-active group pays).")
    var activeActive = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        let keyBytes = 16
        let baselineRSS = residentBytes()
        var machine = StateMachine(replica: "bench")
        if reserve { machine.reserveCapacity(keys) }
        var index: LogIndex = 0
        if activeActive {
            index += 1
            machine.apply(LogEntry(index: index, term: 1,
                                   data: Command.setActiveActive(ActiveActiveSettings(enabled: true)).encoded()))
        }
        let clock = ContinuousClock()

        // Each phase encodes `batch` entries untimed, then times only their application.
        func phase(_ makeCommand: (Int) -> Command) -> (seconds: Double, failures: Int, slowest: Double) {
            var elapsed = Duration.zero
            var slowest = Duration.zero
            var failures = 0
            var start = 0
            while start < keys {
                let end = min(start + batch, keys)
                var entries: [LogEntry] = []
                entries.reserveCapacity(end - start)
                for i in start ..< end {
                    index += 1
                    entries.append(LogEntry(index: index, term: 1, data: makeCommand(i).encoded()))
                }
                let began = clock.now
                var applied = began
                for entry in entries {
                    if !machine.apply(entry).isSuccess { failures += 1 }
                    let now = clock.now
                    slowest = max(slowest, now - applied)
                    applied = now
                }
                elapsed += applied - began
                start = end
            }
            return (seconds(elapsed), failures, seconds(slowest))
        }

        let set = phase { .set(benchKey($0), benchValue($0, size: valueBytes)) }
        let loadedRSS = residentBytes()
        let overwrite = phase { .set(benchKey($0), benchValue($0 &+ 1, size: valueBytes)) }
        var hits = 0
        let get = phase { .get(benchKey($0)) }
        let localKeys = (0 ..< keys).map(benchKey)
        let localBegan = clock.now
        for key in localKeys where machine.value(for: key) != nil { hits += 1 }
        let localSeconds = seconds(clock.now - localBegan)
        let finalRSS = residentBytes()

        // Snapshot phases, as the node's background snapshot runs them: a copy-on-write
        // view, the key order, the length pass, then the chunks (encode + checksum).
        let view = machine
        let snapshotBegan = clock.now
        var chunks = view.snapshotChunks()
        let ordered = clock.now
        let snapshotBytes = chunks.byteCount
        let counted = clock.now
        var produced = 0
        while let chunk = chunks.next() { produced += chunk.count }
        let encoded = clock.now

        // Restore, as a node's start does: the whole snapshot in memory, then one parse.
        var snapshot: [UInt8] = []
        snapshot.reserveCapacity(snapshotBytes)
        for chunk in view.snapshotChunks() { snapshot.append(contentsOf: chunk) }
        let restoreBegan = clock.now
        var restored = StateMachine(replica: "bench")
        var restoreFailures = 0
        do { try restored.restore(from: Snapshot(data: snapshot)) } catch { restoreFailures = 1 }
        let restoreSeconds = seconds(clock.now - restoreBegan)
        if restored.count != view.count { restoreFailures += 1 }

        let rawBytes = keys * (keyBytes + valueBytes)
        let figures: [(String, String)] = [
            ("scenario", "\"kv-apply\""),
            ("keys", "\(keys)"), ("keyBytes", "\(keyBytes)"), ("valueBytes", "\(valueBytes)"),
            ("reserved", "\(reserve)"), ("activeActive", "\(activeActive)"),
            ("path", "\"StateMachine.apply(LogEntry): decode + execute, single thread\""),
            ("cores", "\(sysconf(Int32(_SC_NPROCESSORS_ONLN)))"),
            ("setAppliesPerSecond", rate(keys, set.seconds)),
            ("overwriteAppliesPerSecond", rate(keys, overwrite.seconds)),
            ("getAppliesPerSecond", rate(keys, get.seconds)),
            ("slowestSetApplySeconds", format(set.slowest)),
            ("slowestOverwriteApplySeconds", format(overwrite.slowest)),
            ("localGetsPerSecond", rate(keys, localSeconds)),
            ("failures", "\(set.failures + overwrite.failures + get.failures + (keys - hits))"),
            ("rawDataBytes", "\(rawBytes)"),
            ("baselineResidentBytes", "\(baselineRSS)"),
            ("residentBytesAfterLoad", "\(loadedRSS)"),
            ("residentBytesAfter", "\(finalRSS)"),
            ("residentToRawRatio", format(Double(finalRSS) / Double(rawBytes))),
            ("snapshotBytes", "\(snapshotBytes)"),
            ("snapshotProducedBytes", "\(produced)"),
            ("snapshotKeyOrderSeconds", format(seconds(ordered - snapshotBegan))),
            ("snapshotByteCountSeconds", format(seconds(counted - ordered))),
            ("snapshotEncodeSeconds", format(seconds(encoded - counted))),
            ("snapshotRestoreSeconds", format(restoreSeconds)),
            ("snapshotRestoreFailures", "\(restoreFailures)"),
        ]
        if json {
            print("{" + figures.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
        } else {
            for (name, value) in figures { print("\(name): \(value)") }
        }
    }
}

/// A 16-byte key: the hexadecimal of a bijective mix of `i`, so keys are unique and
/// look random.
func benchKey(_ i: Int) -> Key {
    var z = UInt64(i) &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    let digits = Array("0123456789abcdef".utf8)
    return Key((0 ..< 16).map { digits[Int((z >> UInt64(60 - 4 * $0)) & 0xF)] })
}

func benchValue(_ i: Int, size: Int) -> [UInt8] {
    (0 ..< size).map { UInt8(truncatingIfNeeded: i &+ $0) }
}

func seconds(_ duration: Duration) -> Double {
    let (s, attoseconds) = duration.components
    return Double(s) + Double(attoseconds) / 1e18
}

private func rate(_ count: Int, _ seconds: Double) -> String {
    seconds > 0 ? String(Int((Double(count) / seconds).rounded())) : "0"
}

private func format(_ value: Double) -> String {
    String(Double(Int((value * 1000).rounded())) / 1000)
}

/// The resident set size in bytes: /proc/self/statm on Linux, the peak from
/// getrusage elsewhere.
private func residentBytes() -> Int {
    #if os(Linux)
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var size = 0, resident = 0
    guard withUnsafeMutablePointer(to: &size, { sizePointer in
        withUnsafeMutablePointer(to: &resident) { fscanfStatm(file, sizePointer, $0) }
    }) else { return 0 }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
    #else
    var usage = rusage()
    getrusage(RUSAGE_SELF, &usage)
    return Int(usage.ru_maxrss)
    #endif
}

#if os(Linux)
/// Reads the first two numbers of /proc/self/statm (total and resident pages).
private func fscanfStatm(_ file: UnsafeMutablePointer<FILE>, _ size: UnsafeMutablePointer<Int>,
                         _ resident: UnsafeMutablePointer<Int>) -> Bool {
    var buffer = [CChar](repeating: 0, count: 256)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return false }
    let fields = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        .split(separator: " ")
    guard fields.count >= 2, let total = Int(fields[0]), let rss = Int(fields[1]) else { return false }
    size.pointee = total
    resident.pointee = rss
    return true
}
#endif
