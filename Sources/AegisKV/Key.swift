/// A key of the replicated key-value store: an arbitrary, non-empty byte string.
///
/// Keys order lexicographically by unsigned byte, which is the order of range and
/// prefix reads. A string literal is a key (its UTF-8 bytes), so
/// `Command.set("user:1", value)` reads naturally.
///
/// Storage: the first 16 bytes live inline in two words (so keys of up to 16 bytes
/// need no allocation, and most comparisons are two integer comparisons); a longer
/// key also keeps all its bytes in an array.
public struct Key: Hashable, Comparable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// Bytes 0..<8, big-endian (so numeric order is byte order), zero-padded.
    @usableFromInline var word0: UInt64
    /// Bytes 8..<16, big-endian, zero-padded.
    @usableFromInline var word1: UInt64
    /// The number of bytes.
    @usableFromInline var length: Int
    /// Every byte, for keys longer than 16 bytes; `nil` otherwise.
    @usableFromInline var spill: [UInt8]?

    /// The empty key (never stored: the store refuses empty keys).
    @usableFromInline static let empty = Key(word0: 0, word1: 0, length: 0, spill: nil)

    @inlinable init(word0: UInt64, word1: UInt64, length: Int, spill: [UInt8]?) {
        self.word0 = word0
        self.word1 = word1
        self.length = length
        self.spill = spill
    }

    /// Creates a key from raw bytes, copying them only when there are more than 16.
    @inlinable init(copying raw: UnsafeRawBufferPointer) {
        var w0: UInt64 = 0, w1: UInt64 = 0
        if raw.count >= 16 {
            w0 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
            w1 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        let head = raw.count >= 16 ? 0 : raw.count
        for i in 0 ..< head {
            let byte = UInt64(raw[i])
            if i < 8 { w0 |= byte << UInt64(56 - 8 * i) } else { w1 |= byte << UInt64(120 - 8 * i) }
        }
        self.init(word0: w0, word1: w1, length: raw.count, spill: raw.count > 16 ? [UInt8](raw) : nil)
    }

    /// Creates a key from its bytes.
    public init(_ bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { Key(copying: $0) }
        if bytes.count > 16 { spill = bytes }  // share the caller's buffer instead of the copy
    }

    /// Creates a key from the UTF-8 bytes of `string`.
    public init(_ string: String) { self.init(Array(string.utf8)) }

    /// Creates a key from the UTF-8 bytes of a string literal.
    public init(stringLiteral value: String) { self.init(Array(value.utf8)) }

    /// The number of bytes in the key.
    @inlinable public var count: Int { length }

    /// The key's bytes.
    public var bytes: [UInt8] {
        if let spill { return spill }
        return withUnsafeBytes { Array($0) }
    }

    /// Calls `body` with the key's bytes.
    @inlinable func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        if let spill { return spill.withUnsafeBytes(body) }
        let words = (word0.bigEndian, word1.bigEndian)
        return Swift.withUnsafeBytes(of: words) { body(UnsafeRawBufferPointer(rebasing: $0[0 ..< length])) }
    }

    /// Appends the key's bytes to `buffer`.
    func append(to buffer: inout [UInt8]) {
        withUnsafeBytes { buffer.append(contentsOf: $0) }
    }

    /// The key as text when it is valid UTF-8, otherwise as `0x`-prefixed hexadecimal.
    public var description: String {
        let bytes = self.bytes
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        return "0x" + hexString(bytes)
    }

    /// `true` if the key starts with `prefix`.
    public func hasPrefix(_ prefix: Key) -> Bool {
        guard prefix.length <= length else { return false }
        return withUnsafeBytes { mine in
            prefix.withUnsafeBytes { theirs in
                compareBytes(UnsafeRawBufferPointer(rebasing: mine[0 ..< theirs.count]), theirs) == 0
            }
        }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(word0)
        hasher.combine(word1)
        hasher.combine(length)
        if let spill { spill.withUnsafeBytes { hasher.combine(bytes: $0) } }
    }

    @inlinable public static func == (lhs: Key, rhs: Key) -> Bool {
        guard lhs.length == rhs.length, lhs.word0 == rhs.word0, lhs.word1 == rhs.word1 else { return false }
        if lhs.length <= 16 { return true }
        return lhs.withUnsafeBytes { l in rhs.withUnsafeBytes { r in compareBytes(l, r) == 0 } }
    }

    @inlinable public static func < (lhs: Key, rhs: Key) -> Bool {
        if lhs.word0 != rhs.word0 { return lhs.word0 < rhs.word0 }
        if lhs.word1 != rhs.word1 { return lhs.word1 < rhs.word1 }
        if lhs.length <= 16 || rhs.length <= 16 { return lhs.length < rhs.length }
        return lhs.withUnsafeBytes { l in rhs.withUnsafeBytes { r in compareBytes(l, r) < 0 } }
    }

    /// A seeded 64-bit hash for the store's table (folded multiplication, as in wyhash).
    @inlinable func tableHash(seed: UInt64) -> UInt64 {
        var h = foldedMultiply(word0 ^ seed ^ 0xA076_1D64_78BD_642F, word1 ^ 0xE703_7ED1_A0B4_28DB)
        if let spill, spill.count > 16 {
            h = spill.withUnsafeBytes { raw in
                var state = h
                var offset = 16
                while offset < raw.count {
                    var a: UInt64 = 0, b: UInt64 = 0
                    for i in 0 ..< Swift.min(16, raw.count - offset) {
                        let byte = UInt64(raw[offset + i])
                        if i < 8 { a |= byte << UInt64(8 * i) } else { b |= byte << UInt64(8 * (i - 8)) }
                    }
                    state = foldedMultiply(a ^ state ^ 0x8EBC_6AF0_9C88_C6E3, b ^ 0x5899_65CC_7537_4CC3)
                    offset += 16
                }
                return state
            }
        }
        return foldedMultiply(h ^ UInt64(length), seed ^ 0x1D8E_4E27_C47D_124F)
    }
}

/// Multiplies two words to 128 bits and folds the halves together.
@inlinable func foldedMultiply(_ a: UInt64, _ b: UInt64) -> UInt64 {
    let product = a.multipliedFullWidth(by: b)
    return product.high ^ product.low
}

/// Compares two byte strings lexicographically by unsigned byte: negative, zero or
/// positive like `memcmp`, with a shorter prefix ordering first.
@inlinable func compareBytes(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeRawBufferPointer) -> Int {
    let common = Swift.min(lhs.count, rhs.count)
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
public func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var text = ""
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0f)])
    }
    return text
}

/// The bytes of lower-case hexadecimal `text` (what `hexString` writes); `nil` when it
/// has an odd length or a character that is not `0-9a-f`.
public func hexBytes(_ text: some StringProtocol) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0") ... UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a") ... UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(digits.count / 2)
    var position = 0
    while position < digits.count {
        guard let high = nibble(digits[position]), let low = nibble(digits[position + 1]) else { return nil }
        bytes.append(high << 4 | low)
        position += 2
    }
    return bytes
}
