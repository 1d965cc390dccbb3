// Fuzz target: the change stream's wire decoder (`StreamFrame(decoding:limits:)`):
// header, checksum, decompression (every codec whose library loads, with the
// decompressed size bounded by the header) and the strict batch decoder of AegisKV.
// A frame that decodes must re-encode (without compression) to a frame that decodes
// to the same value. Frames of version 2 (active-active key-state batches,
// `ActiveActiveFrame`) go through the same checks.
internal import AegisStream

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let limits = StreamLimits(maxFrameBytes: 64 << 10, maxBatchBytes: 64 << 10, maxBatchEntries: 1_000)
    if let frame = try? ActiveActiveFrame(decoding: bytes, limits: limits) {
        let again: ActiveActiveFrame
        do {
            again = try ActiveActiveFrame(decoding: try frame.encoded(compression: .none), limits: limits)
        } catch {
            fatalError("a decoded active-active frame does not decode after re-encoding: \(error)")
        }
        precondition(again == frame, "active-active frame round trip changed it")
        return 0
    }
    guard let frame = try? StreamFrame(decoding: bytes, limits: limits) else { return 0 }
    let again: StreamFrame
    do {
        again = try StreamFrame(decoding: try frame.encoded(compression: .none), limits: limits)
    } catch {
        fatalError("a decoded frame does not decode after re-encoding: \(error)")
    }
    precondition(again == frame, "frame round trip changed it")
    return 0
}
