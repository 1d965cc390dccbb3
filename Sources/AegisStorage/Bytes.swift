import AegisRaft

/// Little-endian encoding helpers for WAL records and snapshot files.
extension Array where Element == UInt8 {
    @inline(__always) mutating func appendLE(_ value: UInt64) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    @inline(__always) mutating func appendLE(_ value: UInt32) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    @inline(__always) mutating func appendLE(_ value: UInt16) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Overwrites four bytes at `offset` with `value`, little-endian.
    @inline(__always) mutating func storeLE(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 2] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }

    /// Appends a string as a 16-bit length and its UTF-8 bytes.
    mutating func appendString(_ string: String) {
        let utf8 = Array(string.utf8.prefix(Int(UInt16.max)))
        appendLE(UInt16(utf8.count))
        append(contentsOf: utf8)
    }

    /// Appends a set of node identifiers, sorted, as a count and strings.
    mutating func appendNodes(_ nodes: Set<NodeID>) {
        appendLE(UInt32(nodes.count))
        for node in nodes.sorted() { appendString(node.rawValue) }
    }

    /// Appends a configuration.
    mutating func appendConf(_ conf: ConfState) {
        appendNodes(conf.voters)
        appendNodes(conf.outgoingVoters)
        appendNodes(conf.learners)
        appendNodes(conf.learnersNext)
        append(conf.autoLeave ? 1 : 0)
    }
}

/// A malformed field inside a record whose checksum was valid (a bug or a format change).
struct DecodeError: Error {
    var reason: String
}

/// Reads little-endian fields from a byte range, throwing `DecodeError` past its end.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var position: Int
    let end: Int

    init(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) {
        self.bytes = bytes
        self.position = start
        self.end = end
    }

    var remaining: Int { end - position }

    mutating func need(_ count: Int, _ what: String) throws(DecodeError) {
        if count > remaining { throw DecodeError(reason: "\(what) runs past the end of the record") }
    }

    mutating func u8(_ what: String) throws(DecodeError) -> UInt8 {
        try need(1, what)
        defer { position += 1 }
        return bytes[position]
    }

    mutating func u16(_ what: String) throws(DecodeError) -> UInt16 {
        try need(2, what)
        defer { position += 2 }
        return UInt16(bytes[position]) | UInt16(bytes[position + 1]) << 8
    }

    mutating func u32(_ what: String) throws(DecodeError) -> UInt32 {
        try need(4, what)
        defer { position += 4 }
        return bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self).littleEndian
    }

    mutating func u64(_ what: String) throws(DecodeError) -> UInt64 {
        try need(8, what)
        defer { position += 8 }
        return bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self).littleEndian
    }

    mutating func bytes(_ count: Int, _ what: String) throws(DecodeError) -> [UInt8] {
        try need(count, what)
        defer { position += count }
        return Array(UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)]))
    }

    mutating func string(_ what: String) throws(DecodeError) -> String {
        let count = Int(try u16(what))
        let utf8 = try bytes(count, what)
        return String(decoding: utf8, as: UTF8.self)
    }

    mutating func nodes(_ what: String) throws(DecodeError) -> Set<NodeID> {
        let count = Int(try u32(what))
        if count > remaining / 2 { throw DecodeError(reason: "\(what) claims \(count) members") }
        var nodes = Set<NodeID>()
        for _ in 0..<count { nodes.insert(NodeID(try string(what))) }
        return nodes
    }

    mutating func conf() throws(DecodeError) -> ConfState {
        let voters = try nodes("voters")
        let outgoing = try nodes("outgoing voters")
        let learners = try nodes("learners")
        let learnersNext = try nodes("next learners")
        let autoLeave = try u8("auto-leave flag") != 0
        return ConfState(voters: voters, outgoingVoters: outgoing, learners: learners,
                         learnersNext: learnersNext, autoLeave: autoLeave)
    }
}
