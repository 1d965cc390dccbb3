/// What the server tells clients about a command (`COMMAND`, `COMMAND DOCS`).
struct RESPCommandInfo: Sendable {
    /// The upper-case name.
    var name: String
    /// Redis arity: the argument count including the name; negative means "at least".
    var arity: Int
    /// Redis flags, such as `write`, `readonly`, `fast`.
    var flags: [String]
    /// The position of the first key, the last key (-1: the last argument) and the step.
    var keys: (first: Int, last: Int, step: Int)
    /// The command group for `COMMAND DOCS`.
    var group: String
    /// One line for `COMMAND DOCS`.
    var summary: String

    /// The `COMMAND INFO` entry: name, arity, flags, first key, last key, step, ACL
    /// categories, tips, key specifications, subcommands.
    var infoReply: RESPValue {
        .array([
            .bulk(name.lowercased()), .integer(Int64(arity)),
            .set(flags.map { .simpleString($0) }),
            .integer(Int64(keys.first)), .integer(Int64(keys.last)), .integer(Int64(keys.step)),
            .set([.simpleString("@" + group)]), .array([]), .array([]), .array([]),
        ])
    }

    /// The `COMMAND DOCS` entry: a map with the summary, version and group.
    var docsReply: RESPValue {
        .map([
            RESPMapEntry(.bulk("summary"), .bulk(summary)),
            RESPMapEntry(.bulk("since"), .bulk("1.0.0")),
            RESPMapEntry(.bulk("group"), .bulk(group)),
        ])
    }
}

/// The commands the RESP server knows.
enum RESPCommandTable {
    static let commands: [RESPCommandInfo] = [
        RESPCommandInfo(name: "GET", arity: 2, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "string",
                        summary: "Returns the value of a key (linearizable; stale local read after READONLY)."),
        RESPCommandInfo(name: "SET", arity: -3, flags: ["write", "denyoom"], keys: (1, 1, 1), group: "string",
                        summary: "Sets a key; NX, XX, GET, IFEQ (compare-and-swap), EX, PX, EXAT, PXAT, KEEPTTL."),
        RESPCommandInfo(name: "DEL", arity: -2, flags: ["write"], keys: (1, -1, 1), group: "keyspace",
                        summary: "Deletes keys atomically (one log entry); returns how many existed."),
        RESPCommandInfo(name: "UNLINK", arity: -2, flags: ["write", "fast"], keys: (1, -1, 1), group: "keyspace",
                        summary: "Deletes keys atomically (one log entry), as DEL; returns how many existed."),
        RESPCommandInfo(name: "EXISTS", arity: -2, flags: ["readonly", "fast"], keys: (1, -1, 1), group: "keyspace",
                        summary: "Counts how many of the keys exist."),
        RESPCommandInfo(name: "INCR", arity: 2, flags: ["write", "denyoom", "fast"], keys: (1, 1, 1), group: "string",
                        summary: "Adds 1 to the integer value of a key."),
        RESPCommandInfo(name: "INCRBY", arity: 3, flags: ["write", "denyoom", "fast"], keys: (1, 1, 1), group: "string",
                        summary: "Adds an amount to the integer value of a key."),
        RESPCommandInfo(name: "DECR", arity: 2, flags: ["write", "denyoom", "fast"], keys: (1, 1, 1), group: "string",
                        summary: "Subtracts 1 from the integer value of a key."),
        RESPCommandInfo(name: "DECRBY", arity: 3, flags: ["write", "denyoom", "fast"], keys: (1, 1, 1), group: "string",
                        summary: "Subtracts an amount from the integer value of a key."),
        RESPCommandInfo(name: "MGET", arity: -2, flags: ["readonly", "fast"], keys: (1, -1, 1), group: "string",
                        summary: "Returns the values of keys."),
        RESPCommandInfo(name: "MSET", arity: -3, flags: ["write", "denyoom"], keys: (1, -1, 2), group: "string",
                        summary: "Sets keys atomically (one log entry): readers see all of them or none."),
        RESPCommandInfo(name: "MSETNX", arity: -3, flags: ["write", "denyoom"], keys: (1, -1, 2), group: "string",
                        summary: "Sets keys atomically only if none of them exists; returns 1 if set, 0 if not."),
        RESPCommandInfo(name: "SETNX", arity: 3, flags: ["write", "denyoom", "fast"], keys: (1, 1, 1), group: "string",
                        summary: "Sets a key only if it does not exist; returns 1 if set, 0 if not."),
        RESPCommandInfo(name: "GETSET", arity: 3, flags: ["write", "denyoom", "fast"], keys: (1, 1, 1), group: "string",
                        summary: "Sets a key and returns its previous value."),
        RESPCommandInfo(name: "APPEND", arity: 3, flags: ["write", "denyoom", "fast"], keys: (1, 1, 1), group: "string",
                        summary: "Appends to the value of a key; returns the new length."),
        RESPCommandInfo(name: "STRLEN", arity: 2, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "string",
                        summary: "Returns the length of the value of a key."),
        RESPCommandInfo(name: "SADD", arity: -3, flags: ["write", "denyoom", "fast"], keys: (1, 1, 1), group: "set",
                        summary: "Adds members to a set (add-wins OR-set); returns how many were new."),
        RESPCommandInfo(name: "SREM", arity: -3, flags: ["write", "fast"], keys: (1, 1, 1), group: "set",
                        summary: "Removes members from a set; returns how many were present."),
        RESPCommandInfo(name: "SMEMBERS", arity: 2, flags: ["readonly"], keys: (1, 1, 1), group: "set",
                        summary: "Returns the members of a set, in ascending byte order."),
        RESPCommandInfo(name: "SISMEMBER", arity: 3, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "set",
                        summary: "Returns 1 if the member is in the set, else 0."),
        RESPCommandInfo(name: "SCARD", arity: 2, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "set",
                        summary: "Returns the number of members of a set."),
        RESPCommandInfo(name: "HSET", arity: -4, flags: ["write", "denyoom", "fast"], keys: (1, 1, 1), group: "hash",
                        summary: "Sets hash fields (LWW on HLC timestamps); returns how many were new."),
        RESPCommandInfo(name: "HGET", arity: 3, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "hash",
                        summary: "Returns the value of a hash field."),
        RESPCommandInfo(name: "HDEL", arity: -3, flags: ["write", "fast"], keys: (1, 1, 1), group: "hash",
                        summary: "Removes hash fields; returns how many were present."),
        RESPCommandInfo(name: "HGETALL", arity: 2, flags: ["readonly"], keys: (1, 1, 1), group: "hash",
                        summary: "Returns the fields and values of a hash, in ascending field order."),
        RESPCommandInfo(name: "HINCRBY", arity: 4, flags: ["write", "denyoom", "fast"], keys: (1, 1, 1), group: "hash",
                        summary: "Adds an amount to the integer value of a hash field."),
        RESPCommandInfo(name: "HLEN", arity: 2, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "hash",
                        summary: "Returns the number of fields of a hash."),
        RESPCommandInfo(name: "HEXISTS", arity: 3, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "hash",
                        summary: "Returns 1 if the hash field exists, else 0."),
        RESPCommandInfo(name: "TYPE", arity: 2, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "keyspace",
                        summary: "Returns the type of a key: string, set, hash or none."),
        RESPCommandInfo(name: "EXPIRE", arity: -3, flags: ["write", "fast"], keys: (1, 1, 1), group: "keyspace",
                        summary: "Sets a key's time to live in seconds (NX, XX, GT, LT); the leader's clock, carried in the log."),
        RESPCommandInfo(name: "PEXPIRE", arity: -3, flags: ["write", "fast"], keys: (1, 1, 1), group: "keyspace",
                        summary: "Sets a key's time to live in milliseconds (NX, XX, GT, LT)."),
        RESPCommandInfo(name: "EXPIREAT", arity: -3, flags: ["write", "fast"], keys: (1, 1, 1), group: "keyspace",
                        summary: "Sets a key's deadline as a Unix time in seconds (NX, XX, GT, LT)."),
        RESPCommandInfo(name: "PEXPIREAT", arity: -3, flags: ["write", "fast"], keys: (1, 1, 1), group: "keyspace",
                        summary: "Sets a key's deadline as a Unix time in milliseconds (NX, XX, GT, LT)."),
        RESPCommandInfo(name: "TTL", arity: 2, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "keyspace",
                        summary: "Returns a key's time to live in seconds (-1 none, -2 no key)."),
        RESPCommandInfo(name: "PTTL", arity: 2, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "keyspace",
                        summary: "Returns a key's time to live in milliseconds (-1 none, -2 no key)."),
        RESPCommandInfo(name: "EXPIRETIME", arity: 2, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "keyspace",
                        summary: "Returns a key's deadline as a Unix time in seconds."),
        RESPCommandInfo(name: "PEXPIRETIME", arity: 2, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "keyspace",
                        summary: "Returns a key's deadline as a Unix time in milliseconds."),
        RESPCommandInfo(name: "PERSIST", arity: 2, flags: ["write", "fast"], keys: (1, 1, 1), group: "keyspace",
                        summary: "Removes a key's time to live."),
        RESPCommandInfo(name: "SETEX", arity: 4, flags: ["write", "denyoom"], keys: (1, 1, 1), group: "string",
                        summary: "Sets a key with a time to live in seconds."),
        RESPCommandInfo(name: "PSETEX", arity: 4, flags: ["write", "denyoom"], keys: (1, 1, 1), group: "string",
                        summary: "Sets a key with a time to live in milliseconds."),
        RESPCommandInfo(name: "GETEX", arity: -2, flags: ["write", "fast"], keys: (1, 1, 1), group: "string",
                        summary: "Returns a key's value and changes its time to live (EX, PX, EXAT, PXAT, PERSIST)."),
        RESPCommandInfo(name: "SCAN", arity: -2, flags: ["readonly"], keys: (0, 0, 0), group: "keyspace",
                        summary: "Iterates the keys in byte order (MATCH, COUNT, TYPE); the cursor names the last key examined."),
        RESPCommandInfo(name: "KEYS", arity: 2, flags: ["readonly"], keys: (0, 0, 0), group: "keyspace",
                        summary: "Returns the keys matching a pattern, up to --max-keys-reply of them (else an error)."),
        RESPCommandInfo(name: "RANDOMKEY", arity: 1, flags: ["readonly"], keys: (0, 0, 0), group: "keyspace",
                        summary: "Returns a key chosen from the log position (the same on every replica)."),
        RESPCommandInfo(name: "RENAME", arity: 3, flags: ["write"], keys: (1, 2, 1), group: "keyspace",
                        summary: "Renames a key, keeping its time to live."),
        RESPCommandInfo(name: "RENAMENX", arity: 3, flags: ["write", "fast"], keys: (1, 2, 1), group: "keyspace",
                        summary: "Renames a key only if the new name does not exist."),
        RESPCommandInfo(name: "COPY", arity: -3, flags: ["write", "denyoom"], keys: (1, 2, 1), group: "keyspace",
                        summary: "Copies a key (REPLACE; DB 0 only)."),
        RESPCommandInfo(name: "FLUSHDB", arity: -1, flags: ["write"], keys: (0, 0, 0), group: "server",
                        summary: "Removes every key (one log entry); @admin/@dangerous."),
        RESPCommandInfo(name: "FLUSHALL", arity: -1, flags: ["write"], keys: (0, 0, 0), group: "server",
                        summary: "Removes every key (one log entry); @admin/@dangerous."),
        RESPCommandInfo(name: "OBJECT", arity: -2, flags: ["readonly"], keys: (2, 2, 1), group: "keyspace",
                        summary: "OBJECT ENCODING and REFCOUNT (IDLETIME and FREQ are not tracked)."),
        RESPCommandInfo(name: "MEMORY", arity: -2, flags: ["readonly"], keys: (2, 2, 1), group: "server",
                        summary: "MEMORY USAGE: an estimate of a key's bytes."),
        RESPCommandInfo(name: "MULTI", arity: 1, flags: ["fast", "stale"], keys: (0, 0, 0), group: "transactions",
                        summary: "Starts a transaction: the queued commands are one log entry, applied atomically."),
        RESPCommandInfo(name: "EXEC", arity: 1, flags: [], keys: (0, 0, 0), group: "transactions",
                        summary: "Applies the queued commands; null if a watched key changed."),
        RESPCommandInfo(name: "DISCARD", arity: 1, flags: ["fast", "stale"], keys: (0, 0, 0), group: "transactions",
                        summary: "Drops the queued commands and the watched keys."),
        RESPCommandInfo(name: "WATCH", arity: -2, flags: ["fast"], keys: (1, -1, 1), group: "transactions",
                        summary: "Watches keys: EXEC applies nothing if one changes (decided at apply time by revision)."),
        RESPCommandInfo(name: "UNWATCH", arity: 1, flags: ["fast", "stale"], keys: (0, 0, 0), group: "transactions",
                        summary: "Forgets the watched keys."),
        RESPCommandInfo(name: "DBSIZE", arity: 1, flags: ["readonly", "fast"], keys: (0, 0, 0), group: "server",
                        summary: "Returns the number of keys."),
        RESPCommandInfo(name: "AEGIS.DIGEST", arity: 1, flags: ["readonly", "stale"], keys: (0, 0, 0), group: "server",
                        summary: "Returns [applied index, state digest] of this node, read locally (no ReadIndex)."),
        RESPCommandInfo(name: "PING", arity: -1, flags: ["fast", "stale"], keys: (0, 0, 0), group: "connection",
                        summary: "Returns PONG, or the argument."),
        RESPCommandInfo(name: "ECHO", arity: 2, flags: ["fast", "stale"], keys: (0, 0, 0), group: "connection",
                        summary: "Returns the argument."),
        RESPCommandInfo(name: "INFO", arity: -1, flags: ["stale"], keys: (0, 0, 0), group: "server",
                        summary: "Returns server, clients, replication and keyspace information."),
        RESPCommandInfo(name: "HELLO", arity: -1, flags: ["noauth", "fast", "stale"], keys: (0, 0, 0), group: "connection",
                        summary: "Handshakes: protocol version (2 or 3), AUTH and SETNAME."),
        RESPCommandInfo(name: "AUTH", arity: -2, flags: ["noauth", "fast", "stale"], keys: (0, 0, 0), group: "connection",
                        summary: "Authenticates the connection with the configured password."),
        RESPCommandInfo(name: "CLIENT", arity: -2, flags: ["stale"], keys: (0, 0, 0), group: "connection",
                        summary: "CLIENT ID, GETNAME, SETNAME, SETINFO, INFO."),
        RESPCommandInfo(name: "SELECT", arity: 2, flags: ["fast", "stale"], keys: (0, 0, 0), group: "connection",
                        summary: "Selects a database; only database 0 exists."),
        RESPCommandInfo(name: "COMMAND", arity: -1, flags: ["stale"], keys: (0, 0, 0), group: "server",
                        summary: "Describes the commands: COMMAND, COUNT, INFO, DOCS, LIST."),
        RESPCommandInfo(name: "CONFIG", arity: -2, flags: ["stale"], keys: (0, 0, 0), group: "server",
                        summary: "CONFIG GET of a few Redis parameters, for client compatibility."),
        RESPCommandInfo(name: "QUIT", arity: -1, flags: ["noauth", "fast", "stale"], keys: (0, 0, 0), group: "connection",
                        summary: "Closes the connection."),
        RESPCommandInfo(name: "RESET", arity: 1, flags: ["noauth", "fast", "stale"], keys: (0, 0, 0), group: "connection",
                        summary: "Resets the connection: RESP2, no name, READWRITE, not authenticated."),
        RESPCommandInfo(name: "READONLY", arity: 1, flags: ["fast", "stale"], keys: (0, 0, 0), group: "connection",
                        summary: "Allows stale local reads on this connection."),
        RESPCommandInfo(name: "ACL", arity: -2, flags: ["admin", "stale"], keys: (0, 0, 0), group: "server",
                        summary: "Users and rights of this node: SETUSER, DELUSER, GETUSER, LIST, USERS, WHOAMI, CAT, LOAD, SAVE."),
        RESPCommandInfo(name: "READWRITE", arity: 1, flags: ["fast", "stale"], keys: (0, 0, 0), group: "connection",
                        summary: "Makes reads on this connection linearizable again (the default)."),
    ]

    /// The upper-case names.
    static let names: [String] = commands.map(\.name)

    /// The commands by upper-case name.
    static let byName: [String: RESPCommandInfo] = Dictionary(uniqueKeysWithValues: commands.map { ($0.name, $0) })
}
