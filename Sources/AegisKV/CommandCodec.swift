// The binary encoding of a command, stored as a log entry's data.
//
// Layout (version 1), all lengths and integers are unsigned LEB128 varints:
//
//     byte 0      encoding version (1)
//     byte 1      CommandType raw value
//     then, by type:
//       get, delete      key
//       set              key, value
//       compareAndSwap   key, tag (0 = expected value, 1 = expected version),
//                        bytes (tag 0) or varint version (tag 1), new value
//       increment        key, zig-zag varint amount
//       custom           name (UTF-8, 1...255 bytes), key, payload
//     where key, value, bytes, name and payload are a varint length then the bytes.
//
// Decoding is strict: an unknown version or type, a truncated field, an overlong
// varint or trailing bytes are errors.

extension Command {
    /// The encoding version `encoded()` writes and `init(decoding:)` reads.
    public static let encodingVersion: UInt8 = 1

    /// The longest custom command name, in UTF-8 bytes.
    public static let maxCustomNameSize = 255

    /// The command's compact binary encoding, for a log entry's data.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(encodedSize)
        bytes.append(Command.encodingVersion)
        bytes.append(type.rawValue)
        switch self {
        case .get(let key), .delete(let key):
            bytes.appendKey(key)
        case .set(let key, let value):
            bytes.appendKey(key)
            bytes.appendLengthPrefixed(value)
        case .compareAndSwap(let key, let expected, let new):
            bytes.appendKey(key)
            switch expected {
            case .value(let value):
                bytes.append(0)
                bytes.appendLengthPrefixed(value)
            case .version(let version):
                bytes.append(1)
                bytes.appendVarint(version)
            }
            bytes.appendLengthPrefixed(new)
        case .increment(let key, let amount):
            bytes.appendKey(key)
            bytes.appendVarint(zigZag(amount))
        case .custom(let name, let key, let payload):
            bytes.appendLengthPrefixed(Array(name.utf8))
            bytes.appendKey(key)
            bytes.appendLengthPrefixed(payload)
        }
        return bytes
    }

    /// The exact size of `encoded()`.
    public var encodedSize: Int {
        func field(_ count: Int) -> Int { varintSize(UInt64(count)) + count }
        switch self {
        case .get(let key), .delete(let key):
            return 2 + field(key.count)
        case .set(let key, let value):
            return 2 + field(key.count) + field(value.count)
        case .compareAndSwap(let key, let expected, let new):
            let expectation: Int
            switch expected {
            case .value(let value): expectation = field(value.count)
            case .version(let version): expectation = varintSize(version)
            }
            return 2 + field(key.count) + 1 + expectation + field(new.count)
        case .increment(let key, let amount):
            return 2 + field(key.count) + varintSize(zigZag(amount))
        case .custom(let name, let key, let payload):
            return 2 + field(name.utf8.count) + field(key.count) + field(payload.count)
        }
    }

    /// Decodes a command from its binary encoding.
    ///
    /// - Throws: `KVError.unsupportedEncodingVersion` or `KVError.malformedCommand`
    ///   when the bytes are not exactly one valid command.
    public init(decoding bytes: [UInt8]) throws(KVError) {
        let decoded = bytes.withUnsafeBytes { raw in Result { () throws(KVError) in try Command.decode(raw) } }
        self = try decoded.get()
    }

    /// Decodes a command from raw bytes; the hot path of `StateMachine.apply(_:)`.
    @inlinable static func decode(_ raw: UnsafeRawBufferPointer) throws(KVError) -> Command {
        var reader = ByteReader(raw)
        guard let version = reader.readByte() else { throw .malformedCommand("no bytes") }
        guard version == encodingVersion else { throw .unsupportedEncodingVersion(version) }
        guard let rawType = reader.readByte() else { throw .malformedCommand("missing the command type") }
        guard let type = CommandType(rawValue: rawType) else {
            throw .malformedCommand("unknown command type \(rawType)")
        }
        let command: Command
        switch type {
        case .get:
            command = .get(try reader.readKey())
        case .delete:
            command = .delete(try reader.readKey())
        case .set:
            let key = try reader.readKey()
            command = .set(key, try reader.readField("value"))
        case .compareAndSwap:
            let key = try reader.readKey()
            let expected: Expectation
            switch reader.readByte() {
            case 0: expected = .value(try reader.readField("expected value"))
            case 1: expected = .version(try reader.readCommandVarint("expected version"))
            case let tag?: throw .malformedCommand("unknown compare-and-swap expectation tag \(tag)")
            case nil: throw .malformedCommand("truncated before the compare-and-swap expectation")
            }
            command = .compareAndSwap(key, expected: expected, new: try reader.readField("new value"))
        case .increment:
            let key = try reader.readKey()
            command = .increment(key, by: unZigZag(try reader.readCommandVarint("increment amount")))
        case .custom:
            let nameBytes = try reader.readField("custom command name")
            guard (1 ... maxCustomNameSize).contains(nameBytes.count),
                  let name = String(validating: nameBytes, as: UTF8.self) else {
                throw .malformedCommand("the custom command name must be 1 to \(maxCustomNameSize) bytes of UTF-8")
            }
            let key = try reader.readKey()
            command = .custom(name: name, key: key, payload: try reader.readField("custom payload"))
        }
        guard reader.remaining == 0 else {
            throw .malformedCommand("\(reader.remaining) unexpected bytes after the \(type) command")
        }
        return command
    }
}

extension ByteReader {
    /// Reads a length-prefixed field of a command, copying it into a new array.
    @inlinable mutating func readField(_ name: String) throws(KVError) -> [UInt8] {
        let remaining = self.remaining
        guard let field = try readLengthPrefixed(
            limit: Int.max,
            tooLong: { _ in .malformedCommand("the \(name) is too long") },
            badVarint: { .malformedCommand("the length of the \(name) is not a valid varint") })
        else { throw .malformedCommand("truncated in the \(name) (\(remaining) bytes left)") }
        return copyBytes(field)
    }

    /// Reads the key field of a command.
    @inlinable mutating func readKey() throws(KVError) -> Key {
        let remaining = self.remaining
        guard let field = try readLengthPrefixed(
            limit: Int.max,
            tooLong: { _ in .malformedCommand("the key is too long") },
            badVarint: { .malformedCommand("the length of the key is not a valid varint") })
        else { throw .malformedCommand("truncated in the key (\(remaining) bytes left)") }
        return Key(copying: field)
    }

    /// Reads a varint field of a command.
    @inlinable mutating func readCommandVarint(_ name: String) throws(KVError) -> UInt64 {
        guard let value = try readVarint(context: { .malformedCommand("the \(name) is not a valid varint") }) else {
            throw .malformedCommand("truncated in the \(name)")
        }
        return value
    }
}

extension Array where Element == UInt8 {
    /// Appends a varint length followed by the key's bytes.
    mutating func appendKey(_ key: Key) {
        appendVarint(UInt64(key.count))
        key.append(to: &self)
    }
}

/// Copies raw bytes into a new array with one allocation and one `memcpy`.
@inlinable func copyBytes(_ raw: UnsafeRawBufferPointer) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: raw.count) { buffer, initialized in
        UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
        initialized = raw.count
    }
}
