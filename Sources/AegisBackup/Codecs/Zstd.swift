/// libzstd's streaming API (`ZSTD_compressStream2`, `ZSTD_decompressStream`), loaded at
/// run time. Output is standard Zstandard frames, readable by `zstd -d`.
struct ZstdLibrary: @unchecked Sendable {
    typealias CreateContext = @convention(c) () -> OpaquePointer?
    typealias FreeContext = @convention(c) (OpaquePointer?) -> Int
    typealias SetParameter = @convention(c) (OpaquePointer?, Int32, Int32) -> Int
    typealias CompressStream2 = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer, UnsafeMutableRawPointer, Int32) -> Int
    typealias DecompressStream = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer, UnsafeMutableRawPointer) -> Int
    typealias IsError = @convention(c) (Int) -> UInt32
    typealias ErrorName = @convention(c) (Int) -> UnsafePointer<CChar>?

    let createCCtx: CreateContext, freeCCtx: FreeContext, setParameter: SetParameter
    let compressStream2: CompressStream2
    let createDCtx: CreateContext, freeDCtx: FreeContext, decompressStream: DecompressStream
    let isError: IsError, errorName: ErrorName

    static let loaded: Result<ZstdLibrary, BackupError> = Result { () throws(BackupError) in
        let lib = try NativeLibrary(codec: "zstd", names: ["libzstd.so.1", "libzstd.so", "libzstd.1.dylib", "libzstd.dylib"])
        return ZstdLibrary(
            createCCtx: try lib.function("ZSTD_createCCtx", as: CreateContext.self),
            freeCCtx: try lib.function("ZSTD_freeCCtx", as: FreeContext.self),
            setParameter: try lib.function("ZSTD_CCtx_setParameter", as: SetParameter.self),
            compressStream2: try lib.function("ZSTD_compressStream2", as: CompressStream2.self),
            createDCtx: try lib.function("ZSTD_createDCtx", as: CreateContext.self),
            freeDCtx: try lib.function("ZSTD_freeDCtx", as: FreeContext.self),
            decompressStream: try lib.function("ZSTD_decompressStream", as: DecompressStream.self),
            isError: try lib.function("ZSTD_isError", as: IsError.self),
            errorName: try lib.function("ZSTD_getErrorName", as: ErrorName.self))
    }

    func message(_ code: Int) -> String { errorName(code).map { String(cString: $0) } ?? "error \(code)" }
}

/// `ZSTD_inBuffer` / `ZSTD_outBuffer`: pointer, size, position (three machine words).
struct ZstdBuffer {
    var pointer: UnsafeMutableRawPointer?
    var size: Int
    var position: Int
}

/// One `ZSTD_compressStream2`/`ZSTD_decompressStream` call: feeds `input` from
/// `position`, fills `output`; returns the call's result, the new input position and the
/// bytes produced.
private func zstdStep(_ input: inout [UInt8], at position: Int, _ output: inout [UInt8],
                      _ call: (UnsafeMutableRawPointer, UnsafeMutableRawPointer) -> Int) -> (result: Int, position: Int, produced: Int) {
    input.withUnsafeMutableBytes { inRaw in
        output.withUnsafeMutableBytes { outRaw in
            var inBuffer = ZstdBuffer(pointer: inRaw.baseAddress, size: inRaw.count, position: position)
            var outBuffer = ZstdBuffer(pointer: outRaw.baseAddress, size: outRaw.count, position: 0)
            let r = withUnsafeMutablePointer(to: &outBuffer) { o in
                withUnsafeMutablePointer(to: &inBuffer) { i in call(UnsafeMutableRawPointer(o), UnsafeMutableRawPointer(i)) }
            }
            return (r, inBuffer.position, outBuffer.position)
        }
    }
}

final class ZstdCompressor: StreamCompressor {
    private let lib: ZstdLibrary
    private let context: OpaquePointer
    private let file: String

    init(level: Int, file: String) throws(BackupError) {
        lib = try ZstdLibrary.loaded.get()
        guard let context = lib.createCCtx() else { throw .codecFailure(codec: "zstd", file: file, detail: "out of memory") }
        self.context = context
        self.file = file
        let result = lib.setParameter(context, 100 /* ZSTD_c_compressionLevel */, Int32(clamping: level))
        if lib.isError(result) != 0 {
            _ = lib.freeCCtx(context)
            throw .codecFailure(codec: "zstd", file: file, detail: lib.message(result))
        }
    }

    deinit { _ = lib.freeCCtx(context) }

    func compress(_ input: [UInt8], final: Bool, _ sink: ([UInt8]) throws(BackupError) -> Void) throws(BackupError) {
        var output = [UInt8](repeating: 0, count: codecOutputChunk)
        var input = input
        var position = 0
        while true {
            let step = zstdStep(&input, at: position, &output) { o, i in
                lib.compressStream2(context, o, i, final ? 2 /* ZSTD_e_end */ : 0 /* ZSTD_e_continue */)
            }
            if lib.isError(step.result) != 0 {
                throw .codecFailure(codec: "zstd", file: file, detail: lib.message(step.result))
            }
            position = step.position
            if step.produced > 0 { try sink(Array(output[0..<step.produced])) }
            let inputDone = position == input.count
            if final ? step.result == 0 : (inputDone && step.produced < output.count) { break }
        }
    }
}

final class ZstdDecompressor: StreamDecompressor {
    private let lib: ZstdLibrary
    private let context: OpaquePointer
    private let file: String
    /// The last `ZSTD_decompressStream` result: 0 once a frame is complete.
    private var hint = 1
    private var sawInput = false

    init(file: String) throws(BackupError) {
        lib = try ZstdLibrary.loaded.get()
        guard let context = lib.createDCtx() else { throw .codecFailure(codec: "zstd", file: file, detail: "out of memory") }
        self.context = context
        self.file = file
    }

    deinit { _ = lib.freeDCtx(context) }

    func decompress(_ input: [UInt8], _ sink: ([UInt8]) throws(BackupError) -> Void) throws(BackupError) {
        if input.isEmpty { return }
        sawInput = true
        var output = [UInt8](repeating: 0, count: codecOutputChunk)
        var input = input
        var position = 0
        while true {
            let step = zstdStep(&input, at: position, &output) { o, i in lib.decompressStream(context, o, i) }
            if lib.isError(step.result) != 0 {
                throw .codecFailure(codec: "zstd", file: file, detail: lib.message(step.result))
            }
            hint = step.result
            position = step.position
            if step.produced > 0 { try sink(Array(output[0..<step.produced])) }
            if position == input.count && step.produced < output.count { break }
        }
    }

    func finish() throws(BackupError) {
        if !sawInput || hint != 0 {
            throw .codecFailure(codec: "zstd", file: file, detail: "the compressed data ends inside a frame (truncated)")
        }
    }
}
