/// A key of the replicated key-value store: an arbitrary, non-empty byte string.
///
/// Keys order lexicographically by unsigned byte, which is the order of range and
/// prefix reads. A string literal is a key (its UTF-8 bytes), so
/// `Command.set("user:1", value)` reads naturally.
public struct Key: Hashable, Comparable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The key's bytes.
    public let bytes: [UInt8]

    /// Creates a key from its bytes.
    @inlinable public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Creates a key from the UTF-8 bytes of `string`.
    public init(_ string: String) { self.bytes = Array(string.utf8) }

    /// Creates a key from the UTF-8 bytes of a string literal.
    public init(stringLiteral value: String) { self.bytes = Array(value.utf8) }

    /// The number of bytes in the key.
    @inlinable public var count: Int { bytes.count }

    /// The key as text when it is valid UTF-8, otherwise as `0x`-prefixed hexadecimal.
    public var description: String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        return "0x" + hexString(bytes)
    }

    /// `true` if the key starts with `prefix`.
    public func hasPrefix(_ prefix: Key) -> Bool {
        prefix.bytes.count <= bytes.count && bytes.starts(with: prefix.bytes)
    }

    @inlinable public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    @inlinable public static func == (lhs: Key, rhs: Key) -> Bool {
        lhs.bytes.withUnsafeBytes { l in rhs.bytes.withUnsafeBytes { r in compareBytes(l, r) == 0 } }
    }

    @inlinable public static func < (lhs: Key, rhs: Key) -> Bool {
        lhs.bytes.withUnsafeBytes { l in rhs.bytes.withUnsafeBytes { r in compareBytes(l, r) < 0 } }
    }
}

/// Compares two byte strings lexicographically by unsigned byte: negative, zero or
/// positive like `memcmp`, with a shorter prefix ordering first.
@inlinable func compareBytes(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeRawBufferPointer) -> Int {
    let common = min(lhs.count, rhs.count)
    var offset = 0
    // Eight bytes at a time; big-endian loads keep the byte order of the comparison.
    while offset + 8 <= common {
        let l = UInt64(bigEndian: lhs.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        let r = UInt64(bigEndian: rhs.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        if l != r { return l < r ? -1 : 1 }
        offset += 8
    }
    while offset < common {
        let l = lhs[offset], r = rhs[offset]
        if l != r { return l < r ? -1 : 1 }
        offset += 1
    }
    return lhs.count - rhs.count
}

/// Lower-case hexadecimal of `bytes`.
func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var text = ""
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0f)])
    }
    return text
}
