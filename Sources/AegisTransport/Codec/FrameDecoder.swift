internal import NIOCore

/// Splits a byte stream into frames. Returns `.needMoreData` for a partial frame and
/// throws `CodecError` for a malformed one (the pipeline then closes the connection).
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = Frame

    /// The largest frame accepted (length prefix excluded).
    let maximumFrameSize: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try buffer.readFrame(maximumFrameSize: maximumFrameSize) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial frame at end of stream is discarded: the peer went away mid-frame.
        try decode(context: context, buffer: &buffer)
    }
}
