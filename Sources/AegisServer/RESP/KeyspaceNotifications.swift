public import AegisKV
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

    /// The events a successfully applied command causes: (key, event, class).
    static func events(of command: Command) -> [(key: Key, event: String, flag: Character)] {
        switch command {
        case .set(let key, _), .getSet(let key, _), .compareAndSwap(let key, _, _): return [(key, "set", "$")]
        case .append(let key, _): return [(key, "append", "$")]
        case .increment(let key, _): return [(key, "incrby", "$")]
        case .delete(let key): return [(key, "del", "g")]
        case .deleteMany(let keys): return keys.map { ($0, "del", "g") }
        case .setMany(let pairs, _): return pairs.map { ($0.key, "set", "$") }
        case .collection(let key, let operation):
            switch operation {
            case .setAdd: return [(key, "sadd", "s")]
            case .setRemove: return [(key, "srem", "s")]
            case .hashSet: return [(key, "hset", "h")]
            case .hashDelete: return [(key, "hdel", "h")]
            case .hashIncrement: return [(key, "hincrby", "h")]
            case .setMembers, .setIsMember, .setCardinality, .hashGet, .hashGetAll, .hashLength, .hashExists, .type: return []
            }
        case .session(_, let inner): return events(of: inner)
        case .transaction(_, let commands): return commands.flatMap(events(of:))
        case .setWith(let key, _, _, _, _): return [(key, "set", "$")]
        case .expire(let key, _, _): return [(key, "expire", "g")]
        case .persist(let key): return [(key, "persist", "g")]
        case .getAndExpire(let key, _): return [(key, "expire", "g")]
        case .purgeExpired(let keys): return keys.map { ($0, "expired", "x") }
        case .rename(let source, let destination, _): return [(source, "rename_from", "g"), (destination, "rename_to", "g")]
        case .copy(_, let destination, _): return [(destination, "copy_to", "g")]
        case .flushAll, .keyspace, .timeToLive: return []
        case .streamBatch(let batch): return batch.changes.flatMap { events(of: $0.command) }
        case .get, .custom, .openSession, .publish, .setDRState, .drSeedChunk, .drRejoin: return []
        }
    }
}

extension PubSubHub {
    /// Publishes the keyspace notifications of an applied entry (nothing unless
    /// enabled and someone subscribes).
    func notifyKeyspace(_ data: [UInt8], _ result: CommandResult) {
        let flags = notificationFlags.withLockedValue { $0 }
        guard flags.isActive, result.error == nil, hasSubscribers, let command = try? Command(decoding: data) else { return }
        for (key, event, flag) in KeyspaceNotificationFlags.events(of: command) where flags.classes.contains(flag) {
            if flags.keyspace { publish(channel: Array("__keyspace@0__:".utf8) + key.bytes, message: Array(event.utf8)) }
            if flags.keyevent { publish(channel: Array("__keyevent@0__:\(event)".utf8), message: key.bytes) }
        }
    }
}
