/// How a stored backup file is compressed.
public enum BackupCompression: String, Sendable, Hashable, Codable, CaseIterable {
    /// Stored as is.
    case none
    /// gzip (RFC 1952) through zlib; read with `gzip -d`.
    case gzip
    /// The LZ4 frame format through liblz4; read with `lz4 -d`.
    case lz4
    /// Zstandard through libzstd; read with `zstd -d`.
    case zstd

    /// The file name suffix (`""`, `.gz`, `.lz4`, `.zst`).
    public var fileExtension: String {
        switch self {
        case .none: return ""
        case .gzip: return ".gz"
        case .lz4: return ".lz4"
        case .zstd: return ".zst"
        }
    }

    /// The default level: zstd 3, gzip 6 (zlib's default); LZ4 has none.
    public var defaultLevel: Int {
        switch self {
        case .zstd: return 3
        case .gzip: return 6
        case .none, .lz4: return 0
        }
    }

    /// Whether this machine can use the codec (its library loads).
    public func checkAvailable() throws(BackupError) {
        switch self {
        case .none: return
        case .gzip: _ = try ZlibLibrary.loaded.get()
        case .lz4: _ = try LZ4Library.loaded.get()
        case .zstd: _ = try ZstdLibrary.loaded.get()
        }
    }

    /// A streaming compressor writing this format.
    ///
    /// - Parameter file: named in errors.
    public func makeCompressor(level: Int? = nil, file: String) throws(BackupError) -> any StreamCompressor {
        switch self {
        case .none: return PassThrough()
        case .gzip: return try GzipCompressor(level: level ?? defaultLevel, file: file)
        case .lz4: return try LZ4Compressor(file: file)
        case .zstd: return try ZstdCompressor(level: level ?? defaultLevel, file: file)
        }
    }

    /// A streaming decompressor reading this format.
    public func makeDecompressor(file: String) throws(BackupError) -> any StreamDecompressor {
        switch self {
        case .none: return PassThrough()
        case .gzip: return try GzipDecompressor(file: file)
        case .lz4: return try LZ4Decompressor(file: file)
        case .zstd: return try ZstdDecompressor(file: file)
        }
    }
}

/// Compresses a stream fed in pieces; each output piece is at most about 1 MiB.
public protocol StreamCompressor: AnyObject {
    /// Compresses `input`; `final` ends the stream (frame trailer). `sink` receives output.
    func compress(_ input: [UInt8], final: Bool, _ sink: ([UInt8]) throws(BackupError) -> Void) throws(BackupError)
}

/// Decompresses a stream fed in pieces of any size; each output piece is at most 1 MiB
/// whatever the compression ratio.
public protocol StreamDecompressor: AnyObject {
    /// Decompresses `input`, handing output to `sink`.
    func decompress(_ input: [UInt8], _ sink: ([UInt8]) throws(BackupError) -> Void) throws(BackupError)
    /// Checks that the stream ended where a frame ends (it was not truncated).
    func finish() throws(BackupError)
}

/// `BackupCompression.none`.
final class PassThrough: StreamCompressor, StreamDecompressor {
    func compress(_ input: [UInt8], final: Bool, _ sink: ([UInt8]) throws(BackupError) -> Void) throws(BackupError) {
        if !input.isEmpty { try sink(input) }
    }
    func decompress(_ input: [UInt8], _ sink: ([UInt8]) throws(BackupError) -> Void) throws(BackupError) {
        if !input.isEmpty { try sink(input) }
    }
    func finish() throws(BackupError) {}
}
