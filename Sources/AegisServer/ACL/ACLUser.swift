import AegisKV
import Crypto

/// One Redis ACL user: whether it may log in, its hashed passwords, the commands it
/// may run and the keys it may touch.
///
/// Rules are Redis's (`ACL SETUSER alice on >secret ~cache:* +@read`). Passwords are
/// kept only as SHA-256 digests, as Redis keeps them, and `ACL LIST` shows the digests
/// (`#<hex>`), never the passwords.
///
/// Connection commands (`AUTH`, `HELLO`, `PING`, `ECHO`, `QUIT`, `RESET`, `SELECT`,
/// `CLIENT`, `COMMAND`, `READONLY`, `READWRITE`, `ACL WHOAMI`) are allowed to every
/// authenticated user whatever its rules: clients send them on connect.
public struct ACLUser: Sendable, Hashable {
    /// The user name.
    public let name: String
    /// `on`: the user may authenticate. New users are `off`.
    public var enabled = false
    /// `nopass`: any password is accepted.
    public var noPassword = false
    /// SHA-256 digests of the accepted passwords, in the order they were added.
    public private(set) var passwordHashes: [[UInt8]] = []
    /// Glob patterns (Redis `~pattern`) of the keys the user may read or write.
    public private(set) var keyPatterns: [String] = []
    /// The upper-case names of the commands the user may run (besides the connection
    /// commands), expanded from categories.
    public private(set) var allowedCommands: Set<String> = []
    /// SHA-256 of the name, compared in constant time when a client authenticates.
    let nameDigest: [UInt8]

    /// A user with no rights: off, no password, no keys, no commands.
    public init(name: String) {
        self.name = name
        self.nameDigest = sha256(name)
    }

    /// A user with `rules` applied in order, as `ACL SETUSER name rules…` would make it.
    public init(name: String, rules: [String]) throws(ACLError) {
        self.init(name: name)
        for rule in rules { try apply(rule) }
    }

    /// Applies one `ACL SETUSER` rule.
    public mutating func apply(_ rule: String) throws(ACLError) {
        let lower = rule.lowercased()
        switch lower {
        case "on": enabled = true
        case "off": enabled = false
        case "nopass":
            noPassword = true
            passwordHashes = []
        case "resetpass":
            noPassword = false
            passwordHashes = []
        case "allkeys": keyPatterns = ["*"]
        case "resetkeys": keyPatterns = []
        case "allcommands": allowedCommands = ACLCategory.all.commands
        case "nocommands": allowedCommands = []
        case "resetchannels", "allchannels": break  // no pub/sub in Aegis
        case "reset":
            self = ACLUser(name: name)
        default:
            try applyPrefixed(rule)
        }
    }

    private mutating func applyPrefixed(_ rule: String) throws(ACLError) {
        guard let first = rule.first else { throw ACLError.badRule(rule) }
        let rest = String(rule.dropFirst())
        switch first {
        case ">":
            noPassword = false
            let digest = sha256(rest)
            if !passwordHashes.contains(digest) { passwordHashes.append(digest) }
        case "<":
            let digest = sha256(rest)
            guard passwordHashes.contains(digest) else { throw ACLError(rule, "no such password for the user") }
            passwordHashes.removeAll { $0 == digest }
        case "#", "!":
            guard let digest = hexDigest(rest) else {
                throw ACLError(rule, "the password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")
            }
            if first == "#" {
                noPassword = false
                if !passwordHashes.contains(digest) { passwordHashes.append(digest) }
            } else {
                guard passwordHashes.contains(digest) else { throw ACLError(rule, "no such password for the user") }
                passwordHashes.removeAll { $0 == digest }
            }
        case "~":
            guard !rest.isEmpty else { throw ACLError.badRule(rule) }
            if keyPatterns != ["*"] && !keyPatterns.contains(rest) { keyPatterns.append(rest) }
            if rest == "*" { keyPatterns = ["*"] }
        case "&":
            break  // channel patterns: no pub/sub in Aegis
        case "+", "-":
            let commands: Set<String>
            if rest.hasPrefix("@") {
                guard let category = ACLCategory(rawValue: String(rest.dropFirst()).lowercased()) else {
                    throw ACLError(rule, "Unknown command or category name in ACL")
                }
                commands = category.commands
            } else {
                let name = rest.uppercased()
                guard RESPCommandTable.byName[name] != nil || name == "ACL" else {
                    throw ACLError(rule, "Unknown command or category name in ACL")
                }
                commands = [name]
            }
            if first == "+" { allowedCommands.formUnion(commands) } else { allowedCommands.subtract(commands) }
        default:
            throw ACLError(rule, "Syntax error")
        }
    }

    /// Whether the user may run `command` (upper case).
    public func mayRun(_ command: String) -> Bool {
        ACLCategory.alwaysAllowed.contains(command) || allowedCommands.contains(command)
    }

    /// Whether the user may touch `key` (matched against the `~` patterns as Redis does).
    public func mayAccess(key: [UInt8]) -> Bool {
        keyPatterns.contains { $0 == "*" || globMatch(Array($0.utf8), key) }
    }

    /// The rules that recreate this user: one `ACL LIST` line after `user <name> `.
    public var rules: [String] {
        var rules = [enabled ? "on" : "off"]
        if noPassword { rules.append("nopass") }
        rules += passwordHashes.map { "#" + hex($0) }
        rules += keyPatterns.map { "~" + $0 }
        rules.append("resetchannels")
        rules += commandRules
        return rules
    }

    /// The command rules in Redis's shape: `+@all`, or `-@all` then the categories and
    /// commands added.
    private var commandRules: [String] {
        if allowedCommands.isSuperset(of: ACLCategory.all.commands) { return ["+@all"] }
        var rules = ["-@all"]
        var covered: Set<String> = []
        for category in [ACLCategory.read, .write, .admin] where allowedCommands.isSuperset(of: category.commands) {
            rules.append("+@" + category.rawValue)
            covered.formUnion(category.commands)
        }
        rules += allowedCommands.subtracting(covered).sorted().map { "+" + $0.lowercased() }
        return rules
    }

    /// The `ACL LIST` line.
    public var listLine: String { (["user", name] + rules).joined(separator: " ") }
}

/// The command categories Aegis knows (Redis's `@read`, `@write`, `@admin`, …).
public enum ACLCategory: String, Sendable, CaseIterable {
    /// Every command.
    case all
    /// Commands that read keys: GET, MGET, EXISTS, DBSIZE, AEGIS.DIGEST, TYPE, the set
    /// and hash reads, the keyspace reads and AEGIS.WATCH.
    case read
    /// Commands that write keys: SET, DEL, UNLINK, INCR…, MSET, MSETNX, the set and
    /// hash writes, and the exactly-once session commands.
    case write
    /// Server administration: ACL (but WHOAMI), CONFIG, INFO, FLUSHDB, FLUSHALL, and the
    /// active-active conflict queue and audit trail (AEGIS.CONFLICTS, AEGIS.AUDIT).
    case admin
    /// The same as `admin` (Redis's `@dangerous`).
    case dangerous

    /// The upper-case command names in the category.
    public var commands: Set<String> {
        switch self {
        case .all: return Self.read.commands.union(Self.write.commands).union(Self.admin.commands)
        case .read:
            return ["GET", "MGET", "EXISTS", "DBSIZE", "AEGIS.DIGEST", "TYPE", "STRLEN",
                    "SMEMBERS", "SISMEMBER", "SCARD", "HGET", "HGETALL", "HLEN", "HEXISTS",
                    "TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME", "SCAN", "KEYS", "RANDOMKEY", "OBJECT", "MEMORY",
                    "AEGIS.WATCH", "AEGIS.UNWATCH", "AEGIS.SIBLINGS"]  // a watch shows only the keys the user's `~` patterns allow
        case .write:
            return ["SET", "DEL", "UNLINK", "INCR", "INCRBY", "DECR", "DECRBY", "MSET", "MSETNX",
                    "SETNX", "GETSET", "APPEND", "SADD", "SREM", "HSET", "HDEL", "HINCRBY",
                    "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "SETEX", "PSETEX", "GETEX",
                    "RENAME", "RENAMENX", "COPY",
                    "AEGIS.SESSION", "AEGIS.EXACTLY", "PUBLISH", "AEGIS.SETCTX", "AEGIS.RESOLVE"]  // AEGIS.EXACTLY's inner command is checked too
        case .admin, .dangerous:
            // The conflict queue and trail name keys of every pattern: administration.
            return ["ACL", "CONFIG", "INFO", "FLUSHDB", "FLUSHALL", "AEGIS.CONFLICTS", "AEGIS.AUDIT"]
        }
    }

    /// Commands every authenticated user may run.
    static let alwaysAllowed: Set<String> = [
        "AUTH", "HELLO", "PING", "ECHO", "QUIT", "RESET", "SELECT", "CLIENT", "COMMAND", "READONLY", "READWRITE",
        "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "PUBSUB",
        "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH",
    ]
}

/// A rule or ACL command that could not be applied; the message is Redis's.
public struct ACLError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The text after `ERR `.
    public var message: String

    init(message: String) { self.message = message }

    init(_ rule: String, _ reason: String) {
        self.message = "Error in ACL SETUSER modifier '\(rule.prefix(128))': \(reason)"
    }

    static func badRule(_ rule: String) -> ACLError { ACLError(rule, "Syntax error") }

    public var description: String { message }
}

/// SHA-256 of the UTF-8 bytes of `text`.
func sha256(_ text: String) -> [UInt8] {
    Array(SHA256.hash(data: Array(text.utf8)))
}

/// Lower-case hexadecimal.
func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// The 32 bytes of a 64-character lower-case hexadecimal SHA-256 digest.
func hexDigest(_ text: String) -> [UInt8]? {
    guard text.utf8.count == 64 else { return nil }
    return hexBytes(text)
}
