// The binary encoding of a command, stored as a log entry's data.
//
// Layout, all lengths and integers are unsigned LEB128 varints:
//
//     byte 0      encoding version: 1, or the version (2, 3, 4) that added the type
//     byte 1      CommandType raw value
//     then, by type:
//       get, delete      key
//       set              key, value
//       compareAndSwap   key, tag (0 = expected value, 1 = expected version),
//                        bytes (tag 0) or varint version (tag 1), new value
//       increment        key, zig-zag varint amount
//       custom           name (UTF-8, 1...255 bytes), key, payload
//     version 2 adds:
//       setMany          flags (bit 0 = only if none exist), varint count,
//                        then count × (key, value)
//       deleteMany       varint count, then count × key
//     version 3 adds:
//       collection       key, operation tag (CollectionOperation.tag), then by tag:
//                        setAdd, setRemove, hashDelete   varint count, count × bytes
//                        setIsMember, hashGet, hashExists bytes
//                        hashSet      varint count, count × (field, value)
//                        hashIncrement field, zig-zag varint amount
//                        setMembers, setCardinality, hashGetAll, hashLength, type: nothing
//       getSet, append   key, value
//     version 4 adds (CommandType raw values 12 to 22; 23 to 39 are reserved for
//     this group, 40 to 59 for replication between clusters, 60 and up for sessions
//     and pub/sub):
//       openSession      nothing
//       session          session ID, sequence number, acknowledged (varints), then the
//                        inner command's whole encoding as one length-prefixed field
//                        (a write, not itself openSession or session)
//       publish          channel (as a key), message (as a value)
//       expire           key, time, condition (0 always, 1 NX, 2 XX, 3 GT, 4 LT,
//                        5 XX and LT)
//       persist, timeToLive  key
//       setWith          key, value, condition tag (0 always, 1 if absent,
//                        2 if present, 3 if equal then bytes), flags (bit 0 =
//                        return the previous value), expiry change
//       getAndExpire     key, expiry change
//       purgeExpired     varint count, count × key
//       transaction      varint watch count, count × (key, varint modify revision),
//                        varint command count, count × (length-prefixed encoded
//                        command; neither a transaction nor a purge)
//       keyspace         query tag, then by tag:
//                        1 scan   flags (bit 0 after key, bit 1 pattern, bit 2 type),
//                                 [key], [bytes], varint count, [type byte]
//                        2 keys   bytes (pattern), varint limit
//                        3 randomKey, 5 count: nothing
//                        4 exists varint count, count × key
//                        6 encoding, 7 memoryUsage: key
//       rename, copy     key (source), key (destination), flags (bit 0 = only if
//                        absent for rename, replace for copy)
//       flushAll         nothing
//       streamBatch (40) source cluster ID (UTF-8, 1...255 bytes), varint epoch,
//                        varint after-index, varint last index (>= after-index),
//                        varint source commit index (>= last index), varint count, then count × change:
//                          varint source index (increasing, in after+1...last),
//                          origin cluster ID (UTF-8, 1...255 bytes),
//                          varint HLC physical (ms), varint HLC logical (<= 2^32-1),
//                          command (the change's own encoding: a client write, never
//                          a streamBatch or setDRState)
//       setDRState (41)  varint epoch, role byte (1 primary, 2 standby, 3 fenced),
//                        primary client addresses (UTF-8, 0...1024 bytes), primary
//                        admin addresses (UTF-8, 0...1024 bytes), varint lease ms,
//                        resume source (UTF-8, 0...255 bytes), varint resume index
//                        (0 when the source is empty)
//       drSeedChunk (50) source cluster ID (UTF-8, 1...255 bytes), varint epoch,
//                        varint snapshot index (>= 1), varint total (1 ... 2^30-2^20),
//                        varint offset, chunk (1 ... 4 MiB, ending at or before the
//                        total); see DRSeed.swift
//       drRejoin (51)    a setDRState body (role standby, resume source set,
//                        resume index 0); see DRSeed.swift
//       setActiveActive (70), activeActiveBatch (71): see ActiveActiveCodec.swift (a
//                        batch may end with its source's progress vector)
//       setActiveActiveStrategies (72), resolveActiveActiveConflict (73),
//       setWithContext (74): see ActiveActiveConflictCodec.swift (75 is kept for
//                        conflict resolution, unused)
//       activeActiveCatchUp (76): see ActiveActiveCatchUp.swift
//       activeActiveTopology (77): see ActiveActiveTopologyCommand.swift
//     where time is a tag (0 = relative to the apply clock, 1 = absolute) and a
//     zig-zag varint of milliseconds, and an expiry change is a tag (0 = clear,
//     1 = keep, 2 = set, then a time);
//     and key, value, bytes, name and payload are a varint length then the bytes.
//
// Each command is written with the oldest version that has its type (see
// `CommandType.encodingVersion`), so the version-1 types stay readable by builds that
// only know version 1, and those builds refuse the new types with a clear
// "unsupported encoding version" instead of misreading them.
//
// Decoding is strict: an unknown version or type, a type newer than the version,
// a truncated field, an overlong varint or trailing bytes are errors.

extension Command {
    /// The newest encoding version `init(decoding:)` reads (it reads every older one
    /// too). `encoded()` writes the oldest version that has the command's type.
    public static let encodingVersion: UInt8 = 4

    /// The longest custom command name, in UTF-8 bytes.
    public static let maxCustomNameSize = 255

    /// The command's compact binary encoding, for a log entry's data.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        if type.encodingVersion < 4 { bytes.reserveCapacity(encodedSize) }
        bytes.append(type.encodingVersion)
        bytes.append(type.rawValue)
        switch self {
        case .get(let key), .delete(let key):
            bytes.appendKey(key)
        case .set(let key, let value), .getSet(let key, let value), .append(let key, let value):
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
        case .setMany(let pairs, let onlyIfNoneExist):
            bytes.append(onlyIfNoneExist ? 1 : 0)
            bytes.appendVarint(UInt64(pairs.count))
            for pair in pairs {
                bytes.appendKey(pair.key)
                bytes.appendLengthPrefixed(pair.value)
            }
        case .deleteMany(let keys):
            bytes.appendVarint(UInt64(keys.count))
            for key in keys { bytes.appendKey(key) }
        case .collection(let key, let operation):
            bytes.appendKey(key)
            bytes.append(operation.tag)
            switch operation {
            case .setAdd(let items), .setRemove(let items), .hashDelete(let items):
                bytes.appendVarint(UInt64(items.count))
                for item in items { bytes.appendLengthPrefixed(item) }
            case .setIsMember(let item), .hashGet(let item), .hashExists(let item):
                bytes.appendLengthPrefixed(item)
            case .hashSet(let pairs):
                bytes.appendVarint(UInt64(pairs.count))
                for pair in pairs {
                    bytes.appendLengthPrefixed(pair.field)
                    bytes.appendLengthPrefixed(pair.value)
                }
            case .hashIncrement(let field, let amount):
                bytes.appendLengthPrefixed(field)
                bytes.appendVarint(zigZag(amount))
            case .setMembers, .setCardinality, .hashGetAll, .hashLength, .type:
                break
            }
        case .openSession:
            break
        case .publish(let channel, let message):
            bytes.appendKey(channel)
            bytes.appendLengthPrefixed(message)
        case .session(let request, let command):
            bytes.appendVarint(request.session)
            bytes.appendVarint(request.sequence)
            bytes.appendVarint(request.acknowledged)
            bytes.appendLengthPrefixed(command.encoded())
        case .expire, .persist, .timeToLive, .setWith, .getAndExpire, .purgeExpired, .transaction, .keyspace,
             .rename, .copy, .flushAll:
            appendVersion4Fields(to: &bytes)
        case .streamBatch(let batch):
            batch.append(to: &bytes)
        case .setDRState(let transition):
            transition.append(to: &bytes)
        case .drSeedChunk(let chunk):
            chunk.append(to: &bytes)
        case .drRejoin(let transition):
            transition.append(to: &bytes)
        case .setActiveActive(let settings):
            settings.append(to: &bytes)
        case .activeActiveBatch(let batch):
            batch.append(to: &bytes)
        case .activeActiveCatchUp(let page):
            page.append(to: &bytes)
        case .activeActiveTopology(let change):
            change.append(to: &bytes)
        case .activeActiveConflict(let command):
            command.append(to: &bytes)
        }
        return bytes
    }

    /// The exact size of `encoded()`.
    public var encodedSize: Int {
        func field(_ count: Int) -> Int { varintSize(UInt64(count)) + count }
        switch self {
        case .get(let key), .delete(let key):
            return 2 + field(key.count)
        case .set(let key, let value), .getSet(let key, let value), .append(let key, let value):
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
        case .setMany(let pairs, _):
            return pairs.reduce(3 + varintSize(UInt64(pairs.count))) { $0 + field($1.key.count) + field($1.value.count) }
        case .deleteMany(let keys):
            return keys.reduce(2 + varintSize(UInt64(keys.count))) { $0 + field($1.count) }
        case .collection(let key, let operation):
            let head = 3 + field(key.count)
            switch operation {
            case .setAdd(let items), .setRemove(let items), .hashDelete(let items):
                return items.reduce(head + varintSize(UInt64(items.count))) { $0 + field($1.count) }
            case .setIsMember(let item), .hashGet(let item), .hashExists(let item):
                return head + field(item.count)
            case .hashSet(let pairs):
                return pairs.reduce(head + varintSize(UInt64(pairs.count))) { $0 + field($1.field.count) + field($1.value.count) }
            case .hashIncrement(let item, let amount):
                return head + field(item.count) + varintSize(zigZag(amount))
            case .setMembers, .setCardinality, .hashGetAll, .hashLength, .type:
                return head
            }
        case .openSession:
            return 2
        case .publish(let channel, let message):
            return 2 + field(channel.count) + field(message.count)
        case .session(let request, let command):
            return 2 + varintSize(request.session) + varintSize(request.sequence) + varintSize(request.acknowledged)
                + field(command.encodedSize)
        case .expire, .persist, .timeToLive, .setWith, .getAndExpire, .purgeExpired, .transaction, .keyspace,
             .rename, .copy, .flushAll:
            var fields: [UInt8] = []
            appendVersion4Fields(to: &fields)
            return 2 + fields.count
        case .streamBatch(let batch):
            return 2 + batch.bodySize
        case .setDRState(let transition):
            return 2 + transition.bodySize
        case .drSeedChunk(let chunk):
            return 2 + chunk.bodySize
        case .drRejoin(let transition):
            return 2 + transition.bodySize
        case .setActiveActive(let settings):
            return 3 + varintSize(settings.maxClockSkewMillis)
        case .activeActiveBatch(let batch):
            var body: [UInt8] = []
            batch.append(to: &body)
            return 2 + body.count
        case .activeActiveCatchUp(let page):
            var body: [UInt8] = []
            page.append(to: &body)
            return 2 + body.count
        case .activeActiveTopology(let change):
            var body: [UInt8] = []
            change.append(to: &body)
            return 2 + body.count
        case .activeActiveConflict(let command):
            var body: [UInt8] = []
            command.append(to: &body)
            return 2 + body.count
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
        guard version >= 1 && version <= encodingVersion else { throw .unsupportedEncodingVersion(version) }
        guard let rawType = reader.readByte() else { throw .malformedCommand("missing the command type") }
        guard let type = CommandType(rawValue: rawType), type.encodingVersion <= version else {
            throw .malformedCommand("unknown command type \(rawType) in encoding version \(version)")
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
        case .setMany:
            guard let flags = reader.readByte() else { throw .malformedCommand("truncated before the set-many flags") }
            guard flags <= 1 else { throw .malformedCommand("unknown set-many flags \(flags)") }
            let count = try reader.readCount("set-many pair count", minimumBytesEach: 2)
            var pairs: [KeyValuePair] = []
            pairs.reserveCapacity(count)
            for _ in 0 ..< count {
                let key = try reader.readKey()
                pairs.append(KeyValuePair(key, try reader.readField("value")))
            }
            command = .setMany(pairs, onlyIfNoneExist: flags == 1)
        case .deleteMany:
            let count = try reader.readCount("delete-many key count", minimumBytesEach: 1)
            var keys: [Key] = []
            keys.reserveCapacity(count)
            for _ in 0 ..< count { keys.append(try reader.readKey()) }
            command = .deleteMany(keys)
        case .collection:
            let key = try reader.readKey()
            command = .collection(key, try reader.readCollectionOperation())
        case .getSet:
            let key = try reader.readKey()
            command = .getSet(key, try reader.readField("value"))
        case .append:
            let key = try reader.readKey()
            command = .append(key, try reader.readField("value"))
        case .openSession:
            command = .openSession
        case .publish:
            let channel = try reader.readKey()
            command = .publish(channel: channel, message: try reader.readField("message"))
        case .session:
            let request = ClientSessionRequest(session: try reader.readCommandVarint("session ID"),
                                               sequence: try reader.readCommandVarint("sequence number"),
                                               acknowledged: try reader.readCommandVarint("acknowledged sequence number"))
            let inner = try reader.readField("session command")
            let decoded = try inner.withUnsafeBytes { raw in Result { () throws(KVError) in try Command.decode(raw) } }.get()
            guard decoded.isWrite, decoded.type != .openSession, decoded.type != .session else {
                throw .malformedCommand("a session command must wrap a write that is not a session command")
            }
            command = .session(request, decoded)
        case .expire, .persist, .timeToLive, .setWith, .getAndExpire, .purgeExpired, .transaction, .keyspace,
             .rename, .copy, .flushAll:
            command = try decodeVersion4(type, &reader)
        case .streamBatch:
            command = .streamBatch(try reader.readStreamBatch())
        case .setDRState:
            command = .setDRState(try reader.readDRTransition())
        case .drSeedChunk:
            command = .drSeedChunk(try reader.readSeedChunk())
        case .drRejoin:
            let transition = try reader.readDRTransition()
            guard transition.role == .standby, !transition.resumeSource.isEmpty, transition.resumeIndex == 0 else {
                throw .malformedCommand("a rejoin makes a standby of a named source, with no resume index")
            }
            command = .drRejoin(transition)
        case .setActiveActive:
            command = .setActiveActive(try reader.readActiveActiveSettings())
        case .activeActiveBatch:
            command = .activeActiveBatch(try reader.readActiveActiveBatch())
        case .activeActiveCatchUp:
            command = .activeActiveCatchUp(try reader.readActiveActiveCatchUp())
        case .activeActiveTopology:
            command = .activeActiveTopology(try reader.readTopologyCommand())
        case .setActiveActiveStrategies, .resolveActiveActiveConflict, .setWithContext:
            command = .activeActiveConflict(try reader.readConflictCommand(type))
        }
        guard reader.remaining == 0 else {
            throw .malformedCommand("\(reader.remaining) unexpected bytes after the \(type) command")
        }
        return command
    }
}

extension ByteReader {
    /// Reads the operation of a `collection` command, after its key.
    @usableFromInline mutating func readCollectionOperation() throws(KVError) -> CollectionOperation {
        guard let tag = readByte() else { throw .malformedCommand("truncated before the collection operation") }
        func items(_ name: String) throws(KVError) -> [[UInt8]] {
            let count = try readCount("\(name) count", minimumBytesEach: 1)
            var items: [[UInt8]] = []
            items.reserveCapacity(count)
            for _ in 0 ..< count { items.append(try readField(name)) }
            return items
        }
        switch tag {
        case 1: return .setAdd(try items("member"))
        case 2: return .setRemove(try items("member"))
        case 3: return .setMembers
        case 4: return .setIsMember(try readField("member"))
        case 5: return .setCardinality
        case 6:
            let count = try readCount("field count", minimumBytesEach: 2)
            var pairs: [FieldValue] = []
            pairs.reserveCapacity(count)
            for _ in 0 ..< count {
                let field = try readField("field")
                pairs.append(FieldValue(field, try readField("field value")))
            }
            return .hashSet(pairs)
        case 7: return .hashGet(try readField("field"))
        case 8: return .hashDelete(try items("field"))
        case 9: return .hashGetAll
        case 10:
            let field = try readField("field")
            return .hashIncrement(field, by: unZigZag(try readCommandVarint("hash increment amount")))
        case 11: return .hashLength
        case 12: return .hashExists(try readField("field"))
        case 13: return .type
        default: throw .malformedCommand("unknown collection operation \(tag)")
        }
    }

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

    /// Reads the number of elements that follow, each at least `minimumBytesEach`
    /// bytes long: a count the remaining bytes cannot hold is malformed (so a forged
    /// count never reserves memory).
    @inlinable mutating func readCount(_ name: String, minimumBytesEach: Int) throws(KVError) -> Int {
        let count = try readCommandVarint(name)
        guard count <= UInt64(remaining / minimumBytesEach) else {
            throw .malformedCommand("the \(name) \(count) is more than the \(remaining) bytes left can hold")
        }
        return Int(count)
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

extension Command {
    /// The channel and message of a `publish` entry's data, decoded only when the
    /// type byte says it is one (cheap for every other entry); `nil` otherwise.
    public static func publication(in data: [UInt8]) -> (channel: Key, message: [UInt8])? {
        guard data.count > 2, data[1] == CommandType.publish.rawValue,
              case .publish(let channel, let message)? = try? Command(decoding: data) else { return nil }
        return (channel, message)
    }
}
