// Fuzz target: the RESP request decoder (server side) and the RESP value parser
// (client side) on arbitrary bytes.
//
// Checks, besides "no trap, no ASan report":
// - the decoder gives the same commands and the same verdict (error or not) whether
//   the bytes arrive at once or in pieces (the piece sizes come from the input);
// - every command has at least one argument, and the decoder never consumes bytes
//   it did not return (the reader index only moves forward), and a command refused
//   for its size (`refusal`) keeps at most its name;
// - the same input against tight limits never returns an argument over the limits.
internal import NIOCore
@testable internal import RESPDecoder

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    // The first byte picks the chunk size for the piecewise run; the rest is the stream.
    let chunk = Int(data[0] % 16) + 1
    let bytes = UnsafeBufferPointer(start: data + 1, count: size - 1)

    let whole = decodeAll(bytes, chunk: bytes.count, limits: RESPLimits())
    let pieces = decodeAll(bytes, chunk: chunk, limits: RESPLimits())
    if whole.requests != pieces.requests || whole.failed != pieces.failed {
        fatalError("RESP decoder: chunked (\(chunk)) and whole decoding differ: "
                   + "\(whole.requests.count)/\(whole.failed) vs \(pieces.requests.count)/\(pieces.failed)")
    }

    let tight = RESPLimits(maxValueSize: 16, maxRequestBytes: 64, maxBulkLength: 32, maxArrayLength: 4,
                           maxInlineLength: 32)
    let limited = decodeAll(bytes, chunk: chunk, limits: tight)
    for request in limited.requests {
        // At most 4 bulk strings, or the words of a 32-byte inline line.
        precondition(request.arguments.count <= 16, "\(request.arguments.count) arguments passed limits \(tight)")
        for argument in request.arguments where argument.count > max(tight.maxValueSize, tight.maxInlineLength) {
            fatalError("argument of \(argument.count) bytes passed limits \(tight)")
        }
    }

    // The client-side parser: every complete value in the stream.
    var buffer = ByteBuffer(bytes: bytes)
    var values = 0
    while values < 1024 {
        let before = buffer.readerIndex
        guard let parsed = try? RESPValueParser.parse(&buffer), parsed != nil else { break }
        precondition(buffer.readerIndex > before, "the value parser returned a value without consuming bytes")
        values += 1
    }
    return 0
}

/// Feeds `bytes` to a decoder `chunk` bytes at a time, as a socket would, and collects
/// the commands until the decoder throws or the input ends.
private func decodeAll(_ bytes: UnsafeBufferPointer<UInt8>, chunk: Int,
                       limits: RESPLimits) -> (requests: [Decoded], failed: Bool) {
    var decoder = RESPRequestDecoder(limits: limits)
    var buffer = ByteBufferAllocator().buffer(capacity: 0)
    var requests: [Decoded] = []
    var offset = 0
    repeat {
        let end = min(offset + max(chunk, 1), bytes.count)
        if end > offset { buffer.writeBytes(UnsafeBufferPointer(rebasing: bytes[offset..<end])) }
        offset = end
        while true {
            let before = buffer.readerIndex
            let request: RESPRequest?
            do { request = try decoder.next(from: &buffer) } catch { return (requests, true) }
            precondition(buffer.readerIndex >= before, "the decoder moved the reader index backwards")
            guard let request else { break }
            precondition(!request.arguments.isEmpty || request.refusal != nil, "a command without arguments")
            precondition(request.refusal == nil || request.arguments.count <= 1, "a refused command kept its arguments")
            requests.append(Decoded(arguments: request.arguments.map { Array($0.readableBytesView) },
                                    refusal: request.refusal))
        }
        // Like ByteToMessageHandler, drop what was consumed now and then.
        if buffer.readerIndex > 64 { buffer.discardReadBytes() }
    } while offset < bytes.count
    return (requests, false)
}

/// A decoded command, comparable across runs.
private struct Decoded: Equatable {
    var arguments: [[UInt8]]
    var refusal: String?
}
