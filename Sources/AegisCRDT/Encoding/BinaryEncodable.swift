/// The first byte of every top-level AegisCRDT encoding: which type follows.
///
/// The second byte is the format version of that type's encoding. A reader refuses
/// bytes of another type (``CRDTError/Code/typeMismatch``) or of a version it does not
/// know (``CRDTError/Code/unsupportedVersion``).
public enum EncodingTag: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case vectorClock = 0x01
    case dottedVersionVector = 0x02
    case hlcTimestamp = 0x03
    case causalContext = 0x04
    case lwwRegister = 0x10
    case mvRegister = 0x11
    case gCounter = 0x12
    case pnCounter = 0x13
    case orSet = 0x14
    case orMap = 0x15

    public var description: String {
        switch self {
        case .vectorClock: "vector clock"
        case .dottedVersionVector: "dotted version vector"
        case .hlcTimestamp: "HLC timestamp"
        case .causalContext: "causal context"
        case .lwwRegister: "LWW register"
        case .mvRegister: "multi-value register"
        case .gCounter: "G-counter"
        case .pnCounter: "PN-counter"
        case .orSet: "OR-set"
        case .orMap: "OR-map"
        }
    }
}

/// A type with a compact, versioned, canonical binary encoding.
///
/// Canonical means the same value always encodes to the same bytes: collections are
/// written sorted by their keys' encoded bytes, zero entries are omitted, integers are
/// minimal varints. Decoding checks all of this and rejects anything else.
public protocol BinaryEncodable: Sendable {
    /// The type tag written at the start of a top-level encoding.
    static var encodingTag: EncodingTag { get }
    /// The format version written after the tag.
    static var encodingVersion: UInt8 { get }
    /// Writes the value without the tag-and-version header.
    func encodeBody(to writer: inout BinaryWriter)
    /// Reads a value written by ``encodeBody(to:)``.
    init(decodingBody reader: inout BinaryReader) throws(CRDTError)
}

extension BinaryEncodable {
    /// Format version 1, unless a type says otherwise.
    public static var encodingVersion: UInt8 { 1 }

    /// The value's complete encoding: tag, version, body.
    public func encoded() -> [UInt8] {
        var writer = BinaryWriter()
        writer.writeHeader(Self.encodingTag, version: Self.encodingVersion)
        encodeBody(to: &writer)
        return writer.bytes
    }

    /// Decodes a complete encoding made by ``encoded()``; throws on any malformed,
    /// truncated, non-canonical or trailing byte.
    public init(encoded bytes: [UInt8]) throws(CRDTError) {
        var reader = BinaryReader(bytes)
        try reader.readHeader(expecting: Self.encodingTag, supportedVersion: Self.encodingVersion)
        self = try Self(decodingBody: &reader)
        try reader.expectEnd(of: "\(Self.encodingTag)")
    }
}

/// A value a CRDT can hold: a register's value, a set's element, a map's key.
public protocol CRDTValue: Hashable, Sendable {
    /// Writes the value.
    func encode(to writer: inout BinaryWriter)
    /// Reads a value written by ``encode(to:)``.
    init(from reader: inout BinaryReader) throws(CRDTError)
}

extension String: CRDTValue {
    public func encode(to writer: inout BinaryWriter) { writer.writeString(self) }
    public init(from reader: inout BinaryReader) throws(CRDTError) { self = try reader.readString() }
}

extension ReplicaID: CRDTValue {
    public func encode(to writer: inout BinaryWriter) { writer.writeReplica(self) }
    public init(from reader: inout BinaryReader) throws(CRDTError) { self = try reader.readReplica() }
}

extension UInt64: CRDTValue {
    public func encode(to writer: inout BinaryWriter) { writer.writeVarint(self) }
    public init(from reader: inout BinaryReader) throws(CRDTError) { self = try reader.readVarint() }
}

extension Int64: CRDTValue {
    public func encode(to writer: inout BinaryWriter) { writer.writeSignedVarint(self) }
    public init(from reader: inout BinaryReader) throws(CRDTError) { self = try reader.readSignedVarint() }
}

extension Int: CRDTValue {
    public func encode(to writer: inout BinaryWriter) { writer.writeSignedVarint(Int64(self)) }
    public init(from reader: inout BinaryReader) throws(CRDTError) {
        let start = reader.position
        guard let value = Int(exactly: try reader.readSignedVarint()) else {
            throw CRDTError(.malformed, "integer at byte \(start) does not fit in this platform's Int")
        }
        self = value
    }
}

extension Bool: CRDTValue {
    public func encode(to writer: inout BinaryWriter) { writer.writeByte(self ? 1 : 0) }
    public init(from reader: inout BinaryReader) throws(CRDTError) {
        let start = reader.position
        switch try reader.readByte() {
        case 0: self = false
        case 1: self = true
        case let other: throw CRDTError(.malformed, "boolean at byte \(start) is \(other); only 0 and 1 are valid")
        }
    }
}

extension Array: CRDTValue where Element == UInt8 {
    public func encode(to writer: inout BinaryWriter) { writer.writeBytes(self) }
    public init(from reader: inout BinaryReader) throws(CRDTError) { self = Array(try reader.readBytes()) }
}

extension CRDTValue {
    /// The value's encoding (without any header); used to order values canonically.
    @usableFromInline
    func encodedBytes() -> [UInt8] {
        var writer = BinaryWriter()
        encode(to: &writer)
        return writer.bytes
    }
}

extension BinaryWriter {
    /// Writes `entries` as a count followed by key–value pairs sorted by the keys'
    /// encoded bytes, so equal dictionaries always produce equal bytes.
    mutating func writeSorted<Key: CRDTValue, Value>(
        _ entries: [Key: Value], _ writeValue: (inout BinaryWriter, Value) -> Void
    ) {
        var pairs = entries.map { (key: $0.key.encodedBytes(), value: $0.value) }
        pairs.sort { $0.key.lexicographicallyPrecedes($1.key) }
        writeCount(pairs.count)
        for pair in pairs {
            for byte in pair.key { writeByte(byte) }
            writeValue(&self, pair.value)
        }
    }
}

extension BinaryReader {
    /// Reads what ``BinaryWriter/writeSorted(_:_:)`` wrote, rejecting keys that are not
    /// in strictly increasing byte order (unsorted or duplicated).
    mutating func readSorted<Key: CRDTValue, Value>(
        _ what: String, minimumEntrySize: Int,
        _ readValue: (inout BinaryReader) throws(CRDTError) -> Value
    ) throws(CRDTError) -> [Key: Value] {
        let count = try readCount(minimumItemSize: minimumEntrySize)
        var result: [Key: Value] = [:]
        result.reserveCapacity(count)
        var previous: ArraySlice<UInt8> = []
        for index in 0..<count {
            let start = position
            let key = try Key(from: &self)
            let keyBytes = consumed(since: start)
            if index > 0 && !previous.lexicographicallyPrecedes(keyBytes) {
                throw CRDTError(.malformed, "\(what) keys are not in strictly increasing order at byte \(start) (unsorted or duplicate)")
            }
            previous = keyBytes
            result[key] = try readValue(&self)
        }
        guard result.count == count else {
            throw CRDTError(.malformed, "\(what) holds keys that are distinct as bytes but equal as values")
        }
        return result
    }
}
