import AegisRaft

// The expiry section of a key-value snapshot (format 3), self-contained: written after
// the collections section and before the trailer, read only from format 3 on.
//
//     expiry   the apply clock (`StateMachine.expiryClock`), the number of keys with a
//              deadline (varints), then one per such key in strictly ascending key
//              order: key length + key, deadline in milliseconds since the Unix epoch
//              (varint, at least 1). Every key must be a key of the snapshot.
//
// A snapshot of format 1 or 2 has no section: its keys have no deadline and the apply
// clock starts at 0.

/// Writes the expiry section from a copy-on-write view of the deadlines.
struct ExpirySectionWriter: Sendable {
    let clock: UInt64
    let deadlines: [Key: UInt64]
    let keys: [Key]

    init(clock: UInt64, deadlines: [Key: UInt64]) {
        self.clock = clock
        self.deadlines = deadlines
        self.keys = deadlines.keys.sorted()
    }

    /// The section's header: the apply clock and the count.
    var header: [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendVarint(clock)
        bytes.appendVarint(UInt64(keys.count))
        return bytes
    }

    /// Appends the entry of the key at `position` in `keys`.
    func appendEntry(_ position: Int, to chunk: inout [UInt8]) {
        let key = keys[position]
        chunk.appendVarint(UInt64(key.count))
        key.append(to: &chunk)
        chunk.appendVarint(deadlines[key] ?? 0)
    }

    /// The size of the whole section.
    var byteCount: Int {
        keys.reduce(header.count) { total, key in
            total + varintSize(UInt64(key.count)) + key.count + varintSize(deadlines[key] ?? 0)
        }
    }
}

/// Reads the expiry section, checking it against the keys read before it.
struct ExpirySectionReader: Sendable {
    var clock: UInt64 = 0
    var expected: UInt64 = 0
    var deadlines: [Key: UInt64] = [:]
    var lastKey: Key?

    /// `true` once every announced entry was read.
    var isComplete: Bool { UInt64(deadlines.count) == expected }

    /// Reads the header; `false` (consuming nothing) if it is not complete yet. A
    /// snapshot cannot have more deadlines than keys (`keyCount`).
    mutating func readHeader(_ reader: inout ByteReader, keyCount: Int) throws(KVError) -> Bool {
        let start = reader.offset
        let badVarint = { KVError.malformedSnapshot("invalid varint in the expiry header") }
        guard let clock = try reader.readVarint(context: badVarint),
              let count = try reader.readVarint(context: badVarint) else {
            reader.offset = start
            return false
        }
        guard count <= UInt64(keyCount) else {
            throw .malformedSnapshot("\(count) deadlines for a snapshot of \(keyCount) keys")
        }
        self.clock = clock
        self.expected = count
        return true
    }

    /// Reads one entry; `false` (consuming nothing) if it is not complete yet.
    /// `exists` tells whether the snapshot holds the key.
    mutating func readEntry(_ reader: inout ByteReader, keyLimit: Int, exists: (Key) -> Bool) throws(KVError) -> Bool {
        let start = reader.offset
        let number = deadlines.count
        let badVarint = { KVError.malformedSnapshot("invalid varint in expiry entry \(number)") }
        guard let keyBytes = try reader.readLengthPrefixed(
                  limit: keyLimit, tooLong: { .malformedSnapshot("a key of \($0) bytes exceeds the limit of \(keyLimit)") },
                  badVarint: badVarint),
              let deadline = try reader.readVarint(context: badVarint) else {
            reader.offset = start
            return false
        }
        let key = Key(copying: keyBytes)
        if let lastKey, !(lastKey < key) {
            throw .malformedSnapshot("expiry keys are not in strictly ascending order at entry \(number)")
        }
        guard exists(key) else { throw .malformedSnapshot("expiry entry \(number) names a key the snapshot does not hold") }
        guard deadline >= 1 else { throw .malformedSnapshot("expiry entry \(number) has deadline 0") }
        deadlines[key] = deadline
        lastKey = key
        return true
    }
}
