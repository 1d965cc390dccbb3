import AegisServer
import Histogram
import NIOConcurrencyHelpers
import NIOCore

/// What one benchmark connection measured.
struct ConnectionResult: Sendable {
    var latencies: Histogram<UInt64>
    var errors: Int
    var firstError: String?
}

/// The workload of one benchmark run.
struct BenchWorkload: Sendable {
    enum Operation: String, Sendable, CaseIterable {
        case set, get
    }

    var operation: Operation
    var requests: Int
    var pipeline: Int
    var payload: [UInt8]
    var keyspace: UInt64
    var password: String?
}

/// Drives one connection on its event loop: keeps `pipeline` requests in flight
/// (sends a batch, waits for all its replies, sends the next, as redis-benchmark
/// does) until its quota is done, recording each request's latency in microseconds.
final class BenchConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let workload: BenchWorkload
    private var remaining: Int
    private let progress: NIOLockedValueBox<Int>
    private let done: EventLoopPromise<ConnectionResult>
    private var result = ConnectionResult(latencies: Histogram(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three),
                                          errors: 0)
    private var received = ByteBuffer()
    /// Replies still expected for the batch in flight (the AUTH reply counts too).
    private var outstanding = 0
    private var batchStart: ContinuousClock.Instant = .now
    /// Set while the AUTH reply is awaited; it is not measured.
    private var authenticating = false
    private var random: UInt64

    init(workload: BenchWorkload, quota: Int, seed: UInt64, progress: NIOLockedValueBox<Int>, done: EventLoopPromise<ConnectionResult>) {
        self.workload = workload
        self.remaining = quota
        self.progress = progress
        self.done = done
        self.random = seed | 1
    }

    func channelActive(context: ChannelHandlerContext) {
        if let password = workload.password {
            var buffer = context.channel.allocator.buffer(capacity: 64)
            buffer.writeRESPHeader(UInt8(ascii: "*"), 2)
            buffer.writeRESPBulk(Array("AUTH".utf8))
            buffer.writeRESPBulk(Array(password.utf8))
            outstanding = 1
            authenticating = true
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        } else {
            sendBatch(context: context)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        received.writeBuffer(&chunk)
        let now = ContinuousClock.now
        do {
            while outstanding > 0, let reply = try RESPValueParser.parse(&received) {
                outstanding -= 1
                if authenticating {
                    authenticating = false
                    if case .error(let text) = reply { throw ToolError("authentication failed: \(text)") }
                    continue
                }
                if case .error(let text) = reply {
                    // Errors are counted, never timed: the figures are of successful replies.
                    result.errors += 1
                    if result.firstError == nil { result.firstError = text }
                    continue
                }
                let elapsed = now - batchStart
                _ = result.latencies.record(UInt64(max(1, elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000)))
            }
        } catch {
            fail(context: context, error)
            return
        }
        received.discardReadBytes()
        if outstanding == 0 { sendBatch(context: context) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if remaining > 0 || outstanding > 0 {
            done.fail(ToolError("the server closed a connection with \(remaining + outstanding) requests left"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, error)
    }

    private func fail(context: ChannelHandlerContext, _ error: any Error) {
        done.fail(error)
        context.close(promise: nil)
    }

    /// Sends the next batch, or finishes when the quota is done.
    private func sendBatch(context: ChannelHandlerContext) {
        let count = min(workload.pipeline, remaining)
        guard count > 0 else {
            done.succeed(result)
            context.close(promise: nil)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: count * (workload.payload.count + 64))
        for _ in 0 ..< count { writeRequest(into: &buffer) }
        remaining -= count
        outstanding = count
        progress.withLockedValue { $0 += count }
        batchStart = .now
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    private func writeRequest(into buffer: inout ByteBuffer) {
        let number = xorshift64Star(&random) % workload.keyspace
        var key = Array("key:000000000000".utf8)
        var rest = number
        var index = key.count - 1
        while rest > 0 && index >= 4 {
            key[index] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
            index -= 1
        }
        switch workload.operation {
        case .set:
            buffer.writeStaticString("*3\r\n$3\r\nSET\r\n")
            buffer.writeRESPBulk(key)
            buffer.writeRESPBulk(workload.payload)
        case .get:
            buffer.writeStaticString("*2\r\n$3\r\nGET\r\n")
            buffer.writeRESPBulk(key)
        }
    }
}

/// xorshift64*: cheap and good enough to spread keys and servers (`state` must not be 0).
func xorshift64Star(_ state: inout UInt64) -> UInt64 {
    state ^= state >> 12
    state ^= state << 25
    state ^= state >> 27
    return state &* 2_685_821_657_736_338_717
}
