import AegisKV
import NIOConcurrencyHelpers

/// Redis keyspace notifications (`notify-keyspace-events`) for the commands Aegis has:
/// each applied write publishes `__keyspace@0__:<key>` → event and
/// `__keyevent@0__:<event>` → key to this node's subscribers.
///
/// Every node applies every write, so a subscriber on any node sees every change, in
/// log order. The setting is per node (`CONFIG SET notify-keyspace-events`), as in
/// Redis. Classes: `K` keyspace channel, `E` keyevent channel, `g` generic (`del`),
/// `$` strings (`set`, `append`, `incrby`), `s` sets (`sadd`, `srem`), `h` hashes
/// (`hset`, `hdel`, `hincrby`), `A` = `g$sh` (Aegis has no lists, sorted sets or
/// streams; `x`/`e` apply to expiry when it exists). A multi-key `DEL` notifies each
/// key it names.
public struct KeyspaceNotificationFlags: Sendable, Hashable {
    var keyspace = false, keyevent = false
    var classes: Set<Character> = []

    /// No notifications (Redis's default, `""`).
    public static let none = KeyspaceNotificationFlags()

    /// Parses Redis's flag string; `nil` for an unknown flag.
    public init?(_ text: String) {
        for flag in text {
            switch flag {
            case "K": keyspace = true
            case "E": keyevent = true
            case "A": classes.formUnion(["g", "$", "s", "h", "x", "e"])
            case "g", "$", "l", "s", "h", "z", "x", "e", "t", "d", "m", "n": classes.insert(flag)
            default: return nil
            }
        }
    }

    init() {}

    /// `true` when some event can be published.
    var isActive: Bool { (keyspace || keyevent) && !classes.isEmpty }

    /// The flag string as `CONFIG GET` shows it.
    public var description: String {
        var text = ""
        if classes.isSuperset(of: ["g", "$", "s", "h", "x", "e"]) { text += "A" } else {
            for flag in "g$lshzxetdmn" where classes.contains(flag) { text.append(flag) }
        }
        if keyspace { text += "K" }
        if keyevent { text += "E" }
        return text
    }

    /// One change a write command makes to one key, as keyspace notifications and
    /// `AEGIS.WATCH` report it.
    struct Change {
        /// The key; `nil` for every key (`FLUSHALL`, reported by watches only).
        var key: Key?
        /// The event name (`set`, `del`, `incrby`…).
        var event: String
        /// The notification class (`$`, `g`, `s`, `h`, `x`).
        var flag: Character
        /// What the command wrote, for watches: the value of a `set`, the suffix of an
        /// `append`, the decimal delta of an `incrby`; `nil` for the others.
        var argument: [UInt8]?

        init(_ key: Key?, _ event: String, _ flag: Character, _ argument: [UInt8]? = nil) {
            (self.key, self.event, self.flag, self.argument) = (key, event, flag, argument)
        }
    }

    /// The changes a command makes, key by key, in the order it makes them: a pure
    /// function of the command (not of its outcome), so that replaying the log gives
    /// the same changes as applying it did.
    static func changes(of command: Command) -> [Change] {
        switch command {
        case .set(let key, let value), .getSet(let key, let value), .compareAndSwap(let key, _, let value),
             .setWith(let key, let value, _, _, _):
            return [Change(key, "set", "$", value)]
        case .append(let key, let suffix): return [Change(key, "append", "$", suffix)]
        case .increment(let key, let delta): return [Change(key, "incrby", "$", Array(String(delta).utf8))]
        case .delete(let key): return [Change(key, "del", "g")]
        case .deleteMany(let keys): return keys.map { Change($0, "del", "g") }
        case .setMany(let pairs, _): return pairs.map { Change($0.key, "set", "$", $0.value) }
        case .collection(let key, let operation):
            switch operation {
            case .setAdd: return [Change(key, "sadd", "s")]
            case .setRemove: return [Change(key, "srem", "s")]
            case .hashSet: return [Change(key, "hset", "h")]
            case .hashDelete: return [Change(key, "hdel", "h")]
            case .hashIncrement: return [Change(key, "hincrby", "h")]
            case .setMembers, .setIsMember, .setCardinality, .hashGet, .hashGetAll, .hashLength, .hashExists, .type: return []
            }
        case .session(_, let inner): return changes(of: inner)
        case .transaction(_, let commands): return commands.flatMap(changes(of:))
        case .expire(let key, _, _): return [Change(key, "expire", "g")]
        case .persist(let key): return [Change(key, "persist", "g")]
        case .getAndExpire(let key, _): return [Change(key, "expire", "g")]
        case .purgeExpired(let keys): return keys.map { Change($0, "expired", "x") }
        case .rename(let source, let destination, _): return [Change(source, "rename_from", "g"), Change(destination, "rename_to", "g")]
        case .copy(_, let destination, _): return [Change(destination, "copy_to", "g")]
        case .flushAll: return [Change(nil, "flushall", "g")]
        case .keyspace, .timeToLive: return []
        case .streamBatch(let batch): return batch.changes.flatMap { changes(of: $0.command) }
        case .activeActiveBatch(let batch): return batch.states.map { Change($0.key, "set", "g") }
        case .activeActiveCatchUp(let page): return page.batch.states.map { Change($0.key, "set", "g") }
        case .activeActiveConflict(.setStrategies): return []
        case .activeActiveConflict(let command): return [Change(command.key, "set", "g")]
        case .get, .custom, .openSession, .publish, .setDRState, .setActiveActive, .drSeedChunk, .drRejoin,
             .activeActiveTopology: return []
        }
    }
}

extension PubSubHub {
    /// Publishes the keyspace notifications of an applied entry (nothing unless
    /// enabled and someone subscribes).
    func notifyKeyspace(_ data: [UInt8], _ result: CommandResult) {
        let flags = notificationFlags.withLockedValue { $0 }
        guard flags.isActive, result.error == nil, hasSubscribers, let command = try? Command(decoding: data) else { return }
        // FLUSHALL has no keyspace notification in Redis (it names no key).
        for change in KeyspaceNotificationFlags.changes(of: command) where flags.classes.contains(change.flag) {
            guard let key = change.key else { continue }
            if flags.keyspace { publish(channel: Array("__keyspace@0__:".utf8) + key.bytes, message: Array(change.event.utf8)) }
            if flags.keyevent { publish(channel: Array("__keyevent@0__:\(change.event)".utf8), message: key.bytes) }
        }
    }
}
