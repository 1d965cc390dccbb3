public import NIOCore

/// The RESP protocol version of a connection: RESP2 by default, RESP3 after `HELLO 3`.
public enum RESPVersion: Int, Sendable, Hashable {
    case resp2 = 2
    case resp3 = 3
}

/// A RESP value: what the server replies, and what a client reads.
///
/// RESP3-only types are written in their RESP2 form on RESP2 connections: maps and
/// sets as flat arrays, `null` as a null bulk string, booleans as integers, doubles
/// and big numbers as bulk strings, verbatim strings as bulk strings.
public indirect enum RESPValue: Sendable, Hashable {
    /// `+OK`: a short status text without CR or LF.
    case simpleString(String)
    /// `-ERR message`: the text starts with the error code (`ERR`, `WRONGTYPE`, …).
    case error(String)
    /// `:42`.
    case integer(Int64)
    /// `$3\r\nfoo`: binary-safe bytes.
    case bulkString([UInt8])
    /// Nothing: a null bulk string in RESP2, `_` in RESP3.
    case null
    /// `*2\r\n…`.
    case array([RESPValue])
    /// `%1\r\n…` (RESP3): key-value pairs in order.
    case map([RESPMapEntry])
    /// `~2\r\n…` (RESP3).
    case set([RESPValue])
    /// `#t` (RESP3).
    case boolean(Bool)
    /// `,1.5` (RESP3).
    case double(Double)
    /// `(12345678901234567890` (RESP3): the decimal digits.
    case bigNumber(String)
    /// `=15\r\ntxt:Some text` (RESP3): a three-letter format and the text.
    case verbatimString(format: String, text: [UInt8])
    /// `>2\r\n…` (RESP3): an out-of-band message.
    case push([RESPValue])

    /// A bulk string holding the UTF-8 bytes of `text`.
    public static func bulk(_ text: String) -> RESPValue { .bulkString(Array(text.utf8)) }

    /// The `+OK` reply.
    public static let ok = RESPValue.simpleString("OK")

    /// The bytes of a bulk, simple or verbatim string; `nil` for other values.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): return bytes
        case .simpleString(let text): return Array(text.utf8)
        case .verbatimString(_, let text): return text
        default: return nil
        }
    }

    /// The text of a bulk, simple or verbatim string (invalid UTF-8 repaired).
    public var text: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }
}

/// One key-value pair of a RESP3 map.
public struct RESPMapEntry: Sendable, Hashable {
    /// The key.
    public var key: RESPValue
    /// The value.
    public var value: RESPValue

    /// Creates a pair.
    public init(_ key: RESPValue, _ value: RESPValue) {
        self.key = key
        self.value = value
    }
}

extension ByteBuffer {
    /// Writes `value` in the wire form of `version`.
    public mutating func writeRESPValue(_ value: RESPValue, version: RESPVersion) {
        switch value {
        case .simpleString(let text):
            writeInteger(UInt8(ascii: "+"))
            writeRESPLine(text)
        case .error(let text):
            writeInteger(UInt8(ascii: "-"))
            writeRESPLine(text)
        case .integer(let number):
            writeRESPHeader(UInt8(ascii: ":"), number)
        case .bulkString(let bytes):
            writeRESPBulk(bytes)
        case .null:
            if version == .resp3 { writeStaticString("_\r\n") } else { writeStaticString("$-1\r\n") }
        case .array(let elements):
            writeRESPAggregate(UInt8(ascii: "*"), elements, version: version)
        case .set(let elements):
            writeRESPAggregate(version == .resp3 ? UInt8(ascii: "~") : UInt8(ascii: "*"), elements, version: version)
        case .push(let elements):
            writeRESPAggregate(version == .resp3 ? UInt8(ascii: ">") : UInt8(ascii: "*"), elements, version: version)
        case .map(let entries):
            if version == .resp3 {
                writeRESPHeader(UInt8(ascii: "%"), Int64(entries.count))
            } else {
                writeRESPHeader(UInt8(ascii: "*"), Int64(entries.count * 2))
            }
            for entry in entries {
                writeRESPValue(entry.key, version: version)
                writeRESPValue(entry.value, version: version)
            }
        case .boolean(let flag):
            if version == .resp3 {
                writeStaticString(flag ? "#t\r\n" : "#f\r\n")
            } else {
                writeRESPHeader(UInt8(ascii: ":"), flag ? 1 : 0)
            }
        case .double(let number):
            let text = number.isNaN ? "nan" : number.isInfinite ? (number < 0 ? "-inf" : "inf") : "\(number)"
            if version == .resp3 {
                writeInteger(UInt8(ascii: ","))
                writeRESPLine(text)
            } else {
                writeRESPBulk(Array(text.utf8))
            }
        case .bigNumber(let digits):
            if version == .resp3 {
                writeInteger(UInt8(ascii: "("))
                writeRESPLine(digits)
            } else {
                writeRESPBulk(Array(digits.utf8))
            }
        case .verbatimString(let format, let text):
            if version == .resp3 {
                writeRESPHeader(UInt8(ascii: "="), Int64(format.utf8.count + 1 + text.count))
                writeString(format)
                writeInteger(UInt8(ascii: ":"))
                writeBytes(text)
                writeStaticString("\r\n")
            } else {
                writeRESPBulk(text)
            }
        }
    }

    /// Writes `$<count>\r\n<bytes>\r\n`.
    @inlinable
    public mutating func writeRESPBulk(_ bytes: [UInt8]) {
        writeRESPHeader(UInt8(ascii: "$"), Int64(bytes.count))
        writeBytes(bytes)
        writeStaticString("\r\n")
    }

    /// Writes a type byte, a decimal number and CRLF, such as `*3\r\n` or `:42\r\n`.
    @inlinable
    public mutating func writeRESPHeader(_ type: UInt8, _ number: Int64) {
        writeInteger(type)
        if number >= 0 && number < 10 {
            writeInteger(UInt8(ascii: "0") + UInt8(number))
        } else {
            writeString(String(number))
        }
        writeStaticString("\r\n")
    }

    /// Writes `text` with CR and LF replaced by spaces (simple strings and errors are
    /// one line), then CRLF.
    mutating func writeRESPLine(_ text: String) {
        if text.utf8.contains(where: { $0 == 13 || $0 == 10 }) {
            writeBytes(text.utf8.map { $0 == 13 || $0 == 10 ? UInt8(ascii: " ") : $0 })
        } else {
            writeString(text)
        }
        writeStaticString("\r\n")
    }

    private mutating func writeRESPAggregate(_ type: UInt8, _ elements: [RESPValue], version: RESPVersion) {
        writeRESPHeader(type, Int64(elements.count))
        for element in elements { writeRESPValue(element, version: version) }
    }
}
