import AegisHTTP
import AegisServer
import ArgumentParser
import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test a node or cluster over RESP and report throughput and latency percentiles.",
        discussion: """
        Opens -c connections (spread over the --server addresses), each keeping -P requests in flight: it sends \
        a batch of -P commands, waits for all replies, then sends the next, as redis-benchmark does. Keys are \
        random in key:000000000000 … key:<keyspace-1>; SET values are -d bytes. Each test (-t) runs -n requests \
        in total. A progress line is printed every second; at the end, per test: throughput and the latency \
        histogram (HdrHistogram, microsecond resolution): p50, p90, p99, p99.9 and max. Latency of a request in \
        a pipelined batch is measured from sending the batch to reading the request's reply.

        Examples:
          aegis bench                   # 100000 SETs, then GETs: 50 clients, 127.0.0.1:7001
          aegis bench -c 50 -n 200000 -d 256 -P 16 -t set
          aegis bench --server 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --json

        --failover runs closed-loop clients that live through node restarts instead (how the rolling-restart \
        test loads a cluster): each of the -c clients alternates SET and GET on its own keys, checks every GET \
        returns its last acknowledged SET, and sends a request whose connection a stopping node closed again on \
        another server (at most --max-tries attempts; latency counts from the first). An error reply, a stale \
        read or no reply within --request-timeout-ms is a failure, never retried. It runs for --duration \
        seconds or until SIGINT/SIGTERM, then prints the figures; --records-out keeps every request as CSV.
        """)

    @Option(help: ArgumentHelp("RESP addresses, comma-separated; connections are spread over them.", valueName: "host:port,…"))
    var server: String = DevDefaults.respAddress

    @Option(name: [.customShort("c"), .long], help: "Concurrent connections.") var clients: Int = 50
    @Option(name: [.customShort("n"), .long], help: "Requests per test, in total.") var requests: Int = 100_000
    @Option(name: [.customShort("d"), .customLong("data-size")], help: "SET value size in bytes.") var dataSize: Int = 256
    @Option(name: [.customShort("P"), .long], help: "Requests in flight per connection (pipeline depth).") var pipeline: Int = 1
    @Option(name: [.customShort("t"), .long], help: "Tests to run, comma-separated: set, get.") var tests: String = "set,get"
    @Option(help: "Number of distinct keys.") var keyspace: UInt64 = 100_000
    @Option(help: ArgumentHelp("The nodes' password (default: $AEGIS_PASSWORD).", valueName: "password")) var password: String?
    @Flag(help: "Print the results as JSON (the progress line goes to standard error).") var json = false
    @OptionGroup var tls: ToolTLSOptions

    @Flag(help: "Closed-loop SET/GET clients that retry on another server when a node closes their connection (see above).")
    var failover = false
    @Option(help: "--failover: seconds to run (SIGINT/SIGTERM ends it sooner).") var duration: Double = 30
    @Option(help: "--failover: a request with no reply within this many milliseconds fails.") var requestTimeoutMs: Int = 2_000
    @Option(help: "--failover: attempts of one request (on different servers) before it fails.") var maxTries: Int = 20
    @Option(help: "--failover: distinct keys per client.") var keysPerClient: Int = 50
    @Option(help: ArgumentHelp("--failover: a file listing servers out of rotation, one per line; read at each (re)connection.",
                               valueName: "path")) var rotationFile: String?
    @Option(help: ArgumentHelp("--failover: write every request as CSV (started,seconds,server,tries,op).", valueName: "path"))
    var recordsOut: String?
    @Option(help: "--failover: requests kept for --records-out (memory bound; the others are only counted).")
    var maxRecords: Int = 2_000_000
    @Option(help: ArgumentHelp("--failover: write each key's last acknowledged value as JSON.", valueName: "path"))
    var ackedOut: String?
    @Option(help: "--failover: requests slower than this are counted apart.") var slowMs: Double = 100

    func validate() throws {
        guard clients > 0, requests > 0, pipeline > 0, dataSize >= 0, keyspace > 0 else {
            throw ValidationError("-c, -n, -P and --keyspace must be positive and -d not negative")
        }
        for test in testList where BenchWorkload.Operation(rawValue: test) == nil {
            throw ValidationError("unknown test '\(test)': use set, get or set,get")
        }
        for address in addresses { _ = try parseAddress(address) }
        guard duration > 0, duration <= 86_400, requestTimeoutMs > 0, maxTries > 0, keysPerClient > 0, maxRecords >= 0 else {
            throw ValidationError("--duration (at most 86400), --request-timeout-ms, --max-tries and --keys-per-client must be positive")
        }
    }

    private var testList: [String] { tests.lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
    private var addresses: [String] { server.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

    func run() async throws {
        if failover { return try await runFailover() }
        let setup = "servers \(addresses.joined(separator: ",")), \(clients) clients, \(requests) requests, \(dataSize)-byte values, "
            + "pipeline \(pipeline), keyspace \(keyspace), \(ProcessInfo.processInfo.activeProcessorCount) cores"
        log("aegis bench: \(setup)")
        var reports: [BenchReport] = []
        for test in testList {
            guard let operation = BenchWorkload.Operation(rawValue: test) else { continue }
            let workload = BenchWorkload(operation: operation, requests: requests, pipeline: pipeline,
                                         payload: Array(repeating: UInt8(ascii: "x"), count: dataSize), keyspace: keyspace,
                                         password: password ?? ProcessInfo.processInfo.environment["AEGIS_PASSWORD"])
            let report = try await runTest(workload)
            reports.append(report)
            if !json { print(report.text) }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(BenchOutput(setup: setup, results: reports)), as: UTF8.self))
        }
    }

    private func runTest(_ workload: BenchWorkload) async throws -> BenchReport {
        let tlsContext = try tls.clientContext()
        let progress = NIOLockedValueBox(0)
        let group = MultiThreadedEventLoopGroup.singleton
        let start = ContinuousClock.now
        var futures: [EventLoopFuture<ConnectionResult>] = []
        for index in 0 ..< clients {
            let quota = requests / clients + (index < requests % clients ? 1 : 0)
            guard quota > 0 else { continue }
            let (host, port) = try parseAddress(addresses[index % addresses.count])
            let loop = group.next()
            let done = loop.makePromise(of: ConnectionResult.self)
            futures.append(done.futureResult)
            let seed = UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15
            let connect = ClientBootstrap(group: loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tlsContext {
                            try channel.pipeline.syncOperations.addTLSClientHandler(context: tlsContext, host: host)
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            BenchConnectionHandler(workload: workload, quota: quota, seed: seed, progress: progress, done: done))
                    }
                }
                .connect(host: host, port: port)
            connect.whenFailure { error in
                done.fail(ToolError("cannot connect to \(host):\(port): \(error)"))
            }
        }
        let allFutures = futures
        let results = try await withThrowingTaskGroup(of: [ConnectionResult]?.self) { tasks in
            tasks.addTask {
                var results: [ConnectionResult] = []
                for future in allFutures { results.append(try await future.get()) }
                return results
            }
            tasks.addTask {
                var last = 0
                while true {
                    try await Task.sleep(for: .seconds(1))
                    let done = progress.withLockedValue { $0 }
                    let elapsed = ContinuousClock.now - start
                    log("\(workload.operation.rawValue.uppercased()): \(done)/\(workload.requests) sent, \(done - last) req/s now, "
                        + "\(Int(Double(done) / seconds(elapsed))) req/s overall")
                    last = done
                }
            }
            defer { tasks.cancelAll() }
            while let next = try await tasks.next() {
                if let results = next { return results }
            }
            return []
        }
        let elapsed = ContinuousClock.now - start
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var errors = 0
        var firstError: String?
        for result in results {
            histogram.add(result.latencies)
            errors += result.errors
            firstError = firstError ?? result.firstError
        }
        return BenchReport(test: workload.operation.rawValue.uppercased(), requests: workload.requests, seconds: seconds(elapsed),
                           histogram: histogram, errors: errors, firstError: firstError)
    }
}

extension BenchCommand {
    private func runFailover() async throws {
        let setup = "failover: servers \(addresses.joined(separator: ",")), \(clients) clients, \(duration) s, "
            + "request timeout \(requestTimeoutMs) ms, \(maxTries) tries, \(keysPerClient) keys per client, "
            + "\(ProcessInfo.processInfo.activeProcessorCount) cores"
        log("aegis bench: \(setup)")
        let workload = FailoverWorkload(
            servers: addresses, clients: clients, duration: .milliseconds(Int64(duration * 1000)), keysPerClient: keysPerClient,
            requestTimeout: .milliseconds(Int64(requestTimeoutMs)), maxTries: maxTries, rotationFile: rotationFile,
            maxRecords: maxRecords,
            password: password ?? ProcessInfo.processInfo.environment["AEGIS_PASSWORD"])
        let stop = NIOLockedValueBox(false)
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { stop.withLockedValue { $0 = true } }
            source.resume()
            sources.append(source)
        }
        defer { sources.forEach { $0.cancel() } }
        let start = ContinuousClock.now
        let results = await runFailoverWorkload(workload, tls: try tls.clientContext(), stop: stop)
        let report = FailoverReport(setup: setup, seconds: seconds(ContinuousClock.now - start), results: results, slowMillis: slowMs)
        if let recordsOut { try writeFailoverRecords(results, to: recordsOut) }
        if let ackedOut { try writeFailoverAcknowledged(results, to: ackedOut) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text)
        }
    }
}

/// A histogram of microseconds as milliseconds: p50, p90, p99, p99.9, max and mean.
func latencySummary(_ histogram: Histogram<UInt64>) -> [String: Double] {
    var latency: [String: Double] = [:]
    for (name, percentile) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)] {
        latency[name] = Double(histogram.valueAtPercentile(percentile)) / 1000
    }
    latency["max"] = Double(histogram.max) / 1000
    latency["mean"] = histogram.mean / 1000
    return latency
}

/// The figures of one test.
struct BenchReport: Encodable {
    var test: String
    var requests: Int
    var seconds: Double
    /// Requests answered without an error reply.
    var successful: Int
    /// Successful replies per second (errors are reported apart, never counted here).
    var requestsPerSecond: Double
    var errors: Int
    var firstError: String?
    /// Latency percentiles in milliseconds.
    var latencyMilliseconds: [String: Double]

    init(test: String, requests: Int, seconds: Double, histogram: Histogram<UInt64>, errors: Int, firstError: String?) {
        self.test = test
        self.requests = requests
        self.seconds = seconds
        self.successful = max(0, requests - errors)
        self.requestsPerSecond = seconds > 0 ? Double(successful) / seconds : 0
        self.errors = errors
        self.firstError = firstError
        self.latencyMilliseconds = latencySummary(histogram)
    }

    var text: String {
        func ms(_ name: String) -> String { String(format: "%.3f", latencyMilliseconds[name] ?? 0) }
        var lines = [
            "\(test): \(successful) of \(requests) requests answered without error in \(String(format: "%.2f", seconds)) s, \(Int(requestsPerSecond)) successful requests/s",
            "  latency of successful replies (ms): p50 \(ms("p50"))  p90 \(ms("p90"))  p99 \(ms("p99"))  p99.9 \(ms("p99.9"))  max \(ms("max"))",
        ]
        if errors > 0 { lines.append("  errors: \(errors), not counted above (first: \(firstError ?? "?"))") }
        return lines.joined(separator: "\n")
    }
}

struct BenchOutput: Encodable {
    var setup: String
    var results: [BenchReport]
}

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Progress and setup lines go to standard error, so `--json` output stays clean.
private func log(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
