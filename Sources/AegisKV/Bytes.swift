import AegisCRDT
// Low-level byte helpers shared by the command and snapshot codecs: LEB128 varints,
// length-prefixed byte strings and little-endian fixed-width integers.

extension Array where Element == UInt8 {
    /// Appends `value` as an unsigned LEB128 varint (1 to 10 bytes).
    @inlinable mutating func appendVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        append(UInt8(rest))
    }

    /// Appends a varint length followed by the bytes.
    @inlinable mutating func appendLengthPrefixed(_ bytes: [UInt8]) {
        appendVarint(UInt64(bytes.count))
        append(contentsOf: bytes)
    }

    /// Appends `value` as 8 little-endian bytes.
    @inlinable mutating func appendUInt64LE(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// Appends `value` as 4 little-endian bytes.
    @inlinable mutating func appendUInt32LE(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }
}

/// The number of bytes `value` takes as a varint.
@inlinable func varintSize(_ value: UInt64) -> Int {
    var size = 1
    var rest = value >> 7
    while rest != 0 { size += 1; rest >>= 7 }
    return size
}

/// Zig-zag maps a signed integer to an unsigned one so small magnitudes stay short.
@inlinable func zigZag(_ value: Int64) -> UInt64 {
    UInt64(bitPattern: (value << 1) ^ (value >> 63))
}

/// The inverse of `zigZag`.
@inlinable func unZigZag(_ value: UInt64) -> Int64 {
    Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
}

/// A forward-only reader over bytes. Reads return `nil` when the bytes end before the
/// item does (the caller decides whether that is "wait for more" or "malformed") and
/// throw when the bytes can never be valid.
@usableFromInline struct ByteReader {
    @usableFromInline let bytes: UnsafeRawBufferPointer
    /// The offset of the next unread byte. Invariant: `offset <= bytes.count`.
    @usableFromInline var offset: Int
    /// The replica of the last stamp read (`readStamp`): the stamps of a batch share a
    /// few replicas, so most reuse this one instead of building and checking a string.
    var lastReplica: ReplicaID?

    @inlinable init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    /// The number of unread bytes.
    @inlinable var remaining: Int { bytes.count - offset }

    /// Reads one byte.
    @inlinable mutating func readByte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes.
    @inlinable mutating func readVarint(context: () -> KVError) throws(KVError) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var position = offset
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            if shift == 63 && byte > 1 { throw context() }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 {
                offset = position
                return result
            }
            shift += 7
            if shift > 63 { throw context() }
        }
        return nil
    }

    /// Reads a varint length (at most `limit`) and that many bytes, without copying.
    @inlinable mutating func readLengthPrefixed(limit: Int, tooLong: (UInt64) -> KVError,
                                                 badVarint: () -> KVError) throws(KVError) -> UnsafeRawBufferPointer? {
        let start = offset
        guard let length = try readVarint(context: badVarint) else { return nil }
        guard length <= UInt64(limit) else { throw tooLong(length) }
        let count = Int(length)
        guard count <= remaining else {
            offset = start
            return nil
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + count])
    }

    /// Reads a little-endian 64-bit integer.
    @inlinable mutating func readUInt64LE() -> UInt64? {
        guard remaining >= 8 else { return nil }
        defer { offset += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// Reads a little-endian 32-bit integer.
    @inlinable mutating func readUInt32LE() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}
