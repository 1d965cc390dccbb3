public import AegisBackup
public import AegisKV
public import AegisRaft
import NIOCore

/// One frame of the change stream: a compressed stream batch and where the source
/// stood when it shipped it. The layout is in the module's article (Wire format).
public struct StreamFrame: Sendable, Hashable {
    /// The batch.
    public var batch: StreamBatch
    /// The source leader's wall clock (ms since 1970) when the frame was made.
    public var sourceTime: UInt64
    /// The lease token the target echoes in its next request (the source's own time
    /// reference for the write lease; opaque to the target).
    public var leaseToken: LeaseToken

    /// Creates a frame.
    public init(batch: StreamBatch, sourceTime: UInt64, leaseToken: LeaseToken = LeaseToken()) {
        self.batch = batch
        self.sourceTime = sourceTime
        self.leaseToken = leaseToken
    }

    /// The first bytes of every frame.
    public static let magic: [UInt8] = Array("AGST".utf8)
    /// The frame format version this build writes and reads.
    public static let version: UInt8 = 1
    /// The size of the fixed header.
    public static let headerSize = 4 + 1 + 1 + 1 + 4 + 4 + 4 + 8 + 16

    /// The codec byte of each compression.
    static func codecByte(_ compression: BackupCompression) -> UInt8 {
        switch compression {
        case .none: return 0
        case .gzip: return 1
        case .lz4: return 2
        case .zstd: return 3
        }
    }

    static func compression(byte: UInt8) -> BackupCompression? {
        switch byte {
        case 0: return BackupCompression.none
        case 1: return .gzip
        case 2: return .lz4
        case 3: return .zstd
        default: return nil
        }
    }

    /// The frame's bytes, its batch compressed with `compression`.
    ///
    /// - Throws: `StreamError.codec` when the compression library fails or is missing.
    public func encoded(compression: BackupCompression) throws(StreamError) -> [UInt8] {
        try Self.seal(batch.encodedBody(), version: Self.version, compression: compression, sourceTime: sourceTime,
                      leaseToken: leaseToken)
    }

    /// A frame of format `version` around `body` (the one frame layout: header,
    /// compressed payload, checksum), for every kind of batch.
    static func seal(_ body: [UInt8], version: UInt8, compression: BackupCompression, sourceTime: UInt64,
                     leaseToken: LeaseToken) throws(StreamError) -> [UInt8] {
        var payload: [UInt8] = []
        do {
            let compressor = try compression.makeCompressor(file: "stream frame")
            try compressor.compress(body, final: true) { payload.append(contentsOf: $0) }
        } catch {
            throw .codec("\(compression.rawValue) compression failed: \(error)")
        }
        guard let bodySize = UInt32(exactly: body.count), let payloadSize = UInt32(exactly: payload.count) else {
            throw .tooLarge("a batch of \(body.count) bytes does not fit in a frame")
        }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(Self.headerSize + payload.count)
        buffer.writeBytes(Self.magic)
        buffer.writeInteger(version)
        buffer.writeInteger(Self.codecByte(compression))
        buffer.writeInteger(UInt8(0))  // flags: none defined
        buffer.writeInteger(bodySize, endianness: .little)
        buffer.writeInteger(payloadSize, endianness: .little)
        buffer.writeInteger(CRC32C.checksum(payload), endianness: .little)
        buffer.writeInteger(sourceTime, endianness: .little)
        buffer.writeInteger(leaseToken.incarnation, endianness: .little)
        buffer.writeInteger(leaseToken.nanoseconds, endianness: .little)
        buffer.writeBytes(payload)
        return Array(buffer.readableBytesView)
    }

    /// Decodes a frame, enforcing `limits` before allocating for what the header claims.
    ///
    /// - Throws: `StreamError.malformed` (bad magic, version, codec, flags, lengths,
    ///   checksum, compressed stream or batch), `.tooLarge` over a limit; nothing is kept.
    public init(decoding bytes: [UInt8], limits: StreamLimits) throws(StreamError) {
        let (body, sourceTime, token) = try Self.open(bytes, version: Self.version, limits: limits)
        let batch: StreamBatch
        do { batch = try StreamBatch(decodingBody: body) } catch { throw .malformed("the batch: \(error)") }
        guard batch.changes.count <= limits.maxBatchEntries else {
            throw .tooLarge("the batch has \(batch.changes.count) changes, over the limit of \(limits.maxBatchEntries)")
        }
        self.init(batch: batch, sourceTime: sourceTime, leaseToken: token)
    }
}

extension StreamFrame {
    /// The body, source time and lease token of a frame of format `version`, checked
    /// against `limits` before allocating for what the header claims.
    static func open(_ bytes: [UInt8], version expected: UInt8,
                     limits: StreamLimits) throws(StreamError) -> (body: [UInt8], sourceTime: UInt64, token: LeaseToken) {
        guard bytes.count >= Self.headerSize else {
            throw .malformed("the frame has \(bytes.count) bytes, fewer than its \(Self.headerSize)-byte header")
        }
        guard bytes.count <= limits.maxFrameBytes else {
            throw .tooLarge("the frame has \(bytes.count) bytes, over the limit of \(limits.maxFrameBytes)")
        }
        var buffer = ByteBuffer(bytes: bytes)
        guard buffer.readBytes(length: 4) == Self.magic else { throw .malformed("not a stream frame (bad magic bytes)") }
        // The header is complete (checked above), so every fixed-size read succeeds.
        let version: UInt8 = buffer.readInteger() ?? 0
        guard version == expected else {
            throw .malformed("frame version \(version) is not supported (this build reads \(expected))")
        }
        let codec: UInt8 = buffer.readInteger() ?? 0xff
        guard let compression = Self.compression(byte: codec) else { throw .malformed("unknown compression \(codec)") }
        let flags: UInt8 = buffer.readInteger() ?? 0xff
        guard flags == 0 else { throw .malformed("unknown flags \(flags)") }
        let bodySize = Int(buffer.readInteger(endianness: .little, as: UInt32.self) ?? 0)
        let payloadSize = Int(buffer.readInteger(endianness: .little, as: UInt32.self) ?? 0)
        let checksum = buffer.readInteger(endianness: .little, as: UInt32.self) ?? 0
        let sourceTime = buffer.readInteger(endianness: .little, as: UInt64.self) ?? 0
        let token = LeaseToken(incarnation: buffer.readInteger(endianness: .little, as: UInt64.self) ?? 0,
                               nanoseconds: buffer.readInteger(endianness: .little, as: UInt64.self) ?? 0)
        guard bodySize <= limits.maxBatchBytes else {
            throw .tooLarge("the batch has \(bodySize) bytes, over the limit of \(limits.maxBatchBytes)")
        }
        guard payloadSize == buffer.readableBytes else {
            throw .malformed("the header says \(payloadSize) payload bytes but \(buffer.readableBytes) follow")
        }
        let payload = Array(buffer.readableBytesView)
        guard CRC32C.checksum(payload) == checksum else { throw .malformed("frame checksum mismatch") }
        var body: [UInt8] = []
        do {
            let decompressor = try compression.makeDecompressor(file: "stream frame")
            try decompressor.decompress(payload) { piece throws(BackupError) in
                guard body.count + piece.count <= bodySize else {
                    throw BackupError.damaged(file: "stream frame",
                                              detail: "it decompresses to more than the \(bodySize) bytes its header says")
                }
                body.append(contentsOf: piece)
            }
            try decompressor.finish()
        } catch {
            throw .malformed("the \(compression.rawValue) payload does not decompress: \(error)")
        }
        guard body.count == bodySize else {
            throw .malformed("the payload decompresses to \(body.count) bytes, the header says \(bodySize)")
        }
        return (body, sourceTime, token)
    }
}
