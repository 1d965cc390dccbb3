import AegisKV
import NIOCore

/// The set, hash and `TYPE` commands: each is one `Command.collection` through the log.
extension RESPSession {
    /// The names `planCollection` handles.
    static let collectionCommands: Set<String> = [
        "SADD", "SREM", "SMEMBERS", "SISMEMBER", "SCARD",
        "HSET", "HGET", "HDEL", "HGETALL", "HINCRBY", "HLEN", "HEXISTS", "TYPE",
    ]

    /// Plans one of `collectionCommands` (the arity is already checked).
    func planCollection(_ name: String, _ arguments: ArraySlice<ByteBuffer>) -> Step {
        let key = key(arguments[arguments.startIndex])
        let rest = arguments.dropFirst().map(bytes)
        let operation: CollectionOperation
        let reply: CollectionReply
        switch name {
        case "SADD": (operation, reply) = (.setAdd(rest), .integer)
        case "SREM": (operation, reply) = (.setRemove(rest), .integer)
        case "SMEMBERS": (operation, reply) = (.setMembers, .set)
        case "SISMEMBER": (operation, reply) = (.setIsMember(rest[0]), .integer)
        case "SCARD": (operation, reply) = (.setCardinality, .integer)
        case "HSET":
            guard rest.count % 2 == 0 else { return .reply(RESPError.wrongArity(name)) }
            let pairs = stride(from: 0, to: rest.count, by: 2).map { FieldValue(rest[$0], rest[$0 + 1]) }
            (operation, reply) = (.hashSet(pairs), .integer)
        case "HGET": (operation, reply) = (.hashGet(rest[0]), .value)
        case "HDEL": (operation, reply) = (.hashDelete(rest), .integer)
        case "HGETALL": (operation, reply) = (.hashGetAll, .map)
        case "HINCRBY":
            guard let amount = integer(arguments[arguments.startIndex + 2]) else { return .reply(RESPError.notInteger) }
            (operation, reply) = (.hashIncrement(rest[0], by: amount), .integer)
        case "HLEN": (operation, reply) = (.hashLength, .integer)
        case "HEXISTS": (operation, reply) = (.hashExists(rest[0]), .integer)
        default: (operation, reply) = (.type, .status)
        }
        return .write([.collection(key, operation)], .collection(reply))
    }
}

/// How the result of a `Command.collection` (or `append`) becomes its reply.
enum CollectionReply {
    /// `result.integer` (SADD, SCARD, HSET, HLEN, HINCRBY…, APPEND).
    case integer
    /// `result.value` as a bulk string or null (HGET).
    case value
    /// `result.value` as a status (TYPE).
    case status
    /// `result.elements` as a set (SMEMBERS; an array in RESP2).
    case set
    /// `result.elements` as field-value pairs (HGETALL; a flat array in RESP2).
    case map

    func reply(_ result: CommandResult) -> RESPValue {
        switch self {
        case .integer: return .integer(result.integer)
        case .value: return result.value.map(RESPValue.bulkString) ?? .null
        case .status: return .simpleString(String(decoding: result.value ?? [], as: UTF8.self))
        case .set: return .set(result.elements.map(RESPValue.bulkString))
        case .map:
            return .map(stride(from: 0, to: result.elements.count - 1, by: 2).map {
                RESPMapEntry(.bulkString(result.elements[$0]), .bulkString(result.elements[$0 + 1]))
            })
        }
    }
}
