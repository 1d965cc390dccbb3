public import AegisRESP

/// Typed commands for expiry, the keyspace and transactions.
extension AegisClient {
    private static func args(_ words: [String]) -> [[UInt8]] { words.map { Array($0.utf8) } }

    /// `SET key value PX ms`: writes the value with a time to live.
    public func set(_ key: String, _ value: [UInt8], expiresIn ttl: Duration) async throws(AegisClientError) {
        let milliseconds = ttl.components.seconds * 1000 + ttl.components.attoseconds / 1_000_000_000_000_000
        guard milliseconds > 0 else { throw .invalidConfiguration("the time to live must be at least 1 ms") }
        _ = try await reply([Array("SET".utf8), Array(key.utf8), value] + Self.args(["PX", String(milliseconds)]), .write)
    }

    /// `PEXPIRE key ms`: `true` if the key exists and now expires in `ttl`.
    @discardableResult
    public func expire(_ key: String, in ttl: Duration) async throws(AegisClientError) -> Bool {
        let milliseconds = ttl.components.seconds * 1000 + ttl.components.attoseconds / 1_000_000_000_000_000
        return try await integer(Self.args(["PEXPIRE", key, String(milliseconds)]), .write) == 1
    }

    /// `PERSIST key`: `true` if the key had a deadline.
    @discardableResult
    public func persist(_ key: String) async throws(AegisClientError) -> Bool {
        try await integer(Self.args(["PERSIST", key]), .write) == 1
    }

    /// `PTTL key`: the time left, `nil` when the key has no deadline or does not exist.
    public func timeToLive(_ key: String) async throws(AegisClientError) -> Duration? {
        let left = try await integer(Self.args(["PTTL", key]), .read)
        return left >= 0 ? .milliseconds(left) : nil
    }

    /// `SCAN cursor MATCH pattern COUNT count`: one page of keys and the next cursor
    /// (0 when the scan is complete). Every key present for the whole scan is returned.
    public func scan(cursor: UInt64 = 0, match pattern: String? = nil, count: Int? = nil)
        async throws(AegisClientError) -> (cursor: UInt64, keys: [[UInt8]]) {
        var words = ["SCAN", String(cursor)]
        if let pattern { words += ["MATCH", pattern] }
        if let count { words += ["COUNT", String(count)] }
        let page = try await list(Self.args(words))
        guard page.count == 2, let next = page[0].text.flatMap(UInt64.init), case .array(let keys) = page[1] else {
            throw .unexpectedReply("SCAN answered \(page)")
        }
        return (next, keys.compactMap(\.bytes))
    }

    /// Every key matching `pattern`, by `SCAN` pages (never one large `KEYS` reply).
    public func keys(matching pattern: String = "*") async throws(AegisClientError) -> [[UInt8]] {
        var cursor: UInt64 = 0
        var keys: [[UInt8]] = []
        repeat {
            let page = try await scan(cursor: cursor, match: pattern)
            keys += page.keys
            cursor = page.cursor
        } while cursor != 0
        return keys
    }

    /// `RENAME source destination`.
    public func rename(_ source: String, to destination: String) async throws(AegisClientError) {
        _ = try await reply(Self.args(["RENAME", source, destination]), .write)
    }

    /// `MULTI` … `EXEC` on one connection: the commands are applied as one log entry.
    /// Returns their replies (errors included, as Redis gives them inside `EXEC`).
    /// Not retried after an unknown outcome (the transaction is not sent through the
    /// client session); `WATCH` needs a connection of its own and is not offered here.
    public func transaction(_ commands: [[String]]) async throws(AegisClientError) -> [RESPValue] {
        let replies = try await pipeline([["MULTI"]] + commands + [["EXEC"]])
        guard let exec = replies.last else { throw .unexpectedReply("no reply to EXEC") }
        switch exec {
        case .array(let results): return results
        case .error(let text): throw .server(text)
        default: throw .unexpectedReply("EXEC answered \(exec)")
        }
    }
}
