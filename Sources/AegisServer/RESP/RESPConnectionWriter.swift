import Logging
import NIOCore

/// Sends a connection's replies and enforces its output buffer limits
/// (`RESPLimits.outputBufferSoftLimit`, `outputBufferSoftSeconds`,
/// `outputBufferHardLimit`): replies are written as soon as a batch produced a
/// buffer's worth; above the soft limit the session waits for the client to read, and
/// the connection is closed when it stays there too long or goes above the hard limit.
struct RESPConnectionWriter: RESPReplyOutput {
    let channel: any Channel
    let meter: RESPOutputMeter
    let limits: RESPLimits
    let metrics: RESPMetrics
    let logger: Logger
    /// Set once a limit was hit: the connection must close, nothing more is sent.
    private(set) var overLimit = false
    /// Replies are sent mid-batch once this many bytes are ready.
    static let flushBytes = 64 << 10

    init(channel: any Channel, meter: RESPOutputMeter, limits: RESPLimits, metrics: RESPMetrics, logger: Logger) {
        self.channel = channel
        self.meter = meter
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
    }

    mutating func offer(_ buffer: inout ByteBuffer, replies: inout Int) async -> Bool {
        guard buffer.readableBytes >= Self.flushBytes else {
            overLimit = overLimit || !withinHardLimit(holding: buffer.readableBytes)
            return !overLimit
        }
        return await send(&buffer, replies: &replies)
    }

    mutating func flush(_ buffer: inout ByteBuffer, replies: inout Int) async -> Bool {
        await send(&buffer, replies: &replies)
    }

    /// Writes the replies in `buffer` and empties it, then waits while the client has
    /// more than the soft limit unread. `false` when the connection must close.
    mutating func send(_ buffer: inout ByteBuffer, replies: inout Int) async -> Bool {
        guard !overLimit else { return false }
        guard withinHardLimit(holding: buffer.readableBytes) else {
            overLimit = true
            return false
        }
        if buffer.readableBytes > 0 || replies > 0 {
            channel.writeAndFlush(RESPReplies(buffer: buffer, count: replies), promise: nil)
        }
        buffer = channel.allocator.buffer(capacity: 0)
        replies = 0
        overLimit = await !waitUnderSoftLimit()
        return !overLimit
    }

    /// `false` (after logging and counting) when the unread replies plus `holding`
    /// bytes about to be sent are over the hard limit.
    private func withinHardLimit(holding: Int) -> Bool {
        let queued = meter.queuedBytes + holding
        guard queued > limits.outputBufferHardLimit else { return true }
        metrics.recordLimitClose("output_buffer_hard")
        logger.info("closing a client that does not read its replies: over the output buffer hard limit",
                    metadata: ["unread-bytes": "\(queued)", "limit": "\(limits.outputBufferHardLimit)"])
        return false
    }

    private func waitUnderSoftLimit() async -> Bool {
        let soft = limits.outputBufferSoftLimit
        guard soft > 0, meter.queuedBytes > soft else { return true }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(limits.outputBufferSoftSeconds)
        while meter.queuedBytes > soft {
            guard clock.now < deadline, channel.isActive else {
                metrics.recordLimitClose("output_buffer_soft")
                logger.info("closing a client that does not read its replies: over the output buffer soft limit for too long",
                            metadata: ["unread-bytes": "\(meter.queuedBytes)", "limit": "\(soft)",
                                       "seconds": "\(limits.outputBufferSoftSeconds)"])
                return false
            }
            do { try await clock.sleep(for: .milliseconds(10)) } catch { return false }
        }
        return true
    }
}
