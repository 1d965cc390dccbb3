// Fuzz target: the peer wire codec (`readMessageFrame` and the handshake frames) on
// an arbitrary byte stream, as a hostile peer would send it.
//
// Checks, besides "no trap, no ASan report":
// - a frame that decodes re-encodes to a frame that decodes to the same value;
// - a decoder that returns nil consumes nothing, and one that returns a frame
//   consumes exactly the declared length.
internal import AegisRaft
internal import NIOCore
@testable internal import TransportCodec

/// Small enough that the fuzzer reaches the limit, large enough for real messages.
private let maximumFrameSize = 1 << 16

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    var frames = 0
    while buffer.readableBytes > 0 && frames < 256 {
        let before = buffer.readerIndex
        let declared = buffer.getInteger(at: before, as: UInt32.self).map(Int.init)
        let frame: Frame?
        do { frame = try buffer.readFrame(maximumFrameSize: maximumFrameSize) } catch { break }
        guard let frame else {
            precondition(buffer.readerIndex == before, "an incomplete frame consumed bytes")
            break
        }
        precondition(buffer.readerIndex - before == 4 + (declared ?? -1), "a frame consumed other than its length")
        frames += 1
        switch frame {
        case .message(let message): checkRoundTrip(message)
        case .handshake(let handshake):
            var out = ByteBuffer()
            out.writeHandshakeFrame(handshake)
            guard case .handshake(let again)? = try? out.readFrame(maximumFrameSize: Int.max) else {
                fatalError("a handshake does not survive re-encoding: \(handshake)")
            }
            precondition(again == handshake, "handshake round trip: \(handshake) != \(again)")
        case .handshakeAccepted, .handshakeRefused:
            break
        }
    }
    // The public entry point the peer handler uses, on the same bytes.
    var again = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    for _ in 0..<256 {
        guard let message = try? again.readMessageFrame(maximumFrameSize: maximumFrameSize) else { break }
        _ = message.raftMessage
    }
    return 0
}

private func checkRoundTrip(_ message: Message) {
    var out = ByteBuffer()
    let written = out.writeMessageFrame(message)
    precondition(written == out.readableBytes, "writeMessageFrame reported \(written) bytes, wrote \(out.readableBytes)")
    let decoded: Message?
    do { decoded = try out.readMessageFrame(maximumFrameSize: Int.max) } catch {
        fatalError("a decoded message does not decode after re-encoding: \(error); \(message)")
    }
    precondition(decoded == message, "round trip changed the message:\n\(message)\n\(String(describing: decoded))")
    precondition(out.readableBytes == 0, "re-encoded frame left \(out.readableBytes) bytes")
    if let raft = message.raftMessage { precondition(Message(raft) == message, "raftMessage does not wrap back") }
}
