// The command types of encoding version 4 (raw values 12 to 22): expiry, the
// keyspace commands and transactions. Their layout is documented with the others at
// the top of CommandCodec.swift; this file writes and reads it.

extension Command {
    /// Appends the fields (after the version and type bytes) of a version-4 command.
    func appendVersion4Fields(to bytes: inout [UInt8]) {
        switch self {
        case .expire(let key, let time, let condition):
            bytes.appendKey(key)
            bytes.appendExpiryTime(time)
            bytes.append(condition.rawValue)
        case .persist(let key), .timeToLive(let key):
            bytes.appendKey(key)
        case .setWith(let key, let value, let condition, let returnPrevious, let expiry):
            bytes.appendKey(key)
            bytes.appendLengthPrefixed(value)
            switch condition {
            case .always: bytes.append(0)
            case .ifAbsent: bytes.append(1)
            case .ifPresent: bytes.append(2)
            case .ifEqual(let expected):
                bytes.append(3)
                bytes.appendLengthPrefixed(expected)
            }
            bytes.append(returnPrevious ? 1 : 0)
            bytes.appendExpiryChange(expiry)
        case .getAndExpire(let key, let expiry):
            bytes.appendKey(key)
            bytes.appendExpiryChange(expiry)
        case .purgeExpired(let keys):
            bytes.appendVarint(UInt64(keys.count))
            for key in keys { bytes.appendKey(key) }
        case .transaction(let watches, let commands):
            bytes.appendVarint(UInt64(watches.count))
            for watch in watches {
                bytes.appendKey(watch.key)
                bytes.appendVarint(watch.modRevision)
            }
            bytes.appendVarint(UInt64(commands.count))
            for command in commands { bytes.appendLengthPrefixed(command.encoded()) }
        case .keyspace(let query):
            bytes.append(query.tag)
            switch query {
            case .scan(let after, let pattern, let count, let type):
                let flags: UInt8 = (after == nil ? 0 : 1) | (pattern == nil ? 0 : 2) | (type == nil ? 0 : 4)
                bytes.append(flags)
                if let after { bytes.appendKey(after) }
                if let pattern { bytes.appendLengthPrefixed(pattern) }
                bytes.appendVarint(UInt64(Swift.max(count, 0)))
                if let type { bytes.append(type.rawValue) }
            case .keys(let pattern, let limit):
                bytes.appendLengthPrefixed(pattern)
                bytes.appendVarint(UInt64(Swift.max(limit, 0)))
            case .randomKey, .count:
                break
            case .exists(let keys):
                bytes.appendVarint(UInt64(keys.count))
                for key in keys { bytes.appendKey(key) }
            case .encoding(let key), .memoryUsage(let key):
                bytes.appendKey(key)
            }
        case .rename(let source, let destination, let flag), .copy(let source, let destination, let flag):
            bytes.appendKey(source)
            bytes.appendKey(destination)
            bytes.append(flag ? 1 : 0)
        case .flushAll:
            break
        case .get, .set, .delete, .compareAndSwap, .increment, .custom, .setMany, .deleteMany, .collection,
             .getSet, .append, .openSession, .session, .publish, .streamBatch, .setDRState, .drSeedChunk, .drRejoin,
             .setActiveActive, .activeActiveBatch, .activeActiveCatchUp, .activeActiveConflict, .activeActiveTopology:
            break  // written by `encoded()` itself
        }
    }

    /// Decodes the fields of a version-4 command of `type`.
    @usableFromInline static func decodeVersion4(_ type: CommandType, _ reader: inout ByteReader) throws(KVError) -> Command {
        switch type {
        case .expire:
            let key = try reader.readKey()
            let time = try reader.readExpiryTime()
            guard let raw = reader.readByte() else { throw .malformedCommand("truncated before the expire condition") }
            guard let condition = ExpireCondition(rawValue: raw) else { throw .malformedCommand("unknown expire condition \(raw)") }
            return .expire(key, time, condition)
        case .persist:
            return .persist(try reader.readKey())
        case .timeToLive:
            return .timeToLive(try reader.readKey())
        case .setWith:
            let key = try reader.readKey()
            let value = try reader.readField("value")
            let condition: SetCondition
            switch reader.readByte() {
            case 0: condition = .always
            case 1: condition = .ifAbsent
            case 2: condition = .ifPresent
            case 3: condition = .ifEqual(try reader.readField("expected value"))
            case let tag?: throw .malformedCommand("unknown set condition \(tag)")
            case nil: throw .malformedCommand("truncated before the set condition")
            }
            guard let flags = reader.readByte(), flags <= 1 else { throw .malformedCommand("missing or unknown set flags") }
            return .setWith(key, value, condition: condition, returnPrevious: flags == 1, expiry: try reader.readExpiryChange())
        case .getAndExpire:
            let key = try reader.readKey()
            return .getAndExpire(key, try reader.readExpiryChange())
        case .purgeExpired:
            return .purgeExpired(try reader.readKeys("purge key count"))
        case .transaction:
            let watchCount = try reader.readCount("watched key count", minimumBytesEach: 2)
            var watches: [WatchedKey] = []
            watches.reserveCapacity(watchCount)
            for _ in 0 ..< watchCount {
                let key = try reader.readKey()
                watches.append(WatchedKey(key, modRevision: try reader.readCommandVarint("watched revision")))
            }
            let count = try reader.readCount("transaction command count", minimumBytesEach: 3)
            var commands: [Command] = []
            commands.reserveCapacity(count)
            for _ in 0 ..< count {
                let inner = try Command(decoding: try reader.readField("transaction command"))
                guard inner.mayBeInTransaction else {
                    throw .malformedCommand("a \(inner.type) command cannot be part of a transaction")
                }
                commands.append(inner)
            }
            return .transaction(watches: watches, commands: commands)
        case .keyspace:
            return .keyspace(try reader.readKeyspaceQuery())
        case .rename, .copy:
            let source = try reader.readKey()
            let destination = try reader.readKey()
            guard let flag = reader.readByte(), flag <= 1 else { throw .malformedCommand("missing or unknown \(type) flags") }
            return type == .rename ? .rename(source, to: destination, onlyIfAbsent: flag == 1)
                : .copy(source, to: destination, replace: flag == 1)
        case .flushAll:
            return .flushAll
        case .get, .set, .delete, .compareAndSwap, .increment, .custom, .setMany, .deleteMany, .collection,
             .getSet, .append, .openSession, .session, .publish, .streamBatch, .setDRState, .drSeedChunk, .drRejoin,
             .setActiveActive, .activeActiveBatch, .activeActiveCatchUp, .setActiveActiveStrategies,
             .resolveActiveActiveConflict, .setWithContext, .activeActiveTopology:
            throw .malformedCommand("\(type) is not a version-4 command type of this group")
        }
    }

    /// `false` for the commands a transaction may not contain: a transaction, the
    /// leader's purge, and the active-active conflict commands (their own write path).
    public var mayBeInTransaction: Bool {
        switch self {
        case .transaction, .purgeExpired, .activeActiveConflict: return false
        default: return true
        }
    }
}

/// The largest `count` of a `SCAN` or `limit` of a `KEYS` query the decoder accepts.
let maxKeyspaceQueryCount: UInt64 = 1 << 30

extension ByteReader {
    mutating func readExpiryTime() throws(KVError) -> ExpiryTime {
        guard let tag = readByte() else { throw .malformedCommand("truncated before the expiry time") }
        let milliseconds = unZigZag(try readCommandVarint("expiry time"))
        switch tag {
        case 0: return .after(milliseconds: milliseconds)
        case 1: return .at(milliseconds: milliseconds)
        default: throw .malformedCommand("unknown expiry time tag \(tag)")
        }
    }

    mutating func readExpiryChange() throws(KVError) -> ExpiryChange {
        switch readByte() {
        case 0: return .clear
        case 1: return .keep
        case 2: return .set(try readExpiryTime())
        case let tag?: throw .malformedCommand("unknown expiry change \(tag)")
        case nil: throw .malformedCommand("truncated before the expiry change")
        }
    }

    mutating func readKeys(_ name: String) throws(KVError) -> [Key] {
        let count = try readCount(name, minimumBytesEach: 1)
        var keys: [Key] = []
        keys.reserveCapacity(count)
        for _ in 0 ..< count { keys.append(try readKey()) }
        return keys
    }

    mutating func readQueryCount(_ name: String) throws(KVError) -> Int {
        let count = try readCommandVarint(name)
        guard count <= maxKeyspaceQueryCount else { throw .malformedCommand("the \(name) \(count) is over \(maxKeyspaceQueryCount)") }
        return Int(count)
    }

    mutating func readKeyspaceQuery() throws(KVError) -> KeyspaceQuery {
        guard let tag = readByte() else { throw .malformedCommand("truncated before the keyspace query") }
        switch tag {
        case 1:
            guard let flags = readByte(), flags <= 7 else { throw .malformedCommand("missing or unknown scan flags") }
            let after = flags & 1 != 0 ? try readKey() : nil
            let pattern = flags & 2 != 0 ? try readField("scan pattern") : nil
            let count = try readQueryCount("scan count")
            var type: ValueType?
            if flags & 4 != 0 {
                guard let raw = readByte(), let parsed = ValueType(rawValue: raw) else {
                    throw .malformedCommand("missing or unknown scan type")
                }
                type = parsed
            }
            return .scan(after: after, pattern: pattern, count: count, type: type)
        case 2:
            let pattern = try readField("keys pattern")
            return .keys(pattern: pattern, limit: try readQueryCount("keys limit"))
        case 3: return .randomKey
        case 4: return .exists(try readKeys("exists key count"))
        case 5: return .count
        case 6: return .encoding(try readKey())
        case 7: return .memoryUsage(try readKey())
        default: throw .malformedCommand("unknown keyspace query \(tag)")
        }
    }
}

extension Array where Element == UInt8 {
    mutating func appendExpiryTime(_ time: ExpiryTime) {
        switch time {
        case .after(let milliseconds):
            append(0)
            appendVarint(zigZag(milliseconds))
        case .at(let milliseconds):
            append(1)
            appendVarint(zigZag(milliseconds))
        }
    }

    mutating func appendExpiryChange(_ change: ExpiryChange) {
        switch change {
        case .clear: append(0)
        case .keep: append(1)
        case .set(let time):
            append(2)
            appendExpiryTime(time)
        }
    }
}
