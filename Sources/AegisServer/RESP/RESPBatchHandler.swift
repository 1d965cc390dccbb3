import NIOConcurrencyHelpers
import NIOCore

/// The commands of one read from a connection, answered together.
struct RESPBatch: Sendable {
    /// The complete commands received, in order.
    var requests: [RESPRequest]
    /// Set when the input after `requests` was malformed or over a limit: the server
    /// answers `requests`, then replies this error and closes the connection.
    var protocolError: RESPProtocolError?
}

/// Encoded replies on their way to the client.
struct RESPReplies: Sendable {
    /// The encoded replies.
    var buffer: ByteBuffer
    /// How many commands they answer.
    var count: Int
}

/// The bytes of replies a connection wrote that the socket has not taken yet (the
/// client has not read them): what `RESPLimits`'s output buffer limits bound.
final class RESPOutputMeter: Sendable {
    private let queued = NIOLockedValueBox(0)

    /// Bytes written and not yet sent.
    var queuedBytes: Int { queued.withLockedValue { $0 } }

    func add(_ bytes: Int) { queued.withLockedValue { $0 += bytes } }
}

/// Groups the commands decoded from one read into a `RESPBatch` (so a pipeline is
/// answered with few writes), counts commands not answered yet and stops reading the
/// socket while there are too many of them (back-pressure), counts reply bytes not
/// sent yet, and turns decoding errors into a final batch that closes the connection.
final class RESPBatchHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPRequest
    typealias InboundOut = RESPBatch
    typealias OutboundIn = RESPReplies
    typealias OutboundOut = ByteBuffer

    private let maxPendingCommands: Int
    private let maxPendingBytes: Int
    private let meter: RESPOutputMeter
    private var current: [RESPRequest] = []
    private var currentBytes = 0
    /// Batches passed on and not fully answered, oldest first: commands not answered
    /// yet and the bytes of the whole batch (released once it is fully answered).
    private var unanswered: [(commands: Int, bytes: Int)] = []
    private var firstUnanswered = 0
    /// Commands passed on but not answered yet.
    private var pendingCommands = 0
    /// Bytes of the batches not fully answered yet.
    private var pendingBytes = 0
    /// A read was asked for while over a limit; it is issued once under them again.
    private var readHeld = false
    /// Set once the connection is being closed for a protocol error: input is ignored.
    private var failed = false

    init(maxPendingCommands: Int, maxPendingBytes: Int, meter: RESPOutputMeter = RESPOutputMeter()) {
        self.maxPendingCommands = maxPendingCommands
        self.maxPendingBytes = maxPendingBytes
        self.meter = meter
    }

    private var overLimit: Bool { pendingCommands >= maxPendingCommands || pendingBytes >= maxPendingBytes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let request = unwrapInboundIn(data)
        current.append(request)
        for argument in request.arguments { currentBytes += argument.readableBytes }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !current.isEmpty { forward(context: context, RESPBatch(requests: current, protocolError: nil)) }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if overLimit {
            readHeld = true
        } else {
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if failed, error is ByteToMessageDecoderError { return }  // input after the protocol error
        guard let protocolError = error as? RESPProtocolError else {
            context.fireErrorCaught(error)
            return
        }
        failed = true
        forward(context: context, RESPBatch(requests: current, protocolError: protocolError))
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let replies = unwrapOutboundIn(data)
        answered(replies.count)
        let bytes = replies.buffer.readableBytes
        meter.add(bytes)
        let written = promise ?? context.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { [meter] _ in meter.add(-bytes) }
        context.write(wrapOutboundOut(replies.buffer), promise: written)
        if readHeld && !overLimit {
            readHeld = false
            context.read()
        }
    }

    /// Marks the oldest `count` pending commands answered.
    private func answered(_ count: Int) {
        var left = count
        while left > 0 && firstUnanswered < unanswered.count {
            let take = min(left, unanswered[firstUnanswered].commands)
            unanswered[firstUnanswered].commands -= take
            pendingCommands -= take
            left -= take
            if unanswered[firstUnanswered].commands == 0 {
                pendingBytes -= unanswered[firstUnanswered].bytes
                firstUnanswered += 1
            }
        }
        if firstUnanswered == unanswered.count {
            unanswered.removeAll(keepingCapacity: true)
            firstUnanswered = 0
        } else if firstUnanswered >= 64 && firstUnanswered * 2 >= unanswered.count {
            unanswered.removeFirst(firstUnanswered)
            firstUnanswered = 0
        }
    }

    private func forward(context: ChannelHandlerContext, _ batch: RESPBatch) {
        pendingCommands += batch.requests.count
        pendingBytes += currentBytes
        if !batch.requests.isEmpty { unanswered.append((batch.requests.count, currentBytes)) }
        current = []
        currentBytes = 0
        current.reserveCapacity(16)
        context.fireChannelRead(wrapInboundOut(batch))
    }
}
