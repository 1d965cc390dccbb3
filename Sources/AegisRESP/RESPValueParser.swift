public import NIOCore

/// Malformed RESP input, or input over a configured limit. The server replies
/// `-ERR Protocol error: <message>` and closes the connection, as Redis does.
public struct RESPProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, for example `invalid bulk length`.
    public var message: String

    /// Creates an error.
    public init(_ message: String) { self.message = message }

    public var description: String { "Protocol error: \(message)" }
}

/// Reads RESP2 and RESP3 values (replies, from a client's point of view) from bytes.
public enum RESPValueParser {
    /// The deepest nesting of aggregates accepted.
    public static let maxDepth = 64
    /// The longest line (simple string, error, number) accepted, in bytes.
    public static let maxLineLength = 1 << 20
    /// The longest bulk string accepted, in bytes.
    public static let maxBulkLength = 1 << 30

    /// Reads one complete value from the front of `buffer` and consumes it. Returns
    /// `nil`, consuming nothing, when `buffer` ends before the value does. RESP3
    /// attributes (`|`) are read and dropped.
    public static func parse(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> RESPValue? {
        var cursor = buffer.readerIndex
        guard let value = try parseValue(buffer, at: &cursor, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: cursor)
        return value
    }

    private static func parseValue(_ buffer: ByteBuffer, at cursor: inout Int, depth: Int) throws(RESPProtocolError) -> RESPValue? {
        guard depth <= maxDepth else { throw RESPProtocolError("values nested deeper than \(maxDepth) levels") }
        guard let type = buffer.getInteger(at: cursor, as: UInt8.self) else { return nil }
        guard let line = try readLine(buffer, from: cursor + 1) else { return nil }
        cursor = line.next
        let text = { String(decoding: buffer.viewBytes(at: line.start, length: line.length) ?? ByteBufferView(), as: UTF8.self) }
        switch type {
        case UInt8(ascii: "+"): return .simpleString(text())
        case UInt8(ascii: "-"): return .error(text())
        case UInt8(ascii: ":"):
            guard let number = Int64(text()) else { throw RESPProtocolError("invalid integer '\(text())'") }
            return .integer(number)
        case UInt8(ascii: "_"): return .null
        case UInt8(ascii: "#"):
            switch text() {
            case "t": return .boolean(true)
            case "f": return .boolean(false)
            default: throw RESPProtocolError("invalid boolean '\(text())'")
            }
        case UInt8(ascii: ","):
            let raw = text()
            switch raw {
            case "inf": return .double(.infinity)
            case "-inf": return .double(-.infinity)
            case "nan": return .double(.nan)
            default:
                guard let number = Double(raw) else { throw RESPProtocolError("invalid double '\(raw)'") }
                return .double(number)
            }
        case UInt8(ascii: "("): return .bigNumber(text())
        case UInt8(ascii: "$"), UInt8(ascii: "="), UInt8(ascii: "!"):
            guard let length = Int(text()), length >= -1, length <= maxBulkLength else {
                throw RESPProtocolError("invalid bulk length '\(text())'")
            }
            if length == -1 { return .null }
            guard buffer.writerIndex - cursor >= length + 2 else { return nil }
            guard let bytes = buffer.getBytes(at: cursor, length: length) else { return nil }
            guard buffer.getInteger(at: cursor + length, as: UInt16.self) == 0x0D0A else {
                throw RESPProtocolError("bulk string not terminated by CRLF")
            }
            cursor += length + 2
            if type == UInt8(ascii: "!") { return .error(String(decoding: bytes, as: UTF8.self)) }
            if type == UInt8(ascii: "=") {
                guard bytes.count >= 4, bytes[3] == UInt8(ascii: ":") else { throw RESPProtocolError("invalid verbatim string") }
                return .verbatimString(format: String(decoding: bytes[0 ..< 3], as: UTF8.self), text: Array(bytes[4...]))
            }
            return .bulkString(bytes)
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            guard let count = Int(text()), count >= -1 else { throw RESPProtocolError("invalid aggregate length '\(text())'") }
            if count == -1 { return .null }
            let isPairs = type == UInt8(ascii: "%") || type == UInt8(ascii: "|")
            // A map's count is of pairs: twice as many values (checked: the count comes
            // from the peer; found by fuzz-resp).
            let (total, overflow) = count.multipliedReportingOverflow(by: isPairs ? 2 : 1)
            guard !overflow else { throw RESPProtocolError("invalid aggregate length '\(count)'") }
            var elements: [RESPValue] = []
            elements.reserveCapacity(min(total, 1024))
            for _ in 0 ..< total {
                guard let element = try parseValue(buffer, at: &cursor, depth: depth + 1) else { return nil }
                elements.append(element)
            }
            switch type {
            case UInt8(ascii: "~"): return .set(elements)
            case UInt8(ascii: ">"): return .push(elements)
            case UInt8(ascii: "%"):
                return .map(stride(from: 0, to: elements.count, by: 2).map { RESPMapEntry(elements[$0], elements[$0 + 1]) })
            case UInt8(ascii: "|"):
                // An attribute describes the value that follows it; clients may ignore it.
                return try parseValue(buffer, at: &cursor, depth: depth)
            default: return .array(elements)
            }
        default:
            throw RESPProtocolError("unexpected type byte \(type) ('\(Character(Unicode.Scalar(type)))')")
        }
    }

    /// Finds the CRLF-terminated line starting at `start`: its length and the index
    /// after the CRLF; `nil` if the CRLF has not arrived.
    private static func readLine(_ buffer: ByteBuffer, from start: Int) throws(RESPProtocolError) -> (start: Int, length: Int, next: Int)? {
        guard start <= buffer.writerIndex else { return nil }
        let found = buffer.withUnsafeReadableBytes { raw -> Int? in
            let base = start - buffer.readerIndex
            guard base >= 0, base <= raw.count else { return nil }
            var index = base
            while index + 1 < raw.count {
                if raw[index] == 13 && raw[index + 1] == 10 { return index - base }
                index += 1
            }
            return nil
        }
        guard let length = found else {
            if buffer.writerIndex - start > maxLineLength { throw RESPProtocolError("line longer than \(maxLineLength) bytes") }
            return nil
        }
        return (start, length, start + length + 2)
    }
}

/// A decoder for a RESP client's channel pipeline: turns the server's bytes into
/// `RESPValue`s.
public struct RESPValueDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = RESPValue

    /// Creates a decoder.
    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let value = try RESPValueParser.parse(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(value))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}
