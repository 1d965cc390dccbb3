public import NIOCore

/// One client command: its arguments as received, the command name first. Arguments
/// stay bytes (slices of the read buffer, not copies).
public struct RESPRequest: Sendable, Hashable {
    /// The arguments, the command name first; never empty unless `refusal` is set.
    public var arguments: [ByteBuffer]
    /// Set when the command was refused while it was received (an argument or the
    /// whole command over a limit): the error to reply in its place. `arguments` then
    /// holds at most the command name, and the command is not run.
    public var refusal: String?

    /// Creates a request from its arguments.
    public init(arguments: [ByteBuffer], refusal: String? = nil) {
        self.arguments = arguments
        self.refusal = refusal
    }

    /// Creates a request from text arguments (for tests and tools).
    public init(_ arguments: String...) {
        self.arguments = arguments.map { ByteBuffer(string: $0) }
    }
}

/// A streaming decoder of client commands: RESP arrays of bulk strings, and inline
/// commands (a line of space-separated words, as `redis-cli` and telnet users send).
///
/// Partial input is kept until the rest arrives; the arguments of a command already
/// received are consumed as they complete, so a large command is scanned once. A
/// command with an argument over `RESPLimits.maxValueSize`, or arguments over
/// `RESPLimits.maxRequestBytes`, is returned at once as a request with a `refusal`,
/// and its remaining bytes are skipped as they arrive. Malformed input and input over
/// the protocol limits throw `RESPProtocolError`.
public struct RESPRequestDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = RESPRequest

    /// The limits in force.
    public let limits: RESPLimits
    /// The command being received: its announced argument count, the arguments
    /// complete so far and the bytes they count toward `maxRequestBytes`.
    /// Invariant: `arguments.count < expected`.
    private var partial: (expected: Int, arguments: [ByteBuffer], bytes: Int)?
    /// A refused command being skipped: the bytes left of the current argument
    /// (including its CRLF), then how many arguments follow.
    private var skipping: (bytes: Int, arguments: Int)?
    /// The server-wide cap on bytes held for unfinished commands, if any.
    private let budget: RESPPartialRequestBudget?
    /// The bytes this decoder holds in `budget`.
    private var reserved = 0

    /// Creates a decoder with the given limits; `budget`, when given, bounds what all
    /// decoders sharing it hold for unfinished commands.
    public init(limits: RESPLimits = RESPLimits(), budget: RESPPartialRequestBudget? = nil) {
        self.limits = limits
        self.budget = budget
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let request = try next(from: &buffer) else {
            try hold((partial?.bytes ?? 0) + buffer.readableBytes)
            return .needMoreData
        }
        // Release what the finished command held (the decoder may not be called again
        // when nothing is left); never grow here, the rest may be complete commands.
        let held = (partial?.bytes ?? 0) + buffer.readableBytes
        if held < reserved { try hold(held) }
        context.fireChannelRead(Self.wrapInboundOut(request))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // Commands that arrived complete before the end of input are still answered.
        try decode(context: context, buffer: &buffer)
    }

    public mutating func decoderRemoved(context: ChannelHandlerContext) {
        _ = budget?.update(from: reserved, to: 0)
        reserved = 0
    }

    /// Records that this connection holds `bytes` of unfinished input, within the
    /// server-wide budget.
    private mutating func hold(_ bytes: Int) throws(RESPProtocolError) {
        guard let budget, bytes != reserved else { return }
        guard budget.update(from: reserved, to: bytes) else {
            throw RESPProtocolError("unfinished commands of all clients would hold more than \(budget.limit) bytes, "
                + "the server's limit; send the command again when the server is less busy")
        }
        reserved = bytes
    }

    /// Reads the next complete (or refused) command from `buffer`, consuming its
    /// bytes; `nil` when more bytes are needed. Empty inline lines and empty arrays are
    /// skipped, as Redis does.
    public mutating func next(from buffer: inout ByteBuffer) throws(RESPProtocolError) -> RESPRequest? {
        while true {
            if skipping != nil {
                guard try skip(in: &buffer) else { return nil }
                continue
            }
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
            while current.arguments.count < current.expected {
                guard let header = try bulkHeader(buffer) else {
                    partial = current
                    return nil
                }
                let size = RESPLimits.requestBytes(forArgumentOf: header.length)
                if let refusal = refusal(length: header.length, requestBytes: current.bytes + size) {
                    // Refused before its bytes arrive: skip them, keep the stream in sync.
                    buffer.moveReaderIndex(to: header.next)
                    skipping = (header.length + 2, current.expected - current.arguments.count - 1)
                    return RESPRequest(arguments: Array(current.arguments.prefix(1)), refusal: refusal)
                }
                guard buffer.writerIndex - header.next >= header.length + 2 else {
                    partial = current
                    return nil
                }
                guard buffer.getInteger(at: header.next + header.length, as: UInt16.self) == 0x0D0A else {
                    throw RESPProtocolError("bulk string of \(header.length) bytes not followed by CRLF")
                }
                buffer.moveReaderIndex(to: header.next)
                current.arguments.append(buffer.readSlice(length: header.length) ?? ByteBuffer())
                buffer.moveReaderIndex(forwardBy: 2)
                current.bytes += size
            }
            return RESPRequest(arguments: current.arguments)
        }
    }

    /// The error reply for an argument of `length` bytes that brings its command to
    /// `requestBytes`, or `nil` when both are within the limits.
    private func refusal(length: Int, requestBytes: Int) -> String? {
        if length > limits.maxValueSize {
            return "ERR value too large: an argument of \(length) bytes is over the limit of \(limits.maxValueSize) bytes "
                + "(max value size); the command was not run"
        }
        if requestBytes > limits.maxRequestBytes {
            return "ERR request too large: the command's arguments add up to more than \(limits.maxRequestBytes) bytes "
                + "(max request size, counting 10 bytes per argument); the command was not run"
        }
        return nil
    }

    /// Skips what is left of a refused command; `true` once it is all skipped.
    private mutating func skip(in buffer: inout ByteBuffer) throws(RESPProtocolError) -> Bool {
        while var current = skipping {
            let count = min(current.bytes, buffer.readableBytes)
            buffer.moveReaderIndex(forwardBy: count)
            current.bytes -= count
            skipping = current
            if current.bytes > 0 { return false }
            guard current.arguments > 0 else {
                skipping = nil
                return true
            }
            guard let header = try bulkHeader(buffer) else { return false }
            buffer.moveReaderIndex(to: header.next)
            skipping = (header.length + 2, current.arguments - 1)
        }
        return true
    }

    /// Reads a `$<length>\r\n` header without consuming it: the length and the index
    /// after the CRLF; `nil` when the header has not arrived.
    private func bulkHeader(_ buffer: ByteBuffer) throws(RESPProtocolError) -> (length: Int, next: Int)? {
        guard let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        guard type == UInt8(ascii: "$") else {
            throw RESPProtocolError("expected '$', got '\(Character(Unicode.Scalar(type)))'")
        }
        guard let header = try readNumber(buffer, at: buffer.readerIndex + 1, what: "bulk length") else { return nil }
        guard header.value >= 0 else { throw RESPProtocolError("invalid bulk length") }
        guard header.value <= limits.maxBulkLength else {
            throw RESPProtocolError("an argument of \(header.value) bytes is over the limit of \(limits.maxBulkLength) bytes")
        }
        return (Int(header.value), header.next)
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
