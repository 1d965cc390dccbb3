import AegisServer
import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// The settings of `aegis bench --failover`: closed-loop clients that live through node
/// restarts, as an application behind a load balancer would.
struct FailoverWorkload: Sendable {
    var servers: [String]
    var clients: Int
    var duration: Duration
    /// Each client writes and reads its own keys `c<client>-<k>`, k < keysPerClient.
    var keysPerClient: Int
    var requestTimeout: TimeAmount
    /// Attempts of one request (the first and the retries on other servers) before it fails.
    var maxTries: Int
    /// A file listing, one per line, the servers out of rotation: new connections avoid
    /// them (connections already open stay until the server closes them).
    var rotationFile: String?
    /// At most this many requests are kept for `--records-out` (the rest are counted).
    var maxRecords: Int
    var password: String?
}

/// One request as it was answered.
struct FailoverRecord: Sendable {
    /// When its first attempt started (seconds since 1970).
    var started: Double
    var micros: UInt64
    var server: String
    var tries: Int
    var isSet: Bool
}

/// What one client measured.
struct FailoverClientResult: Sendable {
    var records: [FailoverRecord] = []
    var answered = 0
    var failures: [String] = []
    var failed = 0
    var reconnects = 0
    var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    /// The last acknowledged value of each of its keys.
    var acknowledged: [String: String] = [:]
}

/// Runs the clients until the duration is over or `stop` is set; each client alternates
/// SET and GET on its own keys and checks that every GET returns the value of its last
/// acknowledged SET (a stale read is a failure). A request whose connection the server
/// closed is sent again on another server, up to `maxTries` attempts; its latency runs
/// from the first attempt to the reply. An error reply or no reply within the timeout is
/// a failure, never retried.
func runFailoverWorkload(_ workload: FailoverWorkload, tls: NIOSSLContext?,
                         stop: NIOLockedValueBox<Bool>) async -> [FailoverClientResult] {
    let deadline = ContinuousClock.now + workload.duration
    let recordsPerClient = max(1, workload.maxRecords / max(1, workload.clients))
    return await withTaskGroup(of: FailoverClientResult.self) { group in
        for index in 0 ..< workload.clients {
            group.addTask {
                var client = FailoverClient(index: index, workload: workload, tls: tls, stop: stop, deadline: deadline,
                                            maxRecords: recordsPerClient)
                return await client.run()
            }
        }
        var results: [FailoverClientResult] = []
        for await result in group { results.append(result) }
        return results
    }
}

private struct FailoverClient {
    let index: Int
    let workload: FailoverWorkload
    let tls: NIOSSLContext?
    let stop: NIOLockedValueBox<Bool>
    let deadline: ContinuousClock.Instant
    let maxRecords: Int
    var result = FailoverClientResult()
    var random: UInt64

    init(index: Int, workload: FailoverWorkload, tls: NIOSSLContext?, stop: NIOLockedValueBox<Bool>,
         deadline: ContinuousClock.Instant, maxRecords: Int) {
        self.index = index
        self.workload = workload
        self.tls = tls
        self.stop = stop
        self.deadline = deadline
        self.maxRecords = maxRecords
        self.random = UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15 | 1
    }

    /// A request in progress (kept across reconnections).
    private struct Pending {
        var key: String
        var value: String?
        var started: Double
        var start: ContinuousClock.Instant
        var tries = 0
    }

    private var running: Bool { !stop.withLockedValue { $0 } && ContinuousClock.now < deadline }

    mutating func run() async -> FailoverClientResult {
        var sequence = 0
        var pending: Pending?
        var avoid: String?
        while running || pending != nil {
            let server = pick(avoiding: avoid)
            var connected = false
            do {
                try await RESPConnection.with(server, password: workload.password, tls: tls, connectTimeout: .seconds(1)) { connection in
                    connected = true
                    while true {
                        if pending == nil {
                            guard running else { return }
                            let key = "c\(index)-\(sequence % workload.keysPerClient)"
                            pending = Pending(key: key, value: sequence % 2 == 0 ? "\(sequence)" : nil,
                                              started: Date().timeIntervalSince1970, start: .now)
                            sequence += 1
                        }
                        guard var request = pending else { return }
                        request.tries += 1
                        pending = request
                        let arguments = request.value.map { ["SET", request.key, $0] } ?? ["GET", request.key]
                        let reply = try await connection.call(arguments, timeout: workload.requestTimeout)
                        finish(request, reply: reply, server: server)
                        pending = nil
                    }
                }
                if pending == nil && !running { break }
            } catch let timeout as RESPRequestTimeout {
                if let request = pending { fail(request, "\(request.value == nil ? "GET" : "SET") \(request.key) at \(server): \(timeout)") }
                pending = nil
            } catch {
                // The server closed the connection (or refused it): the request was not
                // answered; send it again elsewhere.
                result.reconnects += 1
                avoid = server
                if var request = pending {
                    if !connected { request.tries += 1 }
                    if request.tries >= workload.maxTries {
                        fail(request, "\(request.value == nil ? "GET" : "SET") \(request.key): no answer after \(request.tries) tries, last at \(server): \(error)")
                        pending = nil
                    } else {
                        pending = request
                    }
                }
                if !connected { try? await Task.sleep(for: .milliseconds(10)) }
                continue
            }
            avoid = nil
        }
        return result
    }

    private mutating func finish(_ request: Pending, reply: RESPValue, server: String) {
        let micros = UInt64(max(1, (ContinuousClock.now - request.start) / .microseconds(1)))
        if case .error(let text) = reply {
            fail(request, "error from \(server): \(text)")
            return
        }
        if let value = request.value {
            result.acknowledged[request.key] = value
        } else if let wanted = result.acknowledged[request.key] {
            var got: String?
            if case .bulkString(let bytes) = reply { got = String(decoding: bytes, as: UTF8.self) }
            if got != wanted {
                fail(request, "stale read of \(request.key) at \(server): \(got ?? "nil"), wanted \(wanted)")
                return
            }
        }
        result.answered += 1
        _ = result.histogram.record(micros)
        if result.records.count < maxRecords {
            result.records.append(FailoverRecord(started: request.started, micros: micros, server: server,
                                                 tries: request.tries, isSet: request.value != nil))
        }
    }

    private mutating func fail(_ request: Pending, _ text: String) {
        result.failed += 1
        if result.failures.count < 20 { result.failures.append(text) }
    }

    /// A server in rotation other than `avoiding` (any other server when none is).
    private mutating func pick(avoiding: String?) -> String {
        let out = Set((workload.rotationFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? "")
            .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) })
        var choices = workload.servers.filter { !out.contains($0) && $0 != avoiding }
        if choices.isEmpty { choices = workload.servers.filter { $0 != avoiding } }
        if choices.isEmpty { choices = workload.servers }
        return choices[Int(xorshift64Star(&random) % UInt64(choices.count))]
    }
}

/// The summary `aegis bench --failover` prints.
struct FailoverReport: Encodable {
    var setup: String
    var seconds: Double
    var answered: Int
    var failed: Int
    var failures: [String]
    var reconnects: Int
    var requestsPerSecond: Double
    /// Latency of the answered requests (first attempt to reply), in milliseconds.
    var latencyMilliseconds: [String: Double]
    var overSlowMillis: Int
    var slowest: [Slow]

    struct Slow: Encodable {
        var ms: Double
        var started: Double
        var server: String
        var tries: Int
        var op: String
    }

    init(setup: String, seconds: Double, results: [FailoverClientResult], slowMillis: Double) {
        self.setup = setup
        self.seconds = seconds
        var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        for result in results { histogram.add(result.histogram) }
        answered = results.reduce(0) { $0 + $1.answered }
        failed = results.reduce(0) { $0 + $1.failed }
        failures = Array(results.flatMap(\.failures).prefix(20))
        reconnects = results.reduce(0) { $0 + $1.reconnects }
        requestsPerSecond = seconds > 0 ? Double(answered) / seconds : 0
        latencyMilliseconds = latencySummary(histogram)
        let records = results.flatMap(\.records)
        overSlowMillis = records.count { Double($0.micros) / 1000 > slowMillis }
        slowest = records.sorted { $0.micros > $1.micros }.prefix(10).map {
            Slow(ms: Double($0.micros) / 1000, started: $0.started, server: $0.server, tries: $0.tries, op: $0.isSet ? "SET" : "GET")
        }
    }

    var text: String {
        func ms(_ name: String) -> String { String(format: "%.3f", latencyMilliseconds[name] ?? 0) }
        var lines = [
            "FAILOVER: \(answered) requests answered in \(String(format: "%.2f", seconds)) s (\(Int(requestsPerSecond))/s), "
                + "\(failed) failed, \(reconnects) reconnections",
            "  latency (ms, first attempt to reply): p50 \(ms("p50"))  p99 \(ms("p99"))  p99.9 \(ms("p99.9"))  max \(ms("max"))",
        ]
        for failure in failures.prefix(5) { lines.append("  failed: \(failure)") }
        return lines.joined(separator: "\n")
    }
}

/// Writes every kept request as CSV: started (s since 1970), seconds, server, tries, op.
func writeFailoverRecords(_ results: [FailoverClientResult], to path: String) throws {
    var text = "started,seconds,server,tries,op\n"
    for record in results.lazy.flatMap(\.records) {
        text += String(format: "%.6f,%.6f,", record.started, Double(record.micros) / 1e6)
            + "\(record.server),\(record.tries),\(record.isSet ? "SET" : "GET")\n"
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

/// Writes the last acknowledged value of every key as a JSON object.
func writeFailoverAcknowledged(_ results: [FailoverClientResult], to path: String) throws {
    var all: [String: String] = [:]
    for result in results { all.merge(result.acknowledged) { _, new in new } }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    try encoder.encode(all).write(to: URL(fileURLWithPath: path))
}
