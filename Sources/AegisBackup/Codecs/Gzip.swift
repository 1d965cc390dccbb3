/// zlib's deflate/inflate with a gzip wrapper (window bits 15 + 16), loaded at run time.
/// Output is a gzip member, readable by `gzip -d`; input may hold several members
/// (as `cat a.gz b.gz` does).
struct ZlibLibrary: @unchecked Sendable {
    typealias Version = @convention(c) () -> UnsafePointer<CChar>?
    typealias DeflateInit2 = @convention(c) (UnsafeMutableRawPointer, Int32, Int32, Int32, Int32, Int32, UnsafePointer<CChar>?, Int32) -> Int32
    typealias InflateInit2 = @convention(c) (UnsafeMutableRawPointer, Int32, UnsafePointer<CChar>?, Int32) -> Int32
    typealias Step = @convention(c) (UnsafeMutableRawPointer, Int32) -> Int32
    typealias End = @convention(c) (UnsafeMutableRawPointer) -> Int32

    let version: Version, deflateInit2: DeflateInit2, deflate: Step, deflateEnd: End
    let inflateInit2: InflateInit2, inflate: Step, inflateEnd: End, inflateReset: End

    static let loaded: Result<ZlibLibrary, BackupError> = Result { () throws(BackupError) in
        guard MemoryLayout<Int>.size == 8 else {
            throw .codecUnavailable(codec: "gzip", detail: "only 64-bit platforms are supported (z_stream layout)")
        }
        let lib = try NativeLibrary(codec: "gzip", names: ["libz.so.1", "libz.so", "libz.1.dylib", "libz.dylib"])
        return ZlibLibrary(
            version: try lib.function("zlibVersion", as: Version.self),
            deflateInit2: try lib.function("deflateInit2_", as: DeflateInit2.self),
            deflate: try lib.function("deflate", as: Step.self),
            deflateEnd: try lib.function("deflateEnd", as: End.self),
            inflateInit2: try lib.function("inflateInit2_", as: InflateInit2.self),
            inflate: try lib.function("inflate", as: Step.self),
            inflateEnd: try lib.function("inflateEnd", as: End.self),
            inflateReset: try lib.function("inflateReset", as: End.self))
    }
}

/// A `z_stream` in raw memory at the LP64 offsets of zlib.h (112 bytes): Swift does
/// not promise C layout for its structs, so the fields are read and written by offset.
struct ZStream {
    static let size = 112
    let raw: UnsafeMutableRawPointer

    init() {
        raw = UnsafeMutableRawPointer.allocate(byteCount: Self.size, alignment: 8)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: Self.size)
    }

    func deallocate() { raw.deallocate() }

    func setInput(_ pointer: UnsafeRawPointer?, count: Int) {
        raw.storeBytes(of: pointer, toByteOffset: 0, as: UnsafeRawPointer?.self)
        raw.storeBytes(of: UInt32(count), toByteOffset: 8, as: UInt32.self)
    }

    var availableIn: Int { Int(raw.load(fromByteOffset: 8, as: UInt32.self)) }

    func setOutput(_ pointer: UnsafeMutableRawPointer?, count: Int) {
        raw.storeBytes(of: pointer, toByteOffset: 24, as: UnsafeMutableRawPointer?.self)
        raw.storeBytes(of: UInt32(count), toByteOffset: 32, as: UInt32.self)
    }

    var availableOut: Int { Int(raw.load(fromByteOffset: 32, as: UInt32.self)) }

    var message: String? {
        raw.load(fromByteOffset: 48, as: UnsafePointer<CChar>?.self).map { String(cString: $0) }
    }
}

/// zlib return codes and flush values used here.
enum Zlib {
    static let ok: Int32 = 0, streamEnd: Int32 = 1, bufError: Int32 = -5
    static let noFlush: Int32 = 0, finish: Int32 = 4
    static let gzipWindowBits: Int32 = 15 + 16
}

final class GzipCompressor: StreamCompressor {
    private let lib: ZlibLibrary
    private let stream = ZStream()
    private let file: String

    init(level: Int, file: String) throws(BackupError) {
        lib = try ZlibLibrary.loaded.get()
        self.file = file
        let result = lib.deflateInit2(stream.raw, Int32(clamping: level), 8 /* Z_DEFLATED */, Zlib.gzipWindowBits,
                                      8, 0 /* Z_DEFAULT_STRATEGY */, lib.version(), Int32(ZStream.size))
        if result != Zlib.ok {
            stream.deallocate()
            throw .codecFailure(codec: "gzip", file: file, detail: "deflateInit2 returned \(result)")
        }
    }

    deinit {
        _ = lib.deflateEnd(stream.raw)
        stream.deallocate()
    }

    func compress(_ input: [UInt8], final: Bool, _ sink: ([UInt8]) throws(BackupError) -> Void) throws(BackupError) {
        var output = [UInt8](repeating: 0, count: codecOutputChunk)
        var position = 0
        while true {
            let (result, consumed, produced) = input.withUnsafeBytes { inRaw in
                output.withUnsafeMutableBytes { outRaw in
                    let piece = min(inRaw.count - position, Int(UInt32.max))
                    stream.setInput(inRaw.baseAddress.map { UnsafeRawPointer($0 + position) }, count: piece)
                    stream.setOutput(outRaw.baseAddress, count: outRaw.count)
                    let r = lib.deflate(stream.raw, final ? Zlib.finish : Zlib.noFlush)
                    return (r, piece - stream.availableIn, outRaw.count - stream.availableOut)
                }
            }
            if result != Zlib.ok && result != Zlib.streamEnd && result != Zlib.bufError {
                throw .codecFailure(codec: "gzip", file: file, detail: stream.message ?? "deflate returned \(result)")
            }
            position += consumed
            if produced > 0 { try sink(Array(output[0..<produced])) }
            if final ? result == Zlib.streamEnd : (position == input.count && produced < output.count) { break }
        }
    }
}

final class GzipDecompressor: StreamDecompressor {
    private let lib: ZlibLibrary
    private let stream = ZStream()
    private let file: String
    /// Whether the last member ended (`Z_STREAM_END`) with nothing after it yet.
    private var memberEnded = false
    private var sawInput = false

    init(file: String) throws(BackupError) {
        lib = try ZlibLibrary.loaded.get()
        self.file = file
        let result = lib.inflateInit2(stream.raw, Zlib.gzipWindowBits, lib.version(), Int32(ZStream.size))
        if result != Zlib.ok {
            stream.deallocate()
            throw .codecFailure(codec: "gzip", file: file, detail: "inflateInit2 returned \(result)")
        }
    }

    deinit {
        _ = lib.inflateEnd(stream.raw)
        stream.deallocate()
    }

    func decompress(_ input: [UInt8], _ sink: ([UInt8]) throws(BackupError) -> Void) throws(BackupError) {
        if input.isEmpty { return }
        sawInput = true
        var output = [UInt8](repeating: 0, count: codecOutputChunk)
        var position = 0
        var outputFull = false
        while position < input.count || outputFull {
            if memberEnded {
                _ = lib.inflateReset(stream.raw)  // another gzip member follows
                memberEnded = false
            }
            let (result, consumed, produced) = input.withUnsafeBytes { inRaw in
                output.withUnsafeMutableBytes { outRaw in
                    let piece = min(inRaw.count - position, Int(UInt32.max))
                    stream.setInput(inRaw.baseAddress.map { UnsafeRawPointer($0 + position) }, count: piece)
                    stream.setOutput(outRaw.baseAddress, count: outRaw.count)
                    let r = lib.inflate(stream.raw, Zlib.noFlush)
                    return (r, piece - stream.availableIn, outRaw.count - stream.availableOut)
                }
            }
            if result != Zlib.ok && result != Zlib.streamEnd && result != Zlib.bufError {
                throw .codecFailure(codec: "gzip", file: file, detail: stream.message ?? "inflate returned \(result)")
            }
            position += consumed
            if produced > 0 { try sink(Array(output[0..<produced])) }
            outputFull = produced == output.count
            if result == Zlib.streamEnd { memberEnded = true }
            if consumed == 0 && produced == 0 && !memberEnded { break }
        }
    }

    func finish() throws(BackupError) {
        if !sawInput || !memberEnded {
            throw .codecFailure(codec: "gzip", file: file, detail: "the compressed data ends inside a gzip member (truncated)")
        }
    }
}
