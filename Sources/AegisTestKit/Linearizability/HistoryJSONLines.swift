/// Reads and writes histories as JSON lines: one flat JSON object per operation, so
/// real-process testers can append operations as they complete and re-check a
/// recorded history later. No Foundation: the format is small and fixed.
///
/// Each line has `id`, `client`, `key`, `kind` (`read`, `write`, `cas`), `status`
/// (`ok`, `fail`, `info`), `invoke` and `complete` (a time or `null`), plus:
/// - `write`: `value`;
/// - `cas`: `expected` and `value` (the new value), and `swapped` (`true`/`false`)
///   when ok;
/// - `read`: `output` when ok.
///
/// Register values are unsigned integers or `null` (absent). For example:
///
/// ```
/// {"id":0,"client":1,"key":7,"kind":"write","value":5,"status":"ok","invoke":10,"complete":20}
/// {"id":1,"client":2,"key":7,"kind":"read","output":5,"status":"ok","invoke":12,"complete":30}
/// {"id":2,"client":3,"key":7,"kind":"cas","expected":5,"value":6,"status":"info","invoke":40,"complete":null}
/// ```
///
/// The decoder ignores unknown fields whose values are scalars, and blank lines.
public enum HistoryJSONLines {
    /// One line (without the newline) for `operation`.
    public static func encode(_ operation: RegisterOperation) -> String {
        var fields: [(String, String)] = [
            ("id", "\(operation.id.rawValue)"),
            ("client", "\(operation.client)"),
            ("key", "\(operation.key)"),
            ("kind", "\"\(operation.kind.rawValue)\""),
        ]
        let ok = operation.status == .ok
        switch operation.kind {
        case .read:
            if ok { fields.append(("output", json(operation.output))) }
        case .write:
            fields.append(("value", json(operation.value)))
        case .compareAndSet:
            fields.append(("expected", json(operation.expected)))
            fields.append(("value", json(operation.value)))
            if ok { fields.append(("swapped", "\(operation.swapped)")) }
        }
        fields.append(("status", "\"\(operation.status.rawValue)\""))
        fields.append(("invoke", "\(operation.invokeTime)"))
        fields.append(("complete", json(operation.completeTime)))
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    /// The lines for `operations`, each ending in a newline.
    public static func encode(_ operations: [RegisterOperation]) -> String {
        operations.map { encode($0) + "\n" }.joined()
    }

    /// Decodes every non-blank line of `text`.
    public static func decode(_ text: String) throws(HistoryDecodingError) -> [RegisterOperation] {
        var operations: [RegisterOperation] = []
        // Split on bytes: as Characters, "\r\n" is one grapheme and would not split.
        for (number, bytes) in text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            guard bytes.contains(where: { !isSpace($0) }) else { continue }
            do {
                operations.append(try decodeLine(Substring(bytes)))
            } catch {
                throw HistoryDecodingError(line: number + 1, message: error.message)
            }
        }
        return operations
    }

    /// Decodes one line.
    public static func decodeLine(_ line: Substring) throws(HistoryDecodingError) -> RegisterOperation {
        var parser = FlatJSONParser(bytes: Array(line.utf8))
        let fields = try parser.parseObject()
        func unsigned(_ name: String) throws(HistoryDecodingError) -> UInt64 {
            guard case .unsigned(let v)? = fields[name] else { throw .field(name, "an unsigned integer") }
            return v
        }
        func optional(_ name: String, required: Bool) throws(HistoryDecodingError) -> UInt64? {
            switch fields[name] {
            case .unsigned(let v)?: return v
            case .null?: return nil
            case nil where !required: return nil
            default: throw .field(name, "an unsigned integer or null")
            }
        }
        guard case .string(let kindName)? = fields["kind"], let kind = RegisterOperation.Kind(rawValue: kindName) else {
            throw .field("kind", "\"read\", \"write\" or \"cas\"")
        }
        guard case .string(let statusName)? = fields["status"],
              let status = RegisterOperation.Status(rawValue: statusName) else {
            throw .field("status", "\"ok\", \"fail\" or \"info\"")
        }
        let id = try unsigned("id")
        guard id <= UInt64(Int.max) else { throw .field("id", "at most \(Int.max)") }
        var operation = RegisterOperation(
            id: OperationID(Int(id)), client: try unsigned("client"), key: try unsigned("key"), kind: kind,
            invokeTime: try unsigned("invoke"), completeTime: try optional("complete", required: false),
            status: status)
        let ok = status == .ok
        switch kind {
        case .read:
            operation.output = try optional("output", required: ok)
        case .write:
            operation.value = try optional("value", required: true)
        case .compareAndSet:
            operation.expected = try optional("expected", required: true)
            operation.value = try optional("value", required: true)
            if case .bool(let swapped)? = fields["swapped"] {
                operation.swapped = swapped
            } else if ok || fields["swapped"] != nil {
                throw .field("swapped", "true or false")
            }
        }
        return operation
    }

    /// A value as JSON: the number or `null`.
    private static func json(_ value: UInt64?) -> String { value.map { "\($0)" } ?? "null" }
}

/// A history line that could not be decoded.
public struct HistoryDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The 1-based line number (0 when decoding a single line).
    public var line: Int
    /// What was wrong.
    public var message: String

    /// Creates an error.
    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }

    static func field(_ name: String, _ expected: String) -> HistoryDecodingError {
        HistoryDecodingError(line: 0, message: "field \"\(name)\" must be \(expected)")
    }

    public var description: String { "line \(line): \(message)" }
}

/// Whether a byte is JSON whitespace.
private func isSpace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
}

/// Parses one flat JSON object (scalar values only) from UTF-8 bytes.
private struct FlatJSONParser {
    enum Value: Equatable {
        case string(String)
        case unsigned(UInt64)
        /// Any other number (negative, fractional, too large); kept only to be skipped.
        case otherNumber
        case bool(Bool)
        case null
    }

    let bytes: [UInt8]
    var position = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseObject() throws(HistoryDecodingError) -> [String: Value] {
        var fields: [String: Value] = [:]
        try expect(UInt8(ascii: "{"))
        skipSpace()
        if peek() == UInt8(ascii: "}") {
            position += 1
        } else {
            while true {
                skipSpace()
                let name = try parseString()
                try expect(UInt8(ascii: ":"))
                guard fields.updateValue(try parseValue(), forKey: name) == nil else {
                    throw fail("duplicate field \"\(name)\"")
                }
                skipSpace()
                if peek() == UInt8(ascii: ",") { position += 1; continue }
                try expect(UInt8(ascii: "}"))
                break
            }
        }
        skipSpace()
        guard position == bytes.count else { throw fail("unexpected text after the object") }
        return fields
    }

    private mutating func parseValue() throws(HistoryDecodingError) -> Value {
        skipSpace()
        guard let byte = peek() else { throw fail("missing value") }
        switch byte {
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return parseNumber()
        default: throw fail("unsupported value (only strings, numbers, booleans and null)")
        }
    }

    private mutating func parseNumber() -> Value {
        var value: UInt64? = 0
        let start = position
        while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
            let digit = UInt64(byte - UInt8(ascii: "0"))
            value = value.flatMap { v in
                let (times, o1) = v.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times.addingReportingOverflow(digit)
                return o1 || o2 ? nil : sum
            }
            position += 1
        }
        let isNumberByte: (UInt8) -> Bool = { "+-.eE0123456789".utf8.contains($0) }
        var plain = position > start
        while let byte = peek(), isNumberByte(byte) {
            plain = false
            position += 1
        }
        if plain, let value { return .unsigned(value) }
        return .otherNumber
    }

    private mutating func parseString() throws(HistoryDecodingError) -> String {
        try expect(UInt8(ascii: "\""))
        var out: [UInt8] = []
        while let byte = peek() {
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let escaped = peek() else { throw fail("unterminated string") }
                position += 1
                switch escaped {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    // Kept as written: only field names and enum values are read back.
                    out.append(contentsOf: Array("\\u".utf8))
                default: out.append(escaped)
                }
            default:
                out.append(byte)
            }
        }
        throw fail("unterminated string")
    }

    private mutating func literal(_ word: String) throws(HistoryDecodingError) {
        for expected in word.utf8 {
            guard peek() == expected else { throw fail("invalid literal") }
            position += 1
        }
    }

    private mutating func expect(_ byte: UInt8) throws(HistoryDecodingError) {
        skipSpace()
        guard peek() == byte else { throw fail("expected '\(Character(Unicode.Scalar(byte)))'") }
        position += 1
    }

    private mutating func skipSpace() {
        while let byte = peek(), isSpace(byte) { position += 1 }
    }

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private func fail(_ message: String) -> HistoryDecodingError {
        HistoryDecodingError(line: 0, message: "\(message) at column \(position + 1)")
    }
}
