internal import NIOCore

/// A decoded frame and the number of bytes it occupied on the wire.
struct ReceivedFrame {
    var frame: Frame
    var size: Int
}

/// Splits a byte stream into frames. Returns `.needMoreData` for a partial frame and
/// throws `CodecError` for a malformed one (the handler then closes the connection).
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ReceivedFrame

    /// The largest frame accepted (length prefix excluded).
    let maximumFrameSize: Int
    /// `true` until the first frame was decoded. The first frame on a connection is a
    /// step of the handshake, which is small: it is held to
    /// `WireFormat.maximumHandshakeFrameSize`, so a connection that has not identified
    /// itself can make the node buffer at most that much.
    private var awaitingFirstFrame = true

    init(maximumFrameSize: Int) {
        self.maximumFrameSize = maximumFrameSize
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let start = buffer.readerIndex
        let limit = awaitingFirstFrame ? min(maximumFrameSize, WireFormat.maximumHandshakeFrameSize) : maximumFrameSize
        guard let frame = try buffer.readFrame(maximumFrameSize: limit) else { return .needMoreData }
        awaitingFirstFrame = false
        context.fireChannelRead(Self.wrapInboundOut(ReceivedFrame(frame: frame, size: buffer.readerIndex - start)))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial frame at the end of the stream is discarded: the peer went away mid-frame.
        try decode(context: context, buffer: &buffer)
    }
}
