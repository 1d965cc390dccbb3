import NIOCore

/// `ACL …` and the permission check of every command.
extension RESPSession {
    /// `nil` when the connection's user may run the command on its keys; a `-NOPERM`
    /// reply otherwise (Redis's wording).
    func permissionDenial(_ name: String, _ info: RESPCommandInfo, _ arguments: ArraySlice<ByteBuffer>) -> RESPValue? {
        // Before AUTH only the commands allowed before it get here.
        guard let user else { return nil }
        if name == "ACL", let sub = arguments.first, commandName(sub) == "WHOAMI" { return nil }
        guard user.mayRun(name) else {
            return .error("NOPERM User \(user.name) has no permissions to run the '\(name.lowercased())' command")
        }
        guard info.keys.first > 0, user.keyPatterns != ["*"] else { return nil }
        // `arguments` keeps the request's indices: position 1 is the first argument.
        let last = info.keys.last < 0 ? arguments.endIndex + info.keys.last : info.keys.last
        var position = info.keys.first
        while position <= last && position < arguments.endIndex {
            guard user.mayAccess(key: bytes(arguments[position])) else {
                return .error("NOPERM No permissions to access a key")
            }
            position += max(1, info.keys.step)
        }
        return nil
    }

    /// `ACL SETUSER | DELUSER | GETUSER | LIST | USERS | WHOAMI | CAT | LOAD | SAVE`.
    mutating func acl(_ words: [String]) -> RESPValue {
        let store = server.acl
        let sub = words[0].uppercased()
        let rest = Array(words.dropFirst())
        do {
            switch (sub, rest.count) {
            case ("WHOAMI", 0):
                return user.map { .bulk($0.name) } ?? RESPError.noAuth
            case ("USERS", 0):
                return .array(store.users.map { .bulk($0.name) })
            case ("LIST", 0):
                return .array(store.users.map { .bulk($0.listLine) })
            case ("SETUSER", 1...):
                try store.setUser(rest[0], rules: Array(rest.dropFirst()))
                return .ok
            case ("DELUSER", 1...):
                return .integer(Int64(try store.deleteUsers(rest)))
            case ("GETUSER", 1):
                guard let found = store.user(named: rest[0]) else { return .null }
                return getUserReply(found)
            case ("CAT", 0):
                return .array(ACLCategory.allCases.map { .bulk($0.rawValue) })
            case ("CAT", 1):
                guard let category = ACLCategory(rawValue: rest[0].lowercased()) else {
                    return .error("ERR Unknown category '\(rest[0].prefix(64))'")
                }
                return .array(category.commands.sorted().map { .bulk($0.lowercased()) })
            case ("LOAD", 0):
                try store.load()
                return .ok
            case ("SAVE", 0):
                try store.save()
                return .ok
            case ("WHOAMI", _), ("USERS", _), ("LIST", _), ("SETUSER", _), ("DELUSER", _), ("GETUSER", _),
                 ("CAT", _), ("LOAD", _), ("SAVE", _):
                return .error("ERR wrong number of arguments for 'acl|\(sub.lowercased())' command")
            default:
                return RESPError.unknownSubcommand(words[0], of: "ACL")
            }
        } catch {
            return .error("ERR \(error.message)")
        }
    }

    /// `ACL GETUSER`'s map: flags, passwords (digests), commands, keys, channels, selectors.
    private func getUserReply(_ found: ACLUser) -> RESPValue {
        var flags: [RESPValue] = [.bulk(found.enabled ? "on" : "off")]
        if found.noPassword { flags.append(.bulk("nopass")) }
        let commands = found.rules.filter { $0.hasPrefix("+") || $0.hasPrefix("-") }.joined(separator: " ")
        return .map([
            RESPMapEntry(.bulk("flags"), .array(flags)),
            RESPMapEntry(.bulk("passwords"), .array(found.passwordHashes.map { .bulk(hex($0)) })),
            RESPMapEntry(.bulk("commands"), .bulk(commands)),
            RESPMapEntry(.bulk("keys"), .bulk(found.keyPatterns.map { "~" + $0 }.joined(separator: " "))),
            RESPMapEntry(.bulk("channels"), .bulk("")),
            RESPMapEntry(.bulk("selectors"), .array([])),
        ])
    }
}
