internal import AegisRaft
internal import NIOCore

/// Constants of the wire format. See the module's DocC article for the layout.
public enum WireFormat {
    /// The encoding version written in every frame. A decoder refuses other versions.
    public static let version: UInt8 = 1
    /// The size of the big-endian `UInt32` length prefix of a frame.
    public static let lengthPrefixSize = 4
    /// The size of the version and kind bytes that follow the length prefix.
    public static let headerSize = 2
    /// The default maximum frame size (length prefix excluded): 64 MiB.
    public static let defaultMaximumFrameSize = 64 << 20
    /// The largest first frame of a connection (a handshake step), before the peer is
    /// known: 4 KiB. Larger length prefixes close the connection at once.
    public static let maximumHandshakeFrameSize = 4 << 10
    /// The first four bytes of a handshake body, "AEGS".
    public static let handshakeMagic: UInt32 = 0x4145_4753
    /// The protocol version carried in the handshake.
    public static let protocolVersion: UInt16 = 2

    /// The smallest encoding of a `LogEntry`: index, term, type, timestamp, data length.
    static let minimumEntrySize = 8 + 8 + 1 + 8 + 4
    /// The smallest encoding of a string: its length prefix.
    static let minimumStringSize = 4
}

// Primitive fields. Every length and count is checked against the bytes that remain
// in the frame *before* anything is allocated, so a hostile length costs nothing.
extension ByteBuffer {
    /// Reads a big-endian integer; throws `truncated` when the frame ends first.
    @inline(__always)
    mutating func readFixedWidth<T: FixedWidthInteger>(_ field: StaticString) throws(CodecError) -> T {
        guard let value = readInteger(as: T.self) else { throw .truncated(field: "\(field)") }
        return value
    }

    @inline(__always)
    mutating func readUInt64(_ field: StaticString) throws(CodecError) -> UInt64 { try readFixedWidth(field) }

    @inline(__always)
    mutating func readUInt32(_ field: StaticString) throws(CodecError) -> UInt32 { try readFixedWidth(field) }

    @inline(__always)
    mutating func readUInt16(_ field: StaticString) throws(CodecError) -> UInt16 { try readFixedWidth(field) }

    @inline(__always)
    mutating func readUInt8(_ field: StaticString) throws(CodecError) -> UInt8 { try readFixedWidth(field) }

    @inline(__always)
    mutating func writeBool(_ value: Bool) {
        writeInteger(value ? 1 : 0, as: UInt8.self)
    }

    /// Reads a boolean; only 0 and 1 are valid.
    mutating func readBool(_ field: StaticString) throws(CodecError) -> Bool {
        switch try readUInt8(field) {
        case 0: return false
        case 1: return true
        case let other: throw .invalidValue(field: "\(field)", value: UInt64(other))
        }
    }

    /// Reads a `UInt32` length or count and checks that `count * minimumElementSize`
    /// bytes remain.
    mutating func readLength(_ field: StaticString, minimumElementSize: Int) throws(CodecError) -> Int {
        let raw = try readUInt32(field)
        let needed = UInt64(raw) * UInt64(minimumElementSize)
        guard needed <= UInt64(readableBytes) else {
            throw .lengthOutOfBounds(field: "\(field)", length: UInt64(raw), available: readableBytes)
        }
        return Int(raw)
    }

    /// Writes a `UInt32` length and the bytes.
    @inline(__always)
    mutating func writeLengthPrefixedBytes(_ bytes: [UInt8]) {
        writeInteger(UInt32(truncatingIfNeeded: bytes.count))
        writeBytes(bytes)
    }

    /// Reads bytes written by `writeLengthPrefixedBytes(_:)`.
    mutating func readLengthPrefixedBytes(_ field: StaticString) throws(CodecError) -> [UInt8] {
        let length = try readLength(field, minimumElementSize: 1)
        guard let bytes = readBytes(length: length) else { throw .truncated(field: "\(field)") }
        return bytes
    }

    /// Writes a `UInt32` length and the UTF-8 bytes of `string`.
    @inline(__always)
    mutating func writeLengthPrefixedString(_ string: String) {
        writeInteger(UInt32(truncatingIfNeeded: string.utf8.count))
        writeString(string)
    }

    /// Reads a string written by `writeLengthPrefixedString(_:)`.
    mutating func readLengthPrefixedString(_ field: StaticString) throws(CodecError) -> String {
        let length = try readLength(field, minimumElementSize: 1)
        guard let string = readString(length: length) else { throw .truncated(field: "\(field)") }
        return string
    }

    @inline(__always)
    mutating func writeNodeID(_ id: NodeID) {
        writeLengthPrefixedString(id.rawValue)
    }

    @inline(__always)
    mutating func readNodeID(_ field: StaticString) throws(CodecError) -> NodeID {
        NodeID(try readLengthPrefixedString(field))
    }

    /// Writes an optional node: a presence byte, then the node.
    mutating func writeOptionalNodeID(_ id: NodeID?) {
        if let id {
            writeBool(true)
            writeNodeID(id)
        } else {
            writeBool(false)
        }
    }

    mutating func readOptionalNodeID(_ field: StaticString) throws(CodecError) -> NodeID? {
        try readBool(field) ? try readNodeID(field) : nil
    }

    /// Writes a set of nodes: a count, then each node (in the set's iteration order).
    mutating func writeNodeSet(_ nodes: Set<NodeID>) {
        writeInteger(UInt32(truncatingIfNeeded: nodes.count))
        for node in nodes { writeNodeID(node) }
    }

    mutating func readNodeSet(_ field: StaticString) throws(CodecError) -> Set<NodeID> {
        let count = try readLength(field, minimumElementSize: WireFormat.minimumStringSize)
        // Reserve for a real membership, not for the count: a set of empty names costs
        // 4 bytes each on the wire but far more in a hash table.
        var nodes = Set<NodeID>(minimumCapacity: min(count, 64))
        for _ in 0..<count { nodes.insert(try readNodeID(field)) }
        return nodes
    }

    /// Writes a log entry: index, term, type, timestamp, data.
    @inline(__always)
    mutating func writeLogEntry(_ entry: LogEntry) {
        writeInteger(entry.index)
        writeInteger(entry.term)
        writeInteger(entry.type.rawValue)
        writeInteger(entry.timestamp)
        writeLengthPrefixedBytes(entry.data)
    }

    mutating func readLogEntry() throws(CodecError) -> LogEntry {
        let index = try readUInt64("entry.index")
        let term = try readUInt64("entry.term")
        let rawType = try readUInt8("entry.type")
        guard let type = EntryType(rawValue: rawType) else {
            throw .invalidValue(field: "entry.type", value: UInt64(rawType))
        }
        let timestamp = try readUInt64("entry.timestamp")
        let data = try readLengthPrefixedBytes("entry.data")
        return LogEntry(index: index, term: term, type: type, data: data, timestamp: timestamp)
    }

    /// Writes entries: a count, then each entry.
    mutating func writeLogEntries(_ entries: [LogEntry]) {
        writeInteger(UInt32(truncatingIfNeeded: entries.count))
        for entry in entries { writeLogEntry(entry) }
    }

    mutating func readLogEntries() throws(CodecError) -> [LogEntry] {
        let count = try readLength("entries.count", minimumElementSize: WireFormat.minimumEntrySize)
        var entries: [LogEntry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count { entries.append(try readLogEntry()) }
        return entries
    }
}
