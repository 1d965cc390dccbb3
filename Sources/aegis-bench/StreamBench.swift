import AegisBackup
import AegisKV
import AegisRaft
import AegisStream
import ArgumentParser

/// `aegis-bench stream`: events per second through one change-stream link, and the
/// lag of each event (committed on the source → applied on the target) at an offered
/// rate. In process, one thread: the source's batcher and frame encoder, the target's
/// frame decoder, the batch as the target's log entry, and the target's state machine
/// applying it. Not included: the network (one HTTP request per batch), Raft
/// replication and the fsync of the target (one entry per batch).
struct StreamBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Throughput and lag of one change-stream link (batch, compress, decode, apply).")

    @Option(help: "Bytes per value.") var valueBytes = 100
    @Option(help: "Distinct keys written.") var keys = 100_000
    @Option(help: "Most entries per batch.") var batchEntries = 10_000
    @Option(help: "Compression: none, gzip, lz4, zstd.") var compression = "lz4"
    @Option(help: "Offered rate for the lag run, events per second.") var rate = 100_000
    @Option(help: "Seconds of each run.") var seconds = 3.0
    @Flag(help: "One JSON object per run.") var json = false

    func run() throws {
        guard let codec = BackupCompression(rawValue: compression) else {
            throw ValidationError("--compression: none, gzip, lz4 or zstd")
        }
        try codec.checkAvailable()
        let setup = "value \(valueBytes) B, \(keys) keys, batches of ≤ \(batchEntries), \(codec.rawValue), build \(buildMode), 1 thread"
        if !json { print("aegis-bench stream — \(setup); excludes network, Raft and fsync of the target (one entry per batch)") }
        // Maximum throughput: a backlog of entries, drained as fast as the link goes.
        let backlog = Int(Double(max(rate, 1)) * seconds)
        let (events, elapsed, bytes) = try drain(entries: backlog, codec: codec)
        let throughput = Double(events) / max(elapsed, 1e-9)
        // Lag at the offered rate: entries commit on a schedule; each is applied when the
        // link's next batch, taken once it is committed, is done.
        let lags = try lagRun(codec: codec)
        let sorted = lags.sorted()
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        if json {
            print(#"{"bench":"stream","events":\#(events),"seconds":\#(fmt(elapsed)),"events_per_sec":\#(Int(throughput)),"wire_bytes_per_event":\#(fmt(Double(bytes) / Double(max(events, 1)))),"offered_rate":\#(rate),"lag_p50_ms":\#(fmt(percentile(0.5) * 1000)),"lag_p99_ms":\#(fmt(percentile(0.99) * 1000)),"lag_max_ms":\#(fmt((sorted.last ?? 0) * 1000)),"compression":"\#(codec.rawValue)","value_bytes":\#(valueBytes),"batch_entries":\#(batchEntries),"build":"\#(buildMode)"}"#)
        } else {
            print("backlog of \(events) events drained in \(fmt(elapsed)) s: \(Int(throughput)) events/s, \(fmt(Double(bytes) / Double(max(events, 1)))) wire bytes per event")
            print("offered \(rate) events/s for \(seconds) s: lag p50 \(fmt(percentile(0.5) * 1000)) ms, p99 \(fmt(percentile(0.99) * 1000)) ms, max \(fmt((sorted.last ?? 0) * 1000)) ms")
        }
    }

    /// The source's committed entries (`SET key value`, leader timestamps in ms).
    func entries(_ count: Int) -> [LogEntry] {
        let value = [UInt8](repeating: 0x61, count: valueBytes)
        return (0 ..< count).map { k in
            LogEntry(index: LogIndex(k + 1), term: 1, data: Command.set(Key("key:\(k % max(keys, 1))"), value).encoded(),
                     timestamp: 1_700_000_000_000 + UInt64(k / 100))
        }
    }

    /// One link step: batch, encode, decode, propose-encode, apply. Returns wire bytes.
    func ship(_ slice: ArraySlice<LogEntry>, after: UInt64, commit: UInt64, batcher: inout StreamBatcher,
              target: inout StateMachine, targetIndex: inout LogIndex, codec: BackupCompression) throws -> Int {
        let batch = batcher.batch(after: after, entries: Array(slice), epoch: 0, sourceCommit: commit)
        let wire = try StreamFrame(batch: batch, sourceTime: 0).encoded(compression: codec)
        let frame = try StreamFrame(decoding: wire, limits: StreamLimits())
        targetIndex += 1
        let result = target.apply(LogEntry(index: targetIndex, term: 1, data: Command.streamBatch(frame.batch).encoded()))
        if let error = result.error { throw ValidationError("the target refused a batch: \(error)") }
        return wire.count
    }

    func standby() -> StateMachine {
        var machine = StateMachine()
        machine.apply(LogEntry(index: 1, term: 1, data: Command.setDRState(DRTransition(epoch: 0, role: .standby)).encoded()))
        return machine
    }

    func drain(entries count: Int, codec: BackupCompression) throws -> (Int, Double, Int) {
        let log = entries(count)
        var target = standby()
        var targetIndex: LogIndex = 1
        var batcher = StreamBatcher(source: "bench")
        var bytes = 0
        let start = monotonicSeconds()
        var position = 0
        while position < log.count {
            let end = min(position + batchEntries, log.count)
            bytes += try ship(log[position ..< end], after: UInt64(position), commit: UInt64(log.count), batcher: &batcher,
                              target: &target, targetIndex: &targetIndex, codec: codec)
            position = end
        }
        return (log.count, monotonicSeconds() - start, bytes)
    }

    func lagRun(codec: BackupCompression) throws -> [Double] {
        let count = Int(Double(rate) * seconds)
        let log = entries(count)
        var target = standby()
        var targetIndex: LogIndex = 1
        var batcher = StreamBatcher(source: "bench")
        var lags: [Double] = []
        lags.reserveCapacity(count)
        let start = monotonicSeconds()
        let perEntry = 1.0 / Double(max(rate, 1))
        var position = 0
        while position < count {
            let now = monotonicSeconds() - start
            let committed = min(count, Int(now / perEntry))
            guard committed > position else { continue }  // wait for the next commit
            let end = min(position + batchEntries, committed)
            _ = try ship(log[position ..< end], after: UInt64(position), commit: UInt64(committed), batcher: &batcher,
                         target: &target, targetIndex: &targetIndex, codec: codec)
            let applied = monotonicSeconds() - start
            for k in position ..< end { lags.append(applied - Double(k + 1) * perEntry) }
            position = end
        }
        return lags
    }
}
