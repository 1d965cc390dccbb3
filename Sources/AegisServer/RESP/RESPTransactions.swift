import AegisKV
import NIOCore

/// A transaction being queued between `MULTI` and `EXEC`.
struct QueuedTransaction {
    /// The commands, in order: they become one `Command.transaction`, one log entry.
    var commands: [Command] = []
    /// How each queued command's results become its reply (as in a pipeline).
    var slots: [ExecutionQueue.Slot] = []
    /// The bytes of the queued arguments, for `RESPLimits.maxTransactionBytes`.
    var bytes = 0
    /// `true` after a command was refused while queuing: `EXEC` then answers EXECABORT.
    var failed = false
}

/// `MULTI`, `EXEC`, `DISCARD`, `WATCH`, `UNWATCH`, and queuing inside a transaction.
///
/// The queued commands are planned as they arrive (arity, unknown commands and ACL
/// refusals abort the transaction, as in Redis; other errors are answered in their
/// place in the `EXEC` reply) and `EXEC` sends them as one `Command.transaction`:
/// one log entry, applied atomically at one place in the log, reads included. The
/// watched keys travel with it with the modify revision read at `WATCH` (a
/// linearizable read), and the state machine applies nothing if one of them changed.
extension RESPSession {
    /// The commands that `handleTransactional` runs even outside a transaction.
    static let transactionCommands: Set<String> = ["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"]

    /// `true` when `request` must go through `handleTransactional`.
    func isTransactional(_ request: RESPRequest) -> Bool {
        if transaction != nil { return true }
        guard request.refusal == nil, let first = request.arguments.first else { return false }
        return Self.transactionCommands.contains(commandName(first))
    }

    /// Runs a transaction command, or queues a command inside a transaction. Returns
    /// the reply and whether the connection stays open.
    mutating func handleTransactional(_ request: RESPRequest) async -> (RESPValue, Bool) {
        let name: String, arguments: ArraySlice<ByteBuffer>
        switch admit(request) {
        case .failure(let refusal):
            transaction?.failed = true
            return (refusal.value, true)
        case .success(let admitted):
            (name, arguments) = admitted
        }
        switch name {
        case "MULTI":
            guard transaction == nil else { return (.error("ERR MULTI calls can not be nested"), true) }
            transaction = QueuedTransaction()
            return (.ok, true)
        case "EXEC":
            guard let queued = transaction else { return (.error("ERR EXEC without MULTI"), true) }
            transaction = nil
            let watches = watchedKeys
            watchedKeys = []
            guard !queued.failed else { return (RESPError.execAbort, true) }
            return (await exec(queued, watches: watches), true)
        case "DISCARD":
            guard transaction != nil else { return (.error("ERR DISCARD without MULTI"), true) }
            transaction = nil
            watchedKeys = []
            return (.ok, true)
        case "WATCH":
            guard transaction == nil else { return (.error("ERR WATCH inside MULTI is not allowed"), true) }
            return (await watch(arguments.map(key)), true)
        case "UNWATCH" where transaction == nil:
            watchedKeys = []
            return (.ok, true)
        case "QUIT":
            return (.ok, false)
        case "RESET":
            transaction = nil
            watchedKeys = []
            return await handleConnectionCommand(name, arguments)
        default:
            return (enqueue(name, arguments, bytes: request.arguments.reduce(0) {
                $0 + RESPLimits.requestBytes(forArgumentOf: $1.readableBytes)
            }), true)
        }
    }

    /// Queues an admitted command in the transaction.
    private mutating func enqueue(_ name: String, _ arguments: ArraySlice<ByteBuffer>, bytes: Int) -> RESPValue {
        guard var queued = transaction else { return .error("ERR no transaction") }  // unreachable: checked by the caller
        transaction = nil  // so that `queued` is the only copy while it changes
        defer { transaction = queued }
        let limits = server.configuration.limits
        guard queued.slots.count < limits.maxTransactionCommands, queued.bytes + bytes <= limits.maxTransactionBytes else {
            queued.failed = true
            return .error("ERR the transaction is over \(limits.maxTransactionCommands) commands or "
                + "\(limits.maxTransactionBytes) bytes (--max-transaction-commands, --max-transaction-bytes); it will be discarded")
        }
        queued.bytes += bytes
        switch planAdmitted(name, arguments) {
        case .reply(let value):
            queued.slots.append(.ready(value))
        case .write(let commands, _) where commands.contains(where: { !$0.mayBeInTransaction }):
            queued.slots.append(.ready(.error("ERR \(name) cannot run inside MULTI")))
        case .write(let commands, let kind):
            queued.commands.append(contentsOf: commands)
            queued.slots.append(.write(count: commands.count, kind))
        case .read(let keys, let kind):
            queued.commands.append(contentsOf: keys.map { Command.get($0) })
            queued.slots.append(.read(count: keys.count, kind))
        case .deferred(.count):
            queued.commands.append(.keyspace(.count))
            queued.slots.append(.write(count: 1, .collection(.integer)))
        case .deferred(.setIfExists(let key, let value, let returnPrevious)):
            queued.commands.append(.setWith(key, value, condition: .ifPresent, returnPrevious: returnPrevious, expiry: .clear))
            queued.slots.append(.write(count: 1, .conditional(returnValue: returnPrevious)))
        case .deferred(.publish(let channel, let message)):
            // Delivered when the transaction is applied; the reply counts no receivers.
            queued.commands.append(.publish(channel: channel, message: message))
            queued.slots.append(.write(count: 1, .collection(.integer)))
        case .deferred(.digest), .deferred(.info), .deferred(.conflicts), .connection:
            queued.slots.append(.ready(.error("ERR \(name) cannot run inside MULTI: it does not go through the log")))
        }
        return .simpleString("QUEUED")
    }

    /// `WATCH key…`: reads each key's modify revision (linearizable) and remembers it.
    private mutating func watch(_ keys: [Key]) async -> RESPValue {
        let limit = server.configuration.limits.maxTransactionCommands
        guard watchedKeys.count + keys.count <= limit else {
            return .error("ERR more than \(limit) watched keys (--max-transaction-commands)")
        }
        do {
            let records = try await server.backend.read(keys, stale: false)
            for (index, key) in keys.enumerated() {
                let revision = index < records.count ? records[index]?.modRevision ?? 0 : 0
                watchedKeys.append(WatchedKey(key, modRevision: revision))
            }
            return .ok
        } catch {
            return RESPError.reply(for: error)
        }
    }

    /// Sends the queued commands as one transaction and assembles the `EXEC` reply.
    private func exec(_ queued: QueuedTransaction, watches: [WatchedKey]) async -> RESPValue {
        var results: [CommandResult] = []
        if !queued.commands.isEmpty || !watches.isEmpty {
            let outcome: CommandResult
            do {
                outcome = try await server.backend.execute(.transaction(watches: watches, commands: queued.commands))
            } catch {
                return RESPError.reply(for: error)
            }
            if case .transactionAborted? = outcome.error { return .null }
            if let error = outcome.error { return RESPError.reply(for: error) }
            guard outcome.results.count == queued.commands.count else {
                return .error("ERR the transaction returned \(outcome.results.count) results for \(queued.commands.count) commands")
            }
            results = outcome.results
        }
        var replies: [RESPValue] = []
        replies.reserveCapacity(queued.slots.count)
        var next = 0
        for slot in queued.slots {
            switch slot {
            case .ready(let value):
                replies.append(value)
            case .write(let count, let kind):
                replies.append(kind.reply(results[next ..< next + count].map { .success($0) }[...]))
                next += count
            case .read(let count, let kind):
                replies.append(kind.reply(results[next ..< next + count].map(Self.record(fromGet:))[...]))
                next += count
            }
        }
        return .array(replies)
    }

    /// The record a read reply expects, from the result of a `get` through the log: a
    /// set or hash (which `get` refuses as the wrong type) reads as a non-string record.
    static func record(fromGet result: CommandResult) -> Result<KeyValue?, BackendError> {
        switch result.error {
        case nil:
            guard let value = result.value else { return .success(nil) }
            return .success(KeyValue(key: Key([]), value: value, version: result.version, createRevision: 0,
                                     modRevision: 0))
        case .wrongType?:
            return .success(KeyValue(key: Key([]), value: [], version: 0, createRevision: 0, modRevision: 0, type: .set))
        case let error?:
            return .failure(.command(error))
        }
    }
}
