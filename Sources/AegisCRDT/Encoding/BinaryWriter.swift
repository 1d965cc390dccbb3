/// Appends the primitive parts of AegisCRDT's binary encodings to a byte array.
///
/// Integers are unsigned LEB128 varints (signed ones zig-zag first), byte strings and
/// text are length-prefixed. Every encoding starts with a type tag and a format version
/// (see ``EncodingTag``). Writers never fail.
public struct BinaryWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// Creates an empty writer, optionally reserving capacity.
    public init(reservingCapacity capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Writes one raw byte.
    public mutating func writeByte(_ byte: UInt8) { bytes.append(byte) }

    /// Writes an unsigned integer as a minimal LEB128 varint (1 to 10 bytes).
    public mutating func writeVarint(_ value: UInt64) {
        var remaining = value
        while remaining >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: remaining))
    }

    /// Writes a signed integer, zig-zag encoded so small magnitudes stay short.
    public mutating func writeSignedVarint(_ value: Int64) {
        writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Writes a count or length.
    public mutating func writeCount(_ count: Int) { writeVarint(UInt64(count)) }

    /// Writes a length-prefixed byte string.
    public mutating func writeBytes(_ value: some Collection<UInt8>) {
        writeCount(value.count)
        bytes.append(contentsOf: value)
    }

    /// Writes length-prefixed UTF-8 text.
    public mutating func writeString(_ value: String) { writeBytes(value.utf8) }

    /// Writes a replica identifier.
    public mutating func writeReplica(_ replica: ReplicaID) { writeString(replica.rawValue) }

    /// Writes the tag-and-version header that starts every top-level encoding.
    public mutating func writeHeader(_ tag: EncodingTag, version: UInt8) {
        bytes.append(tag.rawValue)
        bytes.append(version)
    }
}
