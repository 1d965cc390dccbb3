import AegisCRDT
import AegisKV
import AegisRaft
import ArgumentParser

/// `aegis-bench aa-merge`: one node's share of an active-active link, alone: a peer's
/// batches applied to one state machine as the log entries a receiving node applies
/// (`StateMachine.apply(LogEntry)`: the command decoded, the batch checked, every key
/// state joined), on one thread, with nothing else running.
///
/// `aegis-bench aa` runs every node of every cluster and the links on this machine's
/// cores at once, so its figures move with the scheduling; this one isolates the part
/// each of a receiving cluster's nodes repeats for every event.
struct AAMergeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aa-merge",
        abstract: "One node merging a peer's active-active batches: merges per second (new keys, newer writes, older writes).")

    @Option(help: "Keys the peer wrote (each phase merges one state per key).") var keys = 1_000_000
    @Option(help: "Value size in bytes.") var valueBytes = 100
    @Option(help: "Key states per batch (one log entry each).") var batchStates = 10_000
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func validate() throws {
        guard keys >= 1, valueBytes >= 0, batchStates >= 1, batchStates <= ActiveActiveBatch.maxStates else {
            throw ValidationError("--keys and --batch-states (to \(ActiveActiveBatch.maxStates)): at least 1; --value-bytes: 0 or more")
        }
    }

    func run() throws {
        var machine = StateMachine(replica: "bench")
        var index: LogIndex = 1
        machine.apply(LogEntry(index: index, term: 1, data: Command.setActiveActive(ActiveActiveSettings(enabled: true)).encoded()))
        let keyList = (0 ..< keys).map(benchKey)
        let clock = ContinuousClock()
        var sourceIndex: UInt64 = 0

        /// Merges one state per key with stamps at `physical`; returns the seconds spent
        /// applying (encoding is not timed), the failed entries and the states merged.
        func phase(physical: UInt64, valueSeed: Int) -> (seconds: Double, failures: Int, merged: Int) {
            var elapsed = Duration.zero
            var failures = 0
            var merged = 0
            var start = 0
            while start < keys {
                let end = min(start + batchStates, keys)
                let states = (start ..< end).map { i in
                    ActiveActiveKeyState(key: keyList[i], string: ActiveActiveString(
                        stamp: HLCTimestamp(physical: physical, logical: UInt32(truncatingIfNeeded: i), replica: "peer"),
                        value: benchValue(i &+ valueSeed, size: valueBytes)))
                }.sorted { $0.key < $1.key }
                let last = sourceIndex + UInt64(end - start)
                let batch = ActiveActiveBatch(source: "peer", afterIndex: sourceIndex, lastIndex: last, sourceCommit: last,
                                              sourceTime: physical, states: states)
                sourceIndex = last
                index += 1
                let entry = LogEntry(index: index, term: 1, data: Command.activeActiveBatch(batch).encoded())
                let began = clock.now
                let result = machine.apply(entry)
                elapsed += clock.now - began
                if result.isSuccess { merged += result.keyCount } else { failures += 1 }
                start = end
            }
            return (seconds(elapsed), failures, merged)
        }

        let fresh = phase(physical: 10_000, valueSeed: 0)
        let newer = phase(physical: 20_000, valueSeed: 1)
        let older = phase(physical: 15_000, valueSeed: 2)
        let consistent = keyList.enumerated().allSatisfy { machine.value(for: $1) == benchValue($0 &+ 1, size: valueBytes) }
        func rate(_ p: (seconds: Double, failures: Int, merged: Int)) -> Int { Int(Double(p.merged) / max(p.seconds, 1e-9)) }
        func micros(_ p: (seconds: Double, failures: Int, merged: Int)) -> String { fmt(p.seconds * 1e6 / Double(max(p.merged, 1))) }
        let failures = fresh.failures + newer.failures + older.failures
        if json {
            print(#"{"bench":"aa-merge","keys":\#(keys),"value_bytes":\#(valueBytes),"batch_states":\#(batchStates),"#
                + #""path":"StateMachine.apply(LogEntry) of command 71, one thread","#
                + #""new_keys_per_sec":\#(rate(fresh)),"newer_per_sec":\#(rate(newer)),"older_per_sec":\#(rate(older)),"#
                + #""new_keys_us":\#(micros(fresh)),"newer_us":\#(micros(newer)),"older_us":\#(micros(older)),"#
                + #""failed_entries":\#(failures),"values_as_expected":\#(consistent),"build":"\#(buildMode)"}"#)
        } else {
            print("aegis-bench aa-merge: one state machine applying a peer's batches (command 71: decode, check, join), one thread; \(keys) keys of 16 bytes, \(valueBytes)-byte values, \(batchStates) key states per entry; \(buildMode) build")
            print("  new keys:     \(rate(fresh)) merges/s (\(micros(fresh)) µs each)")
            print("  newer writes: \(rate(newer)) merges/s (\(micros(newer)) µs each; the value is replaced)")
            print("  older writes: \(rate(older)) merges/s (\(micros(older)) µs each; nothing changes)")
            print("  failed entries \(failures); every value the newest write's: \(consistent)")
        }
    }
}
