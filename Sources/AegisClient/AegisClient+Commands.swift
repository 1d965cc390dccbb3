import AegisRESP

/// Typed commands. Each throws `AegisClientError.server` with the server's text when
/// the server answers with an error (for example `WRONGTYPE …`).
extension AegisClient {
    /// A condition for `set(_:_:condition:)`.
    public enum SetCondition: Sendable {
        /// Always write.
        case always
        /// Write only if the key does not exist (`NX`).
        case ifNotExists
        /// Write only if the key exists (`XX`).
        case ifExists
    }

    func reply(_ arguments: [[UInt8]], _ kind: CommandKind) async throws(AegisClientError) -> RESPValue {
        let reply = try await send(arguments, kind: kind)
        if case .error(let text) = reply { throw .server(text) }
        return reply
    }

    func integer(_ arguments: [[UInt8]], _ kind: CommandKind) async throws(AegisClientError) -> Int64 {
        let value = try await reply(arguments, kind)
        guard case .integer(let number) = value else { throw .unexpectedReply("expected an integer, got \(value)") }
        return number
    }

    func optionalBytes(_ arguments: [[UInt8]], _ kind: CommandKind) async throws(AegisClientError) -> [UInt8]? {
        let value = try await reply(arguments, kind)
        if value == .null { return nil }
        guard let bytes = value.bytes else { throw .unexpectedReply("expected a string or nil, got \(value)") }
        return bytes
    }

    func list(_ arguments: [[UInt8]]) async throws(AegisClientError) -> [RESPValue] {
        let value = try await reply(arguments, .read)
        switch value {
        case .array(let elements), .set(let elements): return elements
        case .map(let entries): return entries.flatMap { [$0.key, $0.value] }
        default: throw .unexpectedReply("expected an array, got \(value)")
        }
    }

    private static func args(_ name: String, _ rest: [[UInt8]]) -> [[UInt8]] { [Array(name.utf8)] + rest }
    private static func text(_ value: some StringProtocol) -> [UInt8] { Array(value.utf8) }

    // MARK: Strings

    /// `GET`: the value, or `nil` if the key does not exist (linearizable).
    public func get(_ key: String) async throws(AegisClientError) -> [UInt8]? {
        try await optionalBytes(Self.args("GET", [Self.text(key)]), .read)
    }

    /// `GET` as UTF-8 text.
    public func getString(_ key: String) async throws(AegisClientError) -> String? {
        try await get(key).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `SET`: `true` if written (`false` when the condition did not hold).
    @discardableResult
    public func set(_ key: String, _ value: [UInt8], condition: SetCondition = .always) async throws(AegisClientError) -> Bool {
        var arguments = Self.args("SET", [Self.text(key), value])
        switch condition {
        case .always: break
        case .ifNotExists: arguments.append(Self.text("NX"))
        case .ifExists: arguments.append(Self.text("XX"))
        }
        return try await reply(arguments, .write) != .null
    }

    /// `SET` of UTF-8 text.
    @discardableResult
    public func set(_ key: String, _ value: String, condition: SetCondition = .always) async throws(AegisClientError) -> Bool {
        try await set(key, Self.text(value), condition: condition)
    }

    /// `GETSET`: sets the value, returns the previous one.
    public func getSet(_ key: String, _ value: [UInt8]) async throws(AegisClientError) -> [UInt8]? {
        try await optionalBytes(Self.args("GETSET", [Self.text(key), value]), .write)
    }

    /// `MGET`: the values in the order of `keys`, `nil` for missing keys.
    public func mget(_ keys: [String]) async throws(AegisClientError) -> [[UInt8]?] {
        try await list(Self.args("MGET", keys.map(Self.text))).map { $0 == .null ? nil : $0.bytes }
    }

    /// `MSET`: writes every pair atomically (one log entry).
    public func mset(_ pairs: [(key: String, value: [UInt8])]) async throws(AegisClientError) {
        _ = try await reply(Self.args("MSET", pairs.flatMap { [Self.text($0.key), $0.value] }), .write)
    }

    /// `DEL`: removes keys atomically; returns how many existed.
    @discardableResult
    public func del(_ keys: String...) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("DEL", keys.map(Self.text)), .write)
    }

    /// `EXISTS`: how many of the keys exist.
    public func exists(_ keys: String...) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("EXISTS", keys.map(Self.text)), .read)
    }

    /// `INCRBY` (`INCR` for 1): the new value. Exactly once even when retried.
    @discardableResult
    public func incr(_ key: String, by amount: Int64 = 1) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("INCRBY", [Self.text(key), Self.text(String(amount))]), .write)
    }

    /// `DECRBY` (`DECR` for 1): the new value.
    @discardableResult
    public func decr(_ key: String, by amount: Int64 = 1) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("DECRBY", [Self.text(key), Self.text(String(amount))]), .write)
    }

    /// `APPEND`: the new length.
    @discardableResult
    public func append(_ key: String, _ suffix: [UInt8]) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("APPEND", [Self.text(key), suffix]), .write)
    }

    /// `STRLEN`.
    public func strlen(_ key: String) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("STRLEN", [Self.text(key)]), .read)
    }

    /// `TYPE`: `string`, `set`, `hash` or `none`.
    public func type(_ key: String) async throws(AegisClientError) -> String {
        let value = try await reply(Self.args("TYPE", [Self.text(key)]), .read)
        guard let text = value.text else { throw .unexpectedReply("expected a type name, got \(value)") }
        return text
    }

    /// `DBSIZE`: the number of keys (linearizable).
    public func dbsize() async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("DBSIZE", []), .read)
    }

    /// `PING` of one node.
    public func ping() async throws(AegisClientError) -> Bool {
        try await reply(Self.args("PING", []), .read) == .simpleString("PONG")
    }

    // MARK: Sets

    /// `SADD`: how many members were new.
    @discardableResult
    public func sadd(_ key: String, _ members: [[UInt8]]) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("SADD", [Self.text(key)] + members), .write)
    }

    /// `SREM`: how many members were present.
    @discardableResult
    public func srem(_ key: String, _ members: [[UInt8]]) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("SREM", [Self.text(key)] + members), .write)
    }

    /// `SMEMBERS`, in ascending byte order.
    public func smembers(_ key: String) async throws(AegisClientError) -> [[UInt8]] {
        try await list(Self.args("SMEMBERS", [Self.text(key)])).compactMap(\.bytes)
    }

    /// `SISMEMBER`.
    public func sismember(_ key: String, _ member: [UInt8]) async throws(AegisClientError) -> Bool {
        try await integer(Self.args("SISMEMBER", [Self.text(key), member]), .read) == 1
    }

    /// `SCARD`.
    public func scard(_ key: String) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("SCARD", [Self.text(key)]), .read)
    }

    // MARK: Hashes

    /// `HSET`: how many fields were new.
    @discardableResult
    public func hset(_ key: String, _ fields: [(field: [UInt8], value: [UInt8])]) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("HSET", [Self.text(key)] + fields.flatMap { [$0.field, $0.value] }), .write)
    }

    /// `HGET`.
    public func hget(_ key: String, _ field: [UInt8]) async throws(AegisClientError) -> [UInt8]? {
        try await optionalBytes(Self.args("HGET", [Self.text(key), field]), .read)
    }

    /// `HDEL`: how many fields were present.
    @discardableResult
    public func hdel(_ key: String, _ fields: [[UInt8]]) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("HDEL", [Self.text(key)] + fields), .write)
    }

    /// `HGETALL`: field and value pairs in ascending field order.
    public func hgetall(_ key: String) async throws(AegisClientError) -> [(field: [UInt8], value: [UInt8])] {
        let flat = try await list(Self.args("HGETALL", [Self.text(key)])).compactMap(\.bytes)
        return stride(from: 0, to: flat.count - flat.count % 2, by: 2).map { (flat[$0], flat[$0 + 1]) }
    }

    /// `HINCRBY`: the field's new value. Exactly once even when retried.
    @discardableResult
    public func hincrby(_ key: String, _ field: [UInt8], by amount: Int64) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("HINCRBY", [Self.text(key), field, Self.text(String(amount))]), .write)
    }

    /// `HLEN`.
    public func hlen(_ key: String) async throws(AegisClientError) -> Int64 {
        try await integer(Self.args("HLEN", [Self.text(key)]), .read)
    }

    /// `HEXISTS`.
    public func hexists(_ key: String, _ field: [UInt8]) async throws(AegisClientError) -> Bool {
        try await integer(Self.args("HEXISTS", [Self.text(key), field]), .read) == 1
    }
}
