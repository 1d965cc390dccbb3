import AegisKV
@testable import AegisServer
import Foundation
import Prometheus
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client on a plain socket, driven from its own thread, so a test can
/// be a client that never reads (or reads on its own schedule) without tying up the
/// Swift concurrency pool that the server's sessions run on.
final class SocketClient: @unchecked Sendable {
    let fd: Int32

    /// Connects to 127.0.0.1:`port`; `receiveBuffer` shrinks the kernel's receive
    /// buffer (set before connecting) so a client that never reads stops the server's
    /// writes early.
    init(port: Int, receiveBuffer: Int32? = nil) throws {
        #if canImport(Glibc)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw TestFailure("connect() failed: errno \(errno)")
        }
    }

    deinit { close(fd) }

    /// Sends all of `bytes`; `false` if the connection failed first.
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Reads until `done` says the bytes so far are enough, the peer closes, or an
    /// error or the 10 s timeout; returns the bytes and whether the connection ended.
    func receive(until done: ([UInt8]) -> Bool = { _ in false }, limit: Int = 256 << 20) -> (bytes: [UInt8], ended: Bool) {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while !done(received) && received.count < limit {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return (received, true) }
            if count < 0 { return (received, errno != EAGAIN && errno != EWOULDBLOCK) }
            received.append(contentsOf: chunk[0 ..< count])
        }
        return (received, false)
    }

    /// Sends `command` and waits for a reply ending in CRLF.
    func call(_ command: String) -> String {
        guard send(command) else { return "(send failed)" }
        let reply = receive { $0.count >= 2 && $0.suffix(2) == [13, 10] }
        return String(decoding: reply.bytes, as: UTF8.self)
    }
}

/// Runs `body` on a new thread (blocking socket calls stay off the concurrency pool).
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// This process's resident set size, from /proc/self/status (0 where unavailable).
func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kilobytes * 1024
}

/// Samples the RSS every 10 ms while `body` runs; returns the peak growth over the
/// RSS before it, in bytes.
func peakRSSGrowth(during body: () async throws -> Void) async rethrows -> Int {
    let before = residentBytes()
    let peak = PeakBox()
    let sampler = Task {
        while !Task.isCancelled {
            peak.note(residentBytes())
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
    defer { sampler.cancel() }
    try await body()
    peak.note(residentBytes())
    return max(0, peak.value - before)
}

final class PeakBox: @unchecked Sendable {
    private let lock = NSLock()
    private var peak = 0
    func note(_ value: Int) { lock.withLock { peak = max(peak, value) } }
    var value: Int { lock.withLock { peak } }
}

/// Each memory limit of the RESP server at its door, on a live server on 127.0.0.1:
/// the limit holds, the process stays under a stated RSS bound, and other clients
/// keep being answered.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ResourceLimitTests {
    let backend = FakeBackend()

    static let mebibyte = 1 << 20

    private func configuration(_ update: (inout RESPLimits) -> Void) -> RESPServerConfiguration {
        var limits = RESPLimits()
        update(&limits)
        return RESPServerConfiguration(port: 0, limits: limits)
    }

    @Test func test_maxClients_refusesTheExtraConnection_othersKeepBeingAnswered() async throws {
        let registry = PrometheusCollectorRegistry()
        try await withRESPServer(backend: backend, configuration: configuration { $0.maxClients = 3 }, registry: registry) { port in
            let replies = try await onThread { () -> Result<[String], TestFailure> in
                do {
                    let clients = try (0 ..< 3).map { _ in try SocketClient(port: port) }
                    var replies = clients.map { $0.call("PING\r\n") }  // all three are being served
                    let extra = try SocketClient(port: port)
                    let refused = extra.receive()
                    replies.append(String(decoding: refused.bytes, as: UTF8.self) + (refused.ended ? "(closed)" : "(open)"))
                    replies.append(clients[0].call("ECHO still-here\r\n"))
                    return .success(replies)
                } catch {
                    return .failure(error as? TestFailure ?? TestFailure("\(error)"))
                }
            }.get()
            #expect(replies == ["+PONG\r\n", "+PONG\r\n", "+PONG\r\n", "-ERR max number of clients reached\r\n(closed)",
                                "$10\r\nstill-here\r\n"])
            // Once a client leaves, a new one is served.
            let later = await onThread { () -> String in
                for _ in 0 ..< 100 {
                    if let client = try? SocketClient(port: port) {
                        let reply = client.call("PING\r\n")
                        if reply == "+PONG\r\n" { return reply }
                    }
                    usleep(20_000)
                }
                return "never served"
            }
            #expect(later == "+PONG\r\n")
        }
        let metrics = registry.emitToString()
        #expect(metrics.contains(#"aegis_resp_limit_closes_total{limit="max_clients"}"#)
                && !metrics.contains(#"aegis_resp_limit_closes_total{limit="max_clients"} 0"#))
    }

    @Test func test_outputBuffer_clientThatNeverReads_isClosed_memoryStaysBounded() async throws {
        let value = [UInt8](repeating: 0x61, count: Self.mebibyte)
        _ = try await backend.execute(.set("big", value))
        let registry = PrometheusCollectorRegistry()
        let config = configuration {
            $0.outputBufferSoftLimit = 4 * Self.mebibyte
            $0.outputBufferSoftSeconds = 1
            $0.outputBufferHardLimit = 32 * Self.mebibyte
        }
        let started = ContinuousClock.now
        let growth = try await peakRSSGrowth {
            try await withRESPServer(backend: backend, configuration: config, registry: registry) { port in
                let outcome = await onThread { () -> (others: [String], ended: Bool, received: Int) in
                    guard let reader = try? SocketClient(port: port),
                          let silent = try? SocketClient(port: port, receiveBuffer: 64 << 10) else { return ([], false, 0) }
                    // 3,000 pipelined GETs of a 1 MiB value (66 KB sent): 3 GB of replies if buffered.
                    _ = silent.send(String(repeating: "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n", count: 3000))
                    var others: [String] = []
                    // The other client is answered while the silent one is being cut off.
                    for _ in 0 ..< 20 {
                        others.append(reader.call("PING\r\n"))
                        usleep(100_000)
                    }
                    // Now read the silent connection: what the server sent, then the end.
                    let drained = silent.receive()
                    return (others, drained.ended, drained.bytes.count)
                }
                #expect(outcome.others == Array(repeating: "+PONG\r\n", count: 20))
                #expect(outcome.ended, "the server must close a client that does not read its replies")
                #expect(outcome.received < 64 * Self.mebibyte, "received \(outcome.received) bytes")
            }
        }
        print("output buffer test: peak RSS growth \(growth / Self.mebibyte) MiB in \(ContinuousClock.now - started)")
        #expect(growth < 256 * Self.mebibyte, "peak RSS growth \(growth / Self.mebibyte) MiB")
        let metrics = registry.emitToString()
        #expect(metrics.contains(#"aegis_resp_limit_closes_total{limit="output_buffer_soft"} 1"#)
                || metrics.contains(#"aegis_resp_limit_closes_total{limit="output_buffer_hard"} 1"#),
                "\(metrics.split(separator: "\n").filter { $0.contains("limit_closes") || $0.contains("connections") })")
    }

    @Test func test_outputBuffer_hardLimit_closesAtOnce() async throws {
        let value = [UInt8](repeating: 0x62, count: Self.mebibyte)
        for index in 0 ..< 8 { _ = try await backend.execute(.set(Key("k\(index)"), value)) }
        let registry = PrometheusCollectorRegistry()
        let config = configuration {
            $0.outputBufferSoftLimit = 0
            $0.outputBufferHardLimit = 4 * Self.mebibyte
        }
        try await withRESPServer(backend: backend, configuration: config, registry: registry) { port in
            let ended = await onThread { () -> Bool in
                guard let client = try? SocketClient(port: port, receiveBuffer: 64 << 10) else { return false }
                // One MGET reply of 8 MiB is over the 4 MiB hard limit.
                _ = client.send("*9\r\n$4\r\nMGET\r\n" + (0 ..< 8).map { "$2\r\nk\($0)\r\n" }.joined())
                usleep(300_000)
                return client.receive().ended
            }
            #expect(ended)
        }
        #expect(registry.emitToString().contains(#"aegis_resp_limit_closes_total{limit="output_buffer_hard"} 1"#))
    }

    @Test func test_partialRequests_globalCap_closesTheConnectionOverIt_othersAnswered() async throws {
        let registry = PrometheusCollectorRegistry()
        let config = configuration {
            $0.maxValueSize = 8 * Self.mebibyte
            $0.maxPartialRequestBytesTotal = 16 * Self.mebibyte
        }
        let growth = try await peakRSSGrowth {
            try await withRESPServer(backend: backend, configuration: config, registry: registry) { port in
                let outcome = await onThread { () -> (holders: [Bool], refused: [String], ping: String, completed: [String]) in
                    let header = "*2\r\n$4\r\nECHO\r\n$\(8 * Self.mebibyte)\r\n"
                    let part = [UInt8](repeating: 0x63, count: 6 * Self.mebibyte)
                    guard let reader = try? SocketClient(port: port) else { return ([], [], "", []) }
                    var holders: [SocketClient] = []
                    var sent: [Bool] = []
                    for _ in 0 ..< 4 {
                        guard let client = try? SocketClient(port: port) else { return ([], [], "", []) }
                        sent.append(client.send(Array(header.utf8) + part))
                        holders.append(client)
                        usleep(200_000)  // let the server take it in
                    }
                    // Two unfinished 6 MiB commands fit in 16 MiB; the third and fourth do not.
                    let refused = holders[2...].map { client -> String in
                        let reply = client.receive()
                        return String(decoding: reply.bytes.prefix(200), as: UTF8.self) + (reply.ended ? "(closed)" : "(open)")
                    }
                    let ping = reader.call("PING\r\n")
                    // The first two finish their commands and are answered.
                    let rest = [UInt8](repeating: 0x63, count: 2 * Self.mebibyte) + Array("\r\n".utf8)
                    let completed = holders[..<2].map { client -> String in
                        _ = client.send(rest)
                        let reply = client.receive { $0.count >= 8 * Self.mebibyte + 12 }.bytes
                        return String(decoding: reply.prefix(10), as: UTF8.self) + " \(reply.count)"
                    }
                    return (sent, refused, ping, completed)
                }
                #expect(outcome.ping == "+PONG\r\n")
                #expect(outcome.completed == Array(repeating: "$8388608\r\n \(8 * Self.mebibyte + 12)", count: 2))
                for reply in outcome.refused {
                    // The error may be lost to a reset while the client is still sending;
                    // the connection is closed either way.
                    #expect(reply.hasSuffix("(closed)"), "\(reply)")
                    #expect(reply == "(closed)" || reply.hasPrefix("-ERR Protocol error: unfinished commands of all clients"), "\(reply)")
                }
            }
        }
        print("partial request test: peak RSS growth \(growth / Self.mebibyte) MiB")
        #expect(growth < 200 * Self.mebibyte, "peak RSS growth \(growth / Self.mebibyte) MiB")
        #expect(registry.emitToString().contains(#"aegis_resp_limit_closes_total{limit="partial_requests"} 2"#))
    }

    @Test func test_valueJustOverTheMax_isRefusedAtOnce_neverReachesTheBackend() async throws {
        let config = configuration { $0.maxValueSize = Self.mebibyte }
        let executedBefore = await backend.executedCount
        try await withRESPServer(backend: backend, configuration: config) { port in
            let replies = await onThread { () -> [String] in
                guard let client = try? SocketClient(port: port) else { return [] }
                let limit = Self.mebibyte
                // The header alone is answered at once, before the value is sent.
                _ = client.send("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$\(limit + 1)\r\n")
                let refusal = String(decoding: client.receive { $0.suffix(2) == [13, 10] }.bytes, as: UTF8.self)
                // The value's bytes are skipped; the connection stays in sync.
                _ = client.send([UInt8](repeating: 0x64, count: limit + 1) + Array("\r\n".utf8))
                let atLimit = client.call("*3\r\n$3\r\nSET\r\n$2\r\nok\r\n$\(limit)\r\n" + String(repeating: "e", count: limit) + "\r\n")
                let get = client.call("*2\r\n$6\r\nEXISTS\r\n$3\r\nbig\r\n")
                return [refusal, atLimit, get]
            }
            #expect(replies.count == 3)
            #expect(replies.first?.hasPrefix("-ERR value too large: an argument of 1048577 bytes is over the limit of 1048576 bytes") == true)
            #expect(Array(replies.dropFirst()) == ["+OK\r\n", ":0\r\n"])
        }
        #expect(await backend.executedCount == executedBefore + 1)  // only the SET at the limit
        #expect(await backend.largestCommandBytes < Self.mebibyte + 64)
    }
}
