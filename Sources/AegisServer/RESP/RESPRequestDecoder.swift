public import NIOCore

/// One client command: its arguments as received, the command name first. Arguments
/// stay bytes (slices of the read buffer, not copies).
public struct RESPRequest: Sendable, Hashable {
    /// The arguments, the command name first; never empty.
    public var arguments: [ByteBuffer]

    /// Creates a request from its arguments.
    public init(arguments: [ByteBuffer]) { self.arguments = arguments }

    /// Creates a request from text arguments (for tests and tools).
    public init(_ arguments: String...) {
        self.arguments = arguments.map { ByteBuffer(string: $0) }
    }
}

/// Limits on what one RESP connection may send. Input over a limit gets
/// `-ERR Protocol error: …` and the connection is closed.
public struct RESPLimits: Sendable, Hashable {
    /// The longest bulk string (one argument), in bytes. Default 64 MiB (Redis allows
    /// 512 MiB; the state machine's value limit is far below either).
    public var maxBulkLength: Int
    /// The most arguments in one command. Default 1,048,576.
    public var maxArrayLength: Int
    /// The longest inline command line (commands sent as plain text), in bytes.
    /// Default 64 KiB, as in Redis.
    public var maxInlineLength: Int
    /// The most bytes of arguments in one command. Default 128 MiB.
    public var maxRequestBytes: Int
    /// The most commands received on a connection but not yet answered. A client that
    /// keeps sending without reading the replies is answered up to the limit, then
    /// gets an error and is disconnected. Default 65,536.
    public var maxPendingReplies: Int

    /// Creates limits; see each property for its default.
    public init(maxBulkLength: Int = 64 << 20, maxArrayLength: Int = 1 << 20, maxInlineLength: Int = 64 << 10,
                maxRequestBytes: Int = 128 << 20, maxPendingReplies: Int = 65_536) {
        self.maxBulkLength = maxBulkLength
        self.maxArrayLength = maxArrayLength
        self.maxInlineLength = maxInlineLength
        self.maxRequestBytes = maxRequestBytes
        self.maxPendingReplies = maxPendingReplies
    }
}

/// A streaming decoder of client commands: RESP arrays of bulk strings, and inline
/// commands (a line of space-separated words, as `redis-cli` and telnet users send).
///
/// Partial input is kept until the rest arrives; the arguments of a command already
/// received are consumed as they complete, so a large command is scanned once.
/// Malformed input and input over the limits throw `RESPProtocolError`.
public struct RESPRequestDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = RESPRequest

    /// The limits in force.
    public let limits: RESPLimits
    /// The command being received: its announced argument count and the arguments
    /// complete so far. Invariant: `arguments.count < expected`.
    private var partial: (expected: Int, arguments: [ByteBuffer], bytes: Int)?

    /// Creates a decoder with the given limits.
    public init(limits: RESPLimits = RESPLimits()) {
        self.limits = limits
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let request = try next(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(request))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // Commands that arrived complete before the end of input are still answered.
        try decode(context: context, buffer: &buffer)
    }

    /// Reads the next complete command from `buffer`, consuming its bytes; `nil` when
    /// more bytes are needed. Empty inline lines and empty arrays are skipped, as
    /// Redis does.
    public mutating func next(from buffer: inout ByteBuffer) throws(RESPProtocolError) -> RESPRequest? {
        while true {
            if partial == nil {
                guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
                guard first == UInt8(ascii: "*") else {
                    guard let line = try nextInline(from: &buffer) else { return nil }
                    if line.isEmpty { continue }
                    return RESPRequest(arguments: line)
                }
                guard let header = try readNumber(buffer, at: buffer.readerIndex + 1, what: "multibulk length") else { return nil }
                guard header.value <= limits.maxArrayLength else {
                    throw RESPProtocolError("a command of \(header.value) arguments is over the limit of \(limits.maxArrayLength)")
                }
                buffer.moveReaderIndex(to: header.next)
                if header.value <= 0 { continue }
                partial = (Int(header.value), [], 0)
                partial?.arguments.reserveCapacity(min(Int(header.value), 1024))
            }
            guard var current = partial else { continue }
            partial = nil  // keeps `current.arguments` uniquely referenced while it grows
            defer { if current.arguments.count < current.expected { partial = current } }
            while current.arguments.count < current.expected {
                guard let argument = try nextBulk(from: &buffer, requestBytes: current.bytes) else { return nil }
                current.bytes += argument.readableBytes
                current.arguments.append(argument)
            }
            return RESPRequest(arguments: current.arguments)
        }
    }

    /// Reads one `$<length>\r\n<bytes>\r\n` argument, consuming it only when complete.
    private func nextBulk(from buffer: inout ByteBuffer, requestBytes: Int) throws(RESPProtocolError) -> ByteBuffer? {
        guard let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        guard type == UInt8(ascii: "$") else {
            throw RESPProtocolError("expected '$', got '\(Character(Unicode.Scalar(type)))'")
        }
        guard let header = try readNumber(buffer, at: buffer.readerIndex + 1, what: "bulk length") else { return nil }
        guard header.value >= 0 else { throw RESPProtocolError("invalid bulk length") }
        guard header.value <= limits.maxBulkLength else {
            throw RESPProtocolError("an argument of \(header.value) bytes is over the limit of \(limits.maxBulkLength) bytes")
        }
        let length = Int(header.value)
        guard requestBytes + length <= limits.maxRequestBytes else {
            throw RESPProtocolError("a command of more than \(limits.maxRequestBytes) bytes is over the limit")
        }
        guard buffer.writerIndex - header.next >= length + 2 else { return nil }
        guard buffer.getInteger(at: header.next + length, as: UInt16.self) == 0x0D0A else {
            throw RESPProtocolError("bulk string of \(length) bytes not followed by CRLF")
        }
        buffer.moveReaderIndex(to: header.next)
        let argument = buffer.readSlice(length: length)
        buffer.moveReaderIndex(forwardBy: 2)
        return argument
    }

    /// Reads a decimal number terminated by CRLF starting at `index`: its value and
    /// the index after the CRLF. `nil` when the CRLF has not arrived.
    private func readNumber(_ buffer: ByteBuffer, at index: Int, what: String) throws(RESPProtocolError) -> (value: Int64, next: Int)? {
        var position = index
        var value: Int64 = 0
        var negative = false
        var digits = 0
        while let byte = buffer.getInteger(at: position, as: UInt8.self) {
            switch byte {
            case UInt8(ascii: "\r"):
                guard let lf = buffer.getInteger(at: position + 1, as: UInt8.self) else { return nil }
                guard lf == UInt8(ascii: "\n"), digits > 0 else { throw RESPProtocolError("invalid \(what)") }
                return (negative ? -value : value, position + 2)
            case UInt8(ascii: "-") where position == index:
                negative = true
            case UInt8(ascii: "0") ... UInt8(ascii: "9"):
                digits += 1
                guard digits <= 18 else { throw RESPProtocolError("invalid \(what)") }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            default:
                throw RESPProtocolError("invalid \(what)")
            }
            position += 1
        }
        return nil
    }

    /// Reads an inline command line; `[]` for an empty line, `nil` when the line has
    /// not ended yet.
    private func nextInline(from buffer: inout ByteBuffer) throws(RESPProtocolError) -> [ByteBuffer]? {
        let readable = buffer.readableBytesView
        guard let newline = readable.firstIndex(of: UInt8(ascii: "\n")) else {
            if readable.count > limits.maxInlineLength { throw RESPProtocolError("too big inline request") }
            return nil
        }
        let lineLength = newline - readable.startIndex
        guard lineLength <= limits.maxInlineLength else { throw RESPProtocolError("too big inline request") }
        var line = buffer.readBytes(length: lineLength + 1) ?? []
        line.removeLast()
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return try splitInlineArguments(line).map { ByteBuffer(bytes: $0) }
    }
}

/// Splits an inline command line into arguments like Redis's `sdssplitargs`: words
/// separated by spaces or tabs; `"double quotes"` with `\n \r \t \b \a \\ \" \xHH`
/// escapes; `'single quotes'` with `\'`. A closing quote must be followed by a space
/// or the end of the line.
func splitInlineArguments(_ line: [UInt8]) throws(RESPProtocolError) -> [[UInt8]] {
    var arguments: [[UInt8]] = []
    var index = 0
    func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 || byte == 10 || byte == 13 || byte == 11 || byte == 12 }
    while true {
        while index < line.count && isSpace(line[index]) { index += 1 }
        guard index < line.count else { return arguments }
        var current: [UInt8] = []
        var quote: UInt8? = nil
        while index < line.count {
            let byte = line[index]
            if let open = quote {
                if byte == UInt8(ascii: "\\") && index + 1 < line.count {
                    let escaped = line[index + 1]
                    if open == UInt8(ascii: "\"") {
                        if escaped == UInt8(ascii: "x"), index + 3 < line.count,
                           let high = hexValue(line[index + 2]), let low = hexValue(line[index + 3]) {
                            current.append(high << 4 | low)
                            index += 4
                            continue
                        }
                        switch escaped {
                        case UInt8(ascii: "n"): current.append(10)
                        case UInt8(ascii: "r"): current.append(13)
                        case UInt8(ascii: "t"): current.append(9)
                        case UInt8(ascii: "b"): current.append(8)
                        case UInt8(ascii: "a"): current.append(7)
                        default: current.append(escaped)
                        }
                        index += 2
                        continue
                    } else if escaped == UInt8(ascii: "'") {
                        current.append(escaped)
                        index += 2
                        continue
                    }
                }
                if byte == open {
                    index += 1
                    guard index == line.count || isSpace(line[index]) else {
                        throw RESPProtocolError("unbalanced quotes in request")
                    }
                    quote = nil
                    break
                }
                current.append(byte)
                index += 1
            } else {
                if isSpace(byte) { break }
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                    quote = byte
                } else {
                    current.append(byte)
                }
                index += 1
            }
        }
        if quote != nil { throw RESPProtocolError("unbalanced quotes in request") }
        arguments.append(current)
    }
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0") ... UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a") ... UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A") ... UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
}
