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

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let start = buffer.readerIndex
        guard let frame = try buffer.readFrame(maximumFrameSize: maximumFrameSize) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(ReceivedFrame(frame: frame, size: buffer.readerIndex - start)))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial frame at the end of the stream is discarded: the peer went away mid-frame.
        try decode(context: context, buffer: &buffer)
    }
}
