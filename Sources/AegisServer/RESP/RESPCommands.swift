import AegisKV
import NIOCore

/// The data commands: parsing arguments into steps.
extension RESPSession {
    /// Commands allowed before `AUTH` when a password is configured.
    static let allowedBeforeAuth: Set<String> = ["AUTH", "HELLO", "QUIT", "RESET"]

    /// Turns one request into what to run and how to answer it.
    mutating func plan(_ request: RESPRequest) -> Step {
        switch admit(request) {
        case .failure(let refusal): return .reply(refusal.value)
        case .success(let (name, arguments)):
            // AEGIS.EXACTLY plans its inner command as a request of its own.
            if name == "AEGIS.EXACTLY" { return planExactlyOnce(arguments) }
            return planAdmitted(name, arguments)
        }
    }

    /// The checks every command passes before it is planned or queued: the request's
    /// own refusal, a known name, authentication, arity and the ACL. The upper-case name
    /// and the arguments, or the error reply.
    mutating func admit(_ request: RESPRequest) -> Result<(String, ArraySlice<ByteBuffer>), RESPErrorReply> {
        if let refusal = request.refusal {
            if let first = request.arguments.first { server.metrics.recordCommand(commandName(first)) }
            return .failure(RESPErrorReply(.error(refusal)))
        }
        guard let first = request.arguments.first else { return .failure(RESPErrorReply(RESPError.syntax)) }
        let name = commandName(first)
        server.metrics.recordCommand(name)
        let arguments = request.arguments.dropFirst()
        guard let info = RESPCommandTable.byName[name] else {
            return .failure(RESPErrorReply(RESPError.unknownCommand(String(buffer: first),
                                                                   arguments: arguments.map { String(buffer: $0) }[...])))
        }
        guard authenticated || Self.allowedBeforeAuth.contains(name) else { return .failure(RESPErrorReply(RESPError.noAuth)) }
        let count = request.arguments.count
        guard info.arity >= 0 ? count == info.arity : count >= -info.arity else {
            return .failure(RESPErrorReply(RESPError.wrongArity(name)))
        }
        if let denial = permissionDenial(name, info, arguments) { return .failure(RESPErrorReply(denial)) }
        if let refusal = subscribedModeRefusal(name) ?? watchingModeRefusal(name) { return .failure(RESPErrorReply(refusal)) }
        return .success((name, arguments))
    }

    /// Plans a command that passed `admit(_:)`.
    func planAdmitted(_ name: String, _ arguments: ArraySlice<ByteBuffer>) -> Step {
        switch name {
        case "GET":
            return .read([key(arguments[arguments.startIndex])], .value)
        case "MGET":
            return .read(arguments.map(key), .values)
        case "EXISTS":
            return .read(arguments.map(key), .existsCount)
        case "STRLEN":
            return .read([key(arguments[arguments.startIndex])], .length)
        case "SETNX":
            let (target, value) = (key(arguments[arguments.startIndex]), bytes(arguments[arguments.startIndex + 1]))
            return .write([.compareAndSwap(target, expected: .version(0), new: value)], .setIfNoneExist)
        case "GETSET":
            let (target, value) = (key(arguments[arguments.startIndex]), bytes(arguments[arguments.startIndex + 1]))
            return .write([.getSet(target, value)], .previousValue)
        case "APPEND":
            let (target, value) = (key(arguments[arguments.startIndex]), bytes(arguments[arguments.startIndex + 1]))
            return .write([.append(target, value)], .collection(.integer))
        case "SET":
            return planSet(arguments)
        case "MSET", "MSETNX":
            // One command, so one log entry: applied all or nothing, seen whole by readers.
            guard arguments.count % 2 == 0 else { return .reply(RESPError.wrongArity(name)) }
            var pairs: [KeyValuePair] = []
            pairs.reserveCapacity(arguments.count / 2)
            var index = arguments.startIndex
            while index < arguments.endIndex {
                pairs.append(KeyValuePair(key(arguments[index]), bytes(arguments[index + 1])))
                index += 2
            }
            if name == "MSETNX" { return .write([.setMany(pairs, onlyIfNoneExist: true)], .setIfNoneExist) }
            return .write([pairs.count == 1 ? .set(pairs[0].key, pairs[0].value) : .setMany(pairs, onlyIfNoneExist: false)], .ok)
        case "DEL", "UNLINK":
            if arguments.count == 1 { return .write([.delete(key(arguments[arguments.startIndex]))], .deletedCount) }
            return .write([.deleteMany(arguments.map(key))], .deletedCount)
        case "INCR", "DECR", "INCRBY", "DECRBY":
            return planIncrement(name, arguments)
        case _ where Self.collectionCommands.contains(name):
            return planCollection(name, arguments)
        case "AEGIS.SESSION":
            return .write([.openSession], .collection(.integer))
        case _ where Self.keyspaceCommands.contains(name):
            return planKeyspace(name, arguments)
        case "DBSIZE":
            return .deferred(.count)
        case "AEGIS.DIGEST":
            return .deferred(.digest)
        case "AEGIS.SIBLINGS", "AEGIS.SETCTX", "AEGIS.CONFLICTS", "AEGIS.RESOLVE", "AEGIS.AUDIT":
            return planConflictCommand(name, arguments)
        case "INFO":
            return .deferred(.info(arguments.map { String(buffer: $0).lowercased() }))
        case "PING" where (subscriptions > 0 || watching) && version == .resp2:
            guard arguments.count <= 1 else { return .reply(RESPError.wrongArity(name)) }
            return .reply(.array([.bulk("pong"), .bulkString(arguments.first.map(bytes) ?? [])]))
        case "PUBLISH":
            return .deferred(.publish(key(arguments[arguments.startIndex]), bytes(arguments[arguments.startIndex + 1])))
        case "PUBSUB":
            return .reply(pubsubIntrospection(arguments))
        case "PING":
            if let message = arguments.first { return arguments.count == 1 ? .reply(.bulkString(bytes(message))) : .reply(RESPError.wrongArity(name)) }
            return .reply(.simpleString("PONG"))
        case "ECHO":
            return .reply(.bulkString(bytes(arguments[arguments.startIndex])))
        default:
            return .connection(name, arguments)
        }
    }

    /// `AEGIS.EXACTLY session sequence acknowledged command [argument …]`: runs one write
    /// command at most once for the client session's sequence number (see
    /// `ClientSessionRequest`); a retry gets the first attempt's reply. The inner command
    /// is parsed, checked and permission-checked as if sent alone.
    mutating func planExactlyOnce(_ arguments: ArraySlice<ByteBuffer>) -> Step {
        let start = arguments.startIndex
        func number(_ position: Int) -> UInt64? { UInt64(String(buffer: arguments[start + position])) }
        guard let session = number(0), let sequence = number(1), let acknowledged = number(2),
              sequence > 0, acknowledged < sequence else {
            return .reply(.error("ERR AEGIS.EXACTLY needs a session ID, a sequence number above 0 and an acknowledged "
                + "sequence number below it, as decimal integers"))
        }
        let inner = RESPRequest(arguments: Array(arguments[(start + 3)...]))
        let request = ClientSessionRequest(session: session, sequence: sequence, acknowledged: acknowledged)
        switch plan(inner) {
        case .write(let commands, let reply) where commands.count == 1 && commands[0].isWrite
            && commands[0].type != .session && commands[0].type != .openSession:
            return .write([.session(request, commands[0])], reply)
        case .reply(let value):
            return .reply(value)
        default:
            let name = inner.arguments.first.map { String(buffer: $0).uppercased() } ?? ""
            return .reply(.error("ERR AEGIS.EXACTLY runs one write command that is a single log entry; \(name) is not one "
                + "(reads are safe to retry without it)"))
        }
    }

    /// `SET key value [NX | XX | IFEQ comparison] [GET] [EX s | PX ms | EXAT | PXAT | KEEPTTL]`
    /// (TTL options are refused: Aegis keys do not expire).
    /// `SET key value [NX | XX | IFEQ comparison] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]`.
    /// Without an expiry option, the plain forms keep their version-1 commands; with
    /// one, the command is a `setWith`.
    func planSet(_ arguments: ArraySlice<ByteBuffer>) -> Step {
        let key = key(arguments[arguments.startIndex])
        let value = bytes(arguments[arguments.startIndex + 1])
        enum Condition { case none, notExists, exists, equals([UInt8]) }
        var condition = Condition.none
        var returnValue = false
        var expiry: ExpiryChange?
        var index = arguments.startIndex + 2
        while index < arguments.endIndex {
            let option = String(buffer: arguments[index]).uppercased()
            switch option {
            case "NX", "XX":
                guard case .none = condition else { return .reply(RESPError.syntax) }
                condition = option == "NX" ? .notExists : .exists
            case "IFEQ":
                guard case .none = condition, index + 1 < arguments.endIndex else { return .reply(RESPError.syntax) }
                index += 1
                condition = .equals(bytes(arguments[index]))
            case "GET":
                returnValue = true
            case "KEEPTTL":
                guard expiry == nil else { return .reply(RESPError.syntax) }
                expiry = .keep
            case "EX", "PX", "EXAT", "PXAT":
                guard expiry == nil, index + 1 < arguments.endIndex else { return .reply(RESPError.syntax) }
                index += 1
                switch expiryOption(option, arguments[index], command: "SET") {
                case .success(let time): expiry = .set(time)
                case .failure(let error): return .reply(error.value)
                }
            default:
                return .reply(RESPError.syntax)
            }
            index += 1
        }
        if let expiry {
            let setCondition: SetCondition
            switch condition {
            case .none: setCondition = .always
            case .notExists: setCondition = .ifAbsent
            case .exists: setCondition = .ifPresent
            case .equals(let expected): setCondition = .ifEqual(expected)
            }
            return .write([.setWith(key, value, condition: setCondition, returnPrevious: returnValue, expiry: expiry)],
                          .conditional(returnValue: returnValue))
        }
        switch condition {
        case .none:
            // SET … GET fails with WRONGTYPE on a set or hash, as GETSET does.
            return returnValue ? .write([.getSet(key, value)], .previousValue) : .write([.set(key, value)], .ok)
        case .notExists:
            return .write([.compareAndSwap(key, expected: .version(0), new: value)], .conditional(returnValue: returnValue))
        case .equals(let expected):
            return .write([.compareAndSwap(key, expected: .value(expected), new: value)], .conditional(returnValue: returnValue))
        case .exists:
            return .deferred(.setIfExists(key, value, returnPrevious: returnValue))
        }
    }

    func planIncrement(_ name: String, _ arguments: ArraySlice<ByteBuffer>) -> Step {
        let key = key(arguments[arguments.startIndex])
        var amount: Int64 = 1
        if arguments.count == 2 {
            guard let parsed = integer(arguments[arguments.startIndex + 1]) else { return .reply(RESPError.notInteger) }
            amount = parsed
        }
        if name.hasPrefix("DECR") {
            guard amount != .min else { return .reply(.error("ERR decrement would overflow")) }
            amount = -amount
        }
        return .write([.increment(key, by: amount)], .integer)
    }

    /// Runs a backend call that is not batched.
    func run(_ operation: DeferredOperation) async -> RESPValue {
        let backend = server.backend
        do {
            switch operation {
            case .count:
                return .integer(Int64(try await backend.count(stale: staleReads)))
            case .digest:
                let (index, digest) = try await backend.digest()
                return .array([.integer(Int64(index)), .bulk(digest)])
            case .info(let sections):
                return await info(sections)
            case .conflicts(let query):
                return try await runConflictQuery(query)
            case .publish(let channel, let message):
                let result = try await backend.execute(.publish(channel: channel, message: message))
                if let error = result.error { return RESPError.reply(for: error) }
                return published(channel, message)
            case .setIfExists(let key, let value, let returnPrevious):
                // Read the version, then write only at that version; retry if the key
                // changed in between, give up (null) once it is gone.
                while true {
                    guard let current = try await backend.read([key], stale: false).first ?? nil else { return .null }
                    let result = try await backend.execute(.compareAndSwap(key, expected: .version(current.version), new: value))
                    switch result.error {
                    case nil:
                        return returnPrevious ? result.previousValue.map(RESPValue.bulkString) ?? .null : .ok
                    case .compareFailed(let currentVersion):
                        if currentVersion == 0 { return .null }
                    case let error?:
                        return RESPError.reply(for: error)
                    }
                }
            }
        } catch {
            return RESPError.reply(for: error)
        }
    }

    // MARK: Arguments

    /// The upper-case command name, without allocating for names of up to 15 bytes.
    func commandName(_ buffer: ByteBuffer) -> String {
        buffer.withUnsafeReadableBytes { raw in
            String(unsafeUninitializedCapacity: raw.count) { target in
                for index in 0 ..< raw.count {
                    let byte = raw[index]
                    target[index] = byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") ? byte - 32 : byte
                }
                return raw.count
            }
        }
    }

    func key(_ buffer: ByteBuffer) -> Key { Key(bytes(buffer)) }

    func bytes(_ buffer: ByteBuffer) -> [UInt8] {
        buffer.withUnsafeReadableBytes { [UInt8]($0) }
    }

    /// A canonical decimal 64-bit integer, as Redis parses command arguments.
    func integer(_ buffer: ByteBuffer) -> Int64? {
        buffer.withUnsafeReadableBytes { raw -> Int64? in
            guard raw.count > 0, raw.count <= 20 else { return nil }
            let negative = raw[0] == UInt8(ascii: "-")
            let start = negative ? 1 : 0
            guard start < raw.count else { return nil }
            if raw[start] == UInt8(ascii: "0") && (raw.count - start > 1 || negative) { return nil }
            var magnitude: UInt64 = 0
            for index in start ..< raw.count {
                let byte = raw[index]
                guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
                let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (next, o2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
                if o1 || o2 { return nil }
                magnitude = next
            }
            if negative {
                guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
                return magnitude == UInt64(Int64.max) + 1 ? .min : -Int64(magnitude)
            }
            return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
        }
    }
}
