import AegisKV
import Foundation
import NIOCore

/// The expiry and keyspace commands: EXPIRE and its family, TTL and its family,
/// PERSIST, SETEX, PSETEX, GETEX, SCAN, KEYS, RANDOMKEY, RENAME, RENAMENX, COPY,
/// FLUSHDB, FLUSHALL, OBJECT and MEMORY. Each is one command through the log, so its
/// reply reflects the state at its place in the log (inside `MULTI` too).
extension RESPSession {
    /// The names `planKeyspace` handles.
    static let keyspaceCommands: Set<String> = [
        "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME", "PERSIST",
        "SETEX", "PSETEX", "GETEX", "SCAN", "KEYS", "RANDOMKEY", "RENAME", "RENAMENX", "COPY", "FLUSHDB",
        "FLUSHALL", "OBJECT", "MEMORY",
    ]

    /// Plans one of `keyspaceCommands` (the arity is already checked).
    func planKeyspace(_ name: String, _ arguments: ArraySlice<ByteBuffer>) -> Step {
        let first = arguments.startIndex
        switch name {
        case "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT":
            return planExpire(name, arguments)
        case "TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME":
            return .write([.timeToLive(key(arguments[first]))],
                          .timeToLive(milliseconds: name.hasPrefix("P"), absolute: name.hasSuffix("TIME")))
        case "PERSIST":
            return .write([.persist(key(arguments[first]))], .collection(.integer))
        case "SETEX", "PSETEX":
            guard let amount = integer(arguments[first + 1]) else { return .reply(RESPError.notInteger) }
            guard amount > 0, let time = expiryTime(amount, seconds: name == "SETEX", absolute: false) else {
                return .reply(RESPError.invalidExpireTime(name))
            }
            return .write([.setWith(key(arguments[first]), bytes(arguments[first + 2]), condition: .always,
                                    returnPrevious: false, expiry: .set(time))], .ok)
        case "GETEX":
            return planGetEx(arguments)
        case "SCAN":
            return planScan(arguments)
        case "KEYS":
            let limit = server.configuration.limits.maxKeysReply
            return .write([.keyspace(.keys(pattern: bytes(arguments[first]), limit: limit))], .keys(limit: limit))
        case "RANDOMKEY":
            return .write([.keyspace(.randomKey)], .collection(.value))
        case "RENAME", "RENAMENX":
            let onlyIfAbsent = name == "RENAMENX"
            return .write([.rename(key(arguments[first]), to: key(arguments[first + 1]), onlyIfAbsent: onlyIfAbsent)],
                          onlyIfAbsent ? .collection(.integer) : .ok)
        case "COPY":
            return planCopy(arguments)
        case "FLUSHDB", "FLUSHALL":
            guard arguments.count <= 1 else { return .reply(RESPError.syntax) }
            if let mode = arguments.first, !["ASYNC", "SYNC"].contains(commandName(mode)) { return .reply(RESPError.syntax) }
            return .write([.flushAll], .ok)
        case "OBJECT":
            return planObject(arguments)
        default:  // MEMORY
            let sub = commandName(arguments[first])
            guard sub == "USAGE" else {
                if sub == "HELP" { return .reply(.array(["MEMORY USAGE <key> [SAMPLES <count>]"].map(RESPValue.bulk))) }
                return .reply(RESPError.unknownSubcommand(String(buffer: arguments[first]), of: "MEMORY"))
            }
            guard arguments.count >= 2 else { return .reply(RESPError.wrongArity("memory|usage")) }
            if arguments.count > 2 {
                guard arguments.count == 4, commandName(arguments[first + 2]) == "SAMPLES" else { return .reply(RESPError.syntax) }
                guard integer(arguments[first + 3]) != nil else { return .reply(RESPError.notInteger) }
            }
            return .write([.keyspace(.memoryUsage(key(arguments[first + 1])))], .memoryUsage)
        }
    }

    /// `EXPIRE key seconds [NX | XX | GT | LT]` and its millisecond and absolute forms.
    private func planExpire(_ name: String, _ arguments: ArraySlice<ByteBuffer>) -> Step {
        let first = arguments.startIndex
        var condition = ExpireCondition.always
        var nx = false, xx = false, gt = false, lt = false
        for option in arguments.dropFirst(2) {
            switch commandName(option) {
            case "NX": nx = true
            case "XX": xx = true
            case "GT": gt = true
            case "LT": lt = true
            default: return .reply(.error("ERR Unsupported option \(String(buffer: option).prefix(128))"))
            }
        }
        if nx && (xx || gt || lt) { return .reply(.error("ERR NX and XX, GT or LT options at the same time are not compatible")) }
        if gt && lt { return .reply(.error("ERR GT and LT options at the same time are not compatible")) }
        if nx { condition = .ifNone } else if xx { condition = .ifSome }
        // XX with GT: GT already needs a deadline (none is infinite); XX with LT needs both.
        if gt { condition = .ifGreater } else if lt { condition = xx ? .ifSomeAndLess : .ifLess }
        guard let amount = integer(arguments[first + 1]) else { return .reply(RESPError.notInteger) }
        guard let time = expiryTime(amount, seconds: !name.hasPrefix("P"), absolute: name.hasSuffix("AT")) else {
            return .reply(RESPError.invalidExpireTime(name))
        }
        return .write([.expire(key(arguments[first]), time, condition)], .collection(.integer))
    }

    /// The time of an expiry argument: seconds are converted to milliseconds; `nil`
    /// when the value does not fit (Redis's "invalid expire time"), counting a relative
    /// time from this node's clock as Redis counts it from its own.
    func expiryTime(_ amount: Int64, seconds: Bool, absolute: Bool) -> ExpiryTime? {
        var milliseconds = amount
        if seconds {
            let (product, overflow) = amount.multipliedReportingOverflow(by: 1000)
            if overflow { return nil }
            milliseconds = product
        }
        if absolute { return .at(milliseconds: milliseconds) }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        guard milliseconds <= Int64.max - now else { return nil }
        return .after(milliseconds: milliseconds)
    }

    /// Parses `EX s | PX ms | EXAT s | PXAT ms` at `index` (the option name): the
    /// time, or the error reply. Redis refuses zero and negative values.
    func expiryOption(_ option: String, _ value: ByteBuffer, command: String) -> Result<ExpiryTime, RESPErrorReply> {
        guard let amount = integer(value) else { return .failure(RESPErrorReply(RESPError.notInteger)) }
        guard amount > 0, let time = expiryTime(amount, seconds: option == "EX" || option == "EXAT",
                                                absolute: option.hasSuffix("AT")) else {
            return .failure(RESPErrorReply(RESPError.invalidExpireTime(command)))
        }
        return .success(time)
    }

    /// `GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]`.
    private func planGetEx(_ arguments: ArraySlice<ByteBuffer>) -> Step {
        let first = arguments.startIndex
        var change = ExpiryChange.keep
        var index = first + 1
        var seen = false
        while index < arguments.endIndex {
            let option = commandName(arguments[index])
            guard !seen else { return .reply(RESPError.syntax) }
            seen = true
            switch option {
            case "PERSIST":
                change = .clear
            case "EX", "PX", "EXAT", "PXAT":
                guard index + 1 < arguments.endIndex else { return .reply(RESPError.syntax) }
                index += 1
                switch expiryOption(option, arguments[index], command: "GETEX") {
                case .success(let time): change = .set(time)
                case .failure(let error): return .reply(error.value)
                }
            default:
                return .reply(RESPError.syntax)
            }
            index += 1
        }
        return .write([.getAndExpire(key(arguments[first]), change)], .collection(.value))
    }

    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`. The cursor is a decimal
    /// integer (see `ScanCursor`); COUNT is capped at `RESPLimits.maxScanCount`.
    private func planScan(_ arguments: ArraySlice<ByteBuffer>) -> Step {
        let first = arguments.startIndex
        guard let after = ScanCursor.decode(bytes(arguments[first])) else { return .reply(.error("ERR invalid cursor")) }
        var pattern: [UInt8]?
        var count = 10
        var type: ValueType?
        var unknownType = false
        var index = first + 1
        while index < arguments.endIndex {
            guard index + 1 < arguments.endIndex else { return .reply(RESPError.syntax) }
            let value = arguments[index + 1]
            switch commandName(arguments[index]) {
            case "MATCH":
                pattern = bytes(value)
            case "COUNT":
                guard let parsed = integer(value) else { return .reply(RESPError.notInteger) }
                guard parsed >= 1 else { return .reply(RESPError.syntax) }
                count = Int(min(parsed, Int64(server.configuration.limits.maxScanCount)))
            case "TYPE":
                let name = String(buffer: value).lowercased()
                type = ValueType.allCases.first { $0.name == name }
                unknownType = type == nil  // Redis 7.0 returns no keys for an unknown type
            default:
                return .reply(RESPError.syntax)
            }
            index += 2
        }
        if pattern == [UInt8(ascii: "*")] { pattern = nil }
        return .write([.keyspace(.scan(after: after, pattern: pattern, count: count, type: type))],
                      .scan(noKeys: unknownType))
    }

    /// `COPY source destination [DB 0] [REPLACE]`: only database 0 exists.
    private func planCopy(_ arguments: ArraySlice<ByteBuffer>) -> Step {
        let first = arguments.startIndex
        let (source, destination) = (key(arguments[first]), key(arguments[first + 1]))
        var replace = false
        var index = first + 2
        while index < arguments.endIndex {
            switch commandName(arguments[index]) {
            case "REPLACE":
                replace = true
            case "DB" where index + 1 < arguments.endIndex:
                index += 1
                guard let db = integer(arguments[index]) else { return .reply(RESPError.notInteger) }
                guard db == 0 else {
                    return .reply(.error("ERR COPY to another database is not supported: Aegis has only database 0"))
                }
            default:
                return .reply(RESPError.syntax)
            }
            index += 1
        }
        guard source != destination else { return .reply(.error("ERR source and destination objects are the same")) }
        return .write([.copy(source, to: destination, replace: replace)], .collection(.integer))
    }

    /// `OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ | HELP`.
    private func planObject(_ arguments: ArraySlice<ByteBuffer>) -> Step {
        let first = arguments.startIndex
        let sub = commandName(arguments[first])
        if sub == "HELP" {
            return .reply(.array(["OBJECT ENCODING <key>", "OBJECT REFCOUNT <key>"].map(RESPValue.bulk)))
        }
        guard ["ENCODING", "REFCOUNT", "IDLETIME", "FREQ"].contains(sub) else {
            return .reply(RESPError.unknownSubcommand(String(buffer: arguments[first]), of: "OBJECT"))
        }
        guard arguments.count == 2 else { return .reply(RESPError.wrongArity("object|\(sub.lowercased())")) }
        let target = key(arguments[first + 1])
        switch sub {
        case "ENCODING": return .write([.keyspace(.encoding(target))], .collection(.value))
        case "REFCOUNT": return .write([.keyspace(.encoding(target))], .refCount)
        default:
            return .reply(.error("ERR OBJECT \(sub) is not supported: Aegis does not track key access times or frequencies"))
        }
    }
}

/// An error reply, as a value a `Result` can carry.
struct RESPErrorReply: Error {
    let value: RESPValue
    init(_ value: RESPValue) { self.value = value }
}

/// The `SCAN` cursor: a decimal integer, as Redis clients expect (redis-py parses it
/// with `int`), that names the last key examined. "0" starts (and ends) a scan; any
/// other cursor is "1" followed by three decimal digits (000 to 255) per byte of the
/// key. The scan continues strictly after that key in byte order, so a key present
/// for the whole scan is returned exactly once, whatever is written in between.
enum ScanCursor {
    /// The cursor that continues after `key`, "0" for `nil` (the scan is done).
    static func encode(_ key: [UInt8]?) -> [UInt8] {
        guard let key else { return [UInt8(ascii: "0")] }
        var text: [UInt8] = [UInt8(ascii: "1")]
        text.reserveCapacity(1 + 3 * key.count)
        for byte in key {
            text.append(UInt8(ascii: "0") + byte / 100)
            text.append(UInt8(ascii: "0") + byte / 10 % 10)
            text.append(UInt8(ascii: "0") + byte % 10)
        }
        return text
    }

    /// The key a cursor continues after: `.some(nil)` for "0", `nil` when the text is
    /// not a cursor this server made.
    static func decode(_ text: [UInt8]) -> Key?? {
        if text == [UInt8(ascii: "0")] { return .some(nil) }
        guard text.count >= 4, text.count % 3 == 1, text[0] == UInt8(ascii: "1") else { return nil }
        var key: [UInt8] = []
        key.reserveCapacity(text.count / 3)
        var index = 1
        while index < text.count {
            var value = 0
            for digit in text[index ..< index + 3] {
                guard digit >= UInt8(ascii: "0") && digit <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(digit - UInt8(ascii: "0"))
            }
            guard value <= 255 else { return nil }
            key.append(UInt8(value))
            index += 3
        }
        return .some(Key(key))
    }
}

extension WriteReply {
    /// The reply of a successful keyspace command (see the cases).
    func keyspaceReply(_ result: CommandResult) -> RESPValue {
        switch self {
        case .timeToLive(let milliseconds, let absolute):
            guard result.integer >= 0 else { return .integer(result.integer) }
            var time = absolute ? result.integer : max(0, result.integer - Int64(clamping: result.time))
            if !milliseconds { time = (time + 500) / 1000 }
            return .integer(time)
        case .scan(let noKeys):
            let cursor = ScanCursor.encode(result.value)
            return .array([.bulkString(cursor), .array(noKeys ? [] : result.elements.map(RESPValue.bulkString))])
        case .keys:
            return .array(result.elements.map(RESPValue.bulkString))
        case .refCount:
            return result.value == nil ? .null : .integer(1)
        case .memoryUsage:
            return result.value == nil ? .null : .integer(result.integer)
        default:
            return .ok
        }
    }
}
