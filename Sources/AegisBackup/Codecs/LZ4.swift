/// liblz4's frame API (`LZ4F_*`), loaded at run time. Output is the LZ4 frame format
/// with default preferences (64 KiB linked blocks), readable by `lz4 -d`.
struct LZ4Library: @unchecked Sendable {
    typealias CreateContext = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Int
    typealias FreeContext = @convention(c) (OpaquePointer?) -> Int
    typealias CompressBound = @convention(c) (Int, UnsafeRawPointer?) -> Int
    typealias CompressBegin = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int, UnsafeRawPointer?) -> Int
    typealias CompressUpdate = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, Int, UnsafeRawPointer?) -> Int
    typealias CompressEnd = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int, UnsafeRawPointer?) -> Int
    typealias Decompress = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>,
                                           UnsafeRawPointer?, UnsafeMutablePointer<Int>, UnsafeRawPointer?) -> Int
    typealias IsError = @convention(c) (Int) -> UInt32
    typealias ErrorName = @convention(c) (Int) -> UnsafePointer<CChar>?

    /// `LZ4F_VERSION`.
    static let version: UInt32 = 100

    let createCompression: CreateContext, freeCompression: FreeContext, compressBound: CompressBound
    let compressBegin: CompressBegin, compressUpdate: CompressUpdate, compressEnd: CompressEnd
    let createDecompression: CreateContext, freeDecompression: FreeContext, decompress: Decompress
    let isError: IsError, errorName: ErrorName

    static let loaded: Result<LZ4Library, BackupError> = Result { () throws(BackupError) in
        let lib = try NativeLibrary(codec: "lz4", names: ["liblz4.so.1", "liblz4.so", "liblz4.1.dylib", "liblz4.dylib"])
        return LZ4Library(
            createCompression: try lib.function("LZ4F_createCompressionContext", as: CreateContext.self),
            freeCompression: try lib.function("LZ4F_freeCompressionContext", as: FreeContext.self),
            compressBound: try lib.function("LZ4F_compressBound", as: CompressBound.self),
            compressBegin: try lib.function("LZ4F_compressBegin", as: CompressBegin.self),
            compressUpdate: try lib.function("LZ4F_compressUpdate", as: CompressUpdate.self),
            compressEnd: try lib.function("LZ4F_compressEnd", as: CompressEnd.self),
            createDecompression: try lib.function("LZ4F_createDecompressionContext", as: CreateContext.self),
            freeDecompression: try lib.function("LZ4F_freeDecompressionContext", as: FreeContext.self),
            decompress: try lib.function("LZ4F_decompress", as: Decompress.self),
            isError: try lib.function("LZ4F_isError", as: IsError.self),
            errorName: try lib.function("LZ4F_getErrorName", as: ErrorName.self))
    }

    func message(_ code: Int) -> String { errorName(code).map { String(cString: $0) } ?? "error \(code)" }
}

final class LZ4Compressor: StreamCompressor {
    private let lib: LZ4Library
    private let context: OpaquePointer
    private let file: String
    private var begun = false
    /// Input is fed in pieces of this size, so the output buffer stays bounded.
    private let piece = 256 << 10

    init(file: String) throws(BackupError) {
        lib = try LZ4Library.loaded.get()
        var context: OpaquePointer?
        let result = lib.createCompression(&context, LZ4Library.version)
        guard lib.isError(result) == 0, let context else {
            throw .codecFailure(codec: "lz4", file: file, detail: lib.message(result))
        }
        self.context = context
        self.file = file
    }

    deinit { _ = lib.freeCompression(context) }

    private func check(_ result: Int) throws(BackupError) -> Int {
        if lib.isError(result) != 0 { throw .codecFailure(codec: "lz4", file: file, detail: lib.message(result)) }
        return result
    }

    func compress(_ input: [UInt8], final: Bool, _ sink: ([UInt8]) throws(BackupError) -> Void) throws(BackupError) {
        var output = [UInt8](repeating: 0, count: max(lib.compressBound(piece, nil), 64 << 10) + 64)
        if !begun {
            let written = try check(output.withUnsafeMutableBytes { lib.compressBegin(context, $0.baseAddress, $0.count, nil) })
            try sink(Array(output[0..<written]))
            begun = true
        }
        var start = 0
        while start < input.count {
            let end = min(start + piece, input.count)
            let result = output.withUnsafeMutableBytes { out in
                input.withUnsafeBytes { raw in
                    lib.compressUpdate(context, out.baseAddress, out.count, raw.baseAddress.map { $0 + start }, end - start, nil)
                }
            }
            let written = try check(result)
            if written > 0 { try sink(Array(output[0..<written])) }
            start = end
        }
        if final {
            let written = try check(output.withUnsafeMutableBytes { lib.compressEnd(context, $0.baseAddress, $0.count, nil) })
            if written > 0 { try sink(Array(output[0..<written])) }
        }
    }
}

final class LZ4Decompressor: StreamDecompressor {
    private let lib: LZ4Library
    private let context: OpaquePointer
    private let file: String
    /// The last `LZ4F_decompress` hint: 0 once the frame is complete.
    private var hint = 1

    init(file: String) throws(BackupError) {
        lib = try LZ4Library.loaded.get()
        var context: OpaquePointer?
        let result = lib.createDecompression(&context, LZ4Library.version)
        guard lib.isError(result) == 0, let context else {
            throw .codecFailure(codec: "lz4", file: file, detail: lib.message(result))
        }
        self.context = context
        self.file = file
    }

    deinit { _ = lib.freeDecompression(context) }

    func decompress(_ input: [UInt8], _ sink: ([UInt8]) throws(BackupError) -> Void) throws(BackupError) {
        var output = [UInt8](repeating: 0, count: codecOutputChunk)
        var position = 0
        var outputFull = false
        while position < input.count || outputFull {
            var outSize = output.count
            var inSize = input.count - position
            let result = output.withUnsafeMutableBytes { out in
                input.withUnsafeBytes { raw in
                    lib.decompress(context, out.baseAddress, &outSize, raw.baseAddress.map { $0 + position }, &inSize, nil)
                }
            }
            if lib.isError(result) != 0 { throw .codecFailure(codec: "lz4", file: file, detail: lib.message(result)) }
            hint = result
            position += inSize
            if outSize > 0 { try sink(Array(output[0..<outSize])) }
            outputFull = outSize == output.count
            if inSize == 0 && outSize == 0 { break }
            if hint == 0 && position < input.count {
                throw .codecFailure(codec: "lz4", file: file, detail: "\(input.count - position) bytes after the end of the frame")
            }
        }
    }

    func finish() throws(BackupError) {
        if hint != 0 {
            throw .codecFailure(codec: "lz4", file: file, detail: "the compressed data ends inside a frame (truncated)")
        }
    }
}
