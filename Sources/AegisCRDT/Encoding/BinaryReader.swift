/// Reads the primitives written by ``BinaryWriter``, rejecting anything malformed.
///
/// Every read checks bounds; varints must be minimal (a non-canonical encoding of a
/// number is rejected, so one value has exactly one encoding); counts are checked
/// against the bytes that remain before anything is allocated.
public struct BinaryReader: Sendable {
    private let bytes: [UInt8]
    /// The offset of the next byte to read.
    public private(set) var position: Int

    /// Creates a reader over `bytes`, starting at the first byte.
    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.position = 0
    }

    /// The number of bytes not read yet.
    public var remaining: Int { bytes.count - position }

    /// Whether every byte has been read.
    public var isAtEnd: Bool { position == bytes.count }

    /// Reads one raw byte.
    public mutating func readByte() throws(CRDTError) -> UInt8 {
        guard position < bytes.count else {
            throw CRDTError(.truncated, "the encoding ends at byte \(position) but more is expected; the bytes were cut short")
        }
        defer { position += 1 }
        return bytes[position]
    }

    /// Reads a minimal LEB128 varint.
    public mutating func readVarint() throws(CRDTError) -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readByte()
            if shift == 63 && byte > 1 {
                throw CRDTError(.malformed, "varint at byte \(start) does not fit in 64 bits")
            }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    throw CRDTError(.malformed, "varint at byte \(start) is not minimally encoded")
                }
                return result
            }
            shift += 7
        }
    }

    /// Reads a zig-zag encoded signed varint.
    public mutating func readSignedVarint() throws(CRDTError) -> Int64 {
        let raw = try readVarint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// Reads a count of items that each take at least `minimumItemSize` bytes, and
    /// rejects counts the remaining bytes cannot hold.
    public mutating func readCount(minimumItemSize: Int = 1) throws(CRDTError) -> Int {
        let start = position
        let raw = try readVarint()
        guard raw <= UInt64(remaining / max(minimumItemSize, 1)) else {
            throw CRDTError(.malformed, "count \(raw) at byte \(start) exceeds what the remaining \(remaining) bytes can hold")
        }
        return Int(raw)
    }

    /// Reads a length-prefixed byte string.
    public mutating func readBytes() throws(CRDTError) -> ArraySlice<UInt8> {
        let length = try readCount()
        defer { position += length }
        return bytes[position..<(position + length)]
    }

    /// Reads length-prefixed text, rejecting invalid UTF-8.
    public mutating func readString() throws(CRDTError) -> String {
        let start = position
        let raw = try readBytes()
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw CRDTError(.malformed, "text at byte \(start) is not valid UTF-8")
        }
        return text
    }

    /// Reads a replica identifier.
    public mutating func readReplica() throws(CRDTError) -> ReplicaID { ReplicaID(try readString()) }

    /// Reads a counter that must be at least 1 (a dot's counter, a clock entry).
    public mutating func readPositiveVarint(_ what: String) throws(CRDTError) -> UInt64 {
        let start = position
        let value = try readVarint()
        guard value > 0 else {
            throw CRDTError(.malformed, "\(what) at byte \(start) is 0; zero entries are omitted in a canonical encoding")
        }
        return value
    }

    /// Reads and checks the header of a top-level encoding.
    public mutating func readHeader(expecting tag: EncodingTag, supportedVersion: UInt8) throws(CRDTError) {
        let found = try readByte()
        guard found == tag.rawValue else {
            let name = EncodingTag(rawValue: found).map { "\($0)" } ?? "unknown tag \(found)"
            throw CRDTError(.typeMismatch, "expected an encoded \(tag) but found \(name)")
        }
        let version = try readByte()
        guard version == supportedVersion else {
            throw CRDTError(.unsupportedVersion,
                            "\(tag) encoding version \(version) is not supported; this build reads version \(supportedVersion) (upgrade the reader)")
        }
    }

    /// Fails unless every byte has been consumed.
    public func expectEnd(of what: String) throws(CRDTError) {
        guard isAtEnd else {
            throw CRDTError(.malformed, "\(remaining) unexpected trailing bytes after the encoded \(what)")
        }
    }
}

extension BinaryReader {
    /// The bytes read since offset `start`.
    func consumed(since start: Int) -> ArraySlice<UInt8> { bytes[start..<position] }
}
