import NIOCore

/// The commands of one read from a connection, answered together with one write.
struct RESPBatch: Sendable {
    /// The complete commands received, in order.
    var requests: [RESPRequest]
    /// Set when the input after `requests` was malformed or over a limit: the server
    /// answers `requests`, then replies this error and closes the connection.
    var protocolError: RESPProtocolError?
}

/// The replies to one `RESPBatch`, encoded.
struct RESPReplies: Sendable {
    /// The encoded replies.
    var buffer: ByteBuffer
    /// How many commands they answer.
    var count: Int
}

/// Groups the commands decoded from one read into a `RESPBatch` (so a pipeline is
/// answered with one write and one flush), counts commands not yet answered, and
/// turns decoding errors into a final batch that closes the connection.
final class RESPBatchHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPRequest
    typealias InboundOut = RESPBatch
    typealias OutboundIn = RESPReplies
    typealias OutboundOut = ByteBuffer

    private let maxPendingReplies: Int
    private var current: [RESPRequest] = []
    /// Commands passed on but not answered yet.
    private var pending = 0
    /// Set once the connection is being closed for a protocol error: input is ignored.
    private var failed = false

    init(maxPendingReplies: Int) {
        self.maxPendingReplies = maxPendingReplies
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        current.append(unwrapInboundIn(data))
        if pending + current.count > maxPendingReplies {
            current.removeLast()
            fail(context: context, RESPProtocolError(
                "more than \(maxPendingReplies) commands sent without reading their replies; read replies before sending more"))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !current.isEmpty { forward(context: context, RESPBatch(requests: current, protocolError: nil)) }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if failed, error is ByteToMessageDecoderError { return }  // input after the protocol error
        guard let protocolError = error as? RESPProtocolError else {
            context.fireErrorCaught(error)
            return
        }
        fail(context: context, protocolError)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let replies = unwrapOutboundIn(data)
        pending -= replies.count
        context.write(wrapOutboundOut(replies.buffer), promise: promise)
    }

    private func fail(context: ChannelHandlerContext, _ error: RESPProtocolError) {
        failed = true
        forward(context: context, RESPBatch(requests: current, protocolError: error))
        context.fireChannelReadComplete()
    }

    private func forward(context: ChannelHandlerContext, _ batch: RESPBatch) {
        pending += batch.requests.count
        current = []
        current.reserveCapacity(16)
        context.fireChannelRead(wrapInboundOut(batch))
    }
}
