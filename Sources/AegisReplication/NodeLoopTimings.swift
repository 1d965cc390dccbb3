import Foundation
import Logging

/// Where one pass of the node loop spent its time (`NodeLoop.run`): taking and handling
/// the inputs, the core's `Ready` (building it: on a leader this reads the entries it
/// sends to a lagging follower), persisting (write and fsync), sending and applying
/// (what is left of the pass is the reads served after apply), and how long its oldest
/// input waited in the queue before the pass began (`queuedMs`: the loop busy with the
/// previous pass, or its thread not scheduled). A pass whose queue wait and run together
/// are longer than `NodeConfiguration.slowLoopWarning` is logged with
/// this breakdown (as etcd logs a slow fdatasync or apply), at most once a second, and
/// counted in `aegis_slow_loop_iterations_total`: a pass is the time every client of
/// the node waits behind, so its parts say where a latency spike came from.
struct LoopTimings {
    var started: UInt64 = 0
    var queuedNanos: UInt64 = 0
    var inputs = 0
    var handleNanos: UInt64 = 0
    var readyNanos: UInt64 = 0
    var readies = 0
    var persistNanos: UInt64 = 0
    var persistedEntries = 0
    var persistedBytes = 0
    var fsyncs = 0
    var sendNanos: UInt64 = 0
    var sentMessages = 0
    var applyNanos: UInt64 = 0
    var appliedEntries = 0

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Starts a pass.
    mutating func begin() { self = LoopTimings(started: Self.now()) }

    /// The nanoseconds since `from`, as a duration to add to a part.
    static func since(_ from: UInt64) -> UInt64 {
        let now = Self.now()
        return now >= from ? now - from : 0
    }

    /// The log line's fields for a pass that took `total` nanoseconds.
    func metadata(total: UInt64) -> Logger.Metadata {
        func ms(_ n: UInt64) -> Logger.MetadataValue { .string(String(format: "%.1f", Double(n) / 1e6)) }
        return [
            "ms": ms(total), "queuedMs": ms(queuedNanos), "inputs": "\(inputs)", "handleMs": ms(handleNanos),
            "readies": "\(readies)", "readyMs": ms(readyNanos),
            "persistMs": ms(persistNanos), "persistedEntries": "\(persistedEntries)",
            "persistedBytes": "\(persistedBytes)", "fsyncs": "\(fsyncs)",
            "sendMs": ms(sendNanos), "sentMessages": "\(sentMessages)",
            "applyMs": ms(applyNanos), "appliedEntries": "\(appliedEntries)",
        ]
    }
}

extension NodeLoop {
    /// Logs the pass that just ended if it was slower than the setting (at most once a
    /// second) and counts it.
    func reportSlowPass() {
        guard let limit = slowLoopNanos else { return }
        let total = LoopTimings.since(timings.started)
        guard total &+ timings.queuedNanos >= limit else { return }
        metrics.slowLoops.increment()
        let now = LoopTimings.now()
        if let last = lastSlowLoopWarning, now &- last < 1_000_000_000 { return }
        lastSlowLoopWarning = now
        var fields = timings.metadata(total: total)
        fields["role"] = "\(core.role)"
        fields["applied"] = "\(machine.appliedIndex)"
        logger.warning("a pass of the node loop was slow", metadata: fields)
    }
}
