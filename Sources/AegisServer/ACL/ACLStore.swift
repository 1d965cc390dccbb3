import Foundation
import NIOConcurrencyHelpers

/// The ACL users of one node, shared by every connection of its RESP server.
///
/// Users live in this node's memory and, with `filePath`, in a file in Redis's
/// `users.acl` format (one `user <name> <rules…>` line per user) that `ACL LOAD`
/// re-reads and `ACL SAVE` writes. They are **not** replicated: give every node the
/// same file (`aegis serve --acl-file`). `ACL SETUSER` changes only the node it is
/// sent to until `ACL SAVE` and the file is copied to the others.
///
/// The `default` user always exists. Without a file it is `on nopass ~* +@all` (every
/// client is served), or with a password (`--password`) `on #<sha256> ~* +@all`.
public final class ACLStore: Sendable {
    private struct State {
        var users: [String: ACLUser]
        /// Bumped on every change, so connections notice they must re-read their user.
        var generation: UInt64 = 0
    }

    private let state: NIOLockedValueBox<State>
    /// The `users.acl` file, or `nil` when ACL LOAD and ACL SAVE are refused.
    public let filePath: String?

    /// A store with the `default` user only: `nopass` without `password`.
    public init(defaultPassword password: String? = nil) {
        self.state = NIOLockedValueBox(State(users: ["default": Self.defaultUser(password: password)]))
        self.filePath = nil
    }

    /// A store loaded from a `users.acl` file. A missing `default` user in the file is
    /// created as without a file (with `defaultPassword` when given).
    public init(file path: String, defaultPassword: String? = nil) throws(ACLError) {
        let users = try Self.read(file: path, defaultPassword: defaultPassword)
        self.state = NIOLockedValueBox(State(users: users))
        self.filePath = path
    }

    static func defaultUser(password: String?) -> ACLUser {
        var user = ACLUser(name: "default")
        user.enabled = true
        // These rules are valid; apply cannot fail on them.
        try? user.apply("allkeys")
        try? user.apply("+@all")
        if let password { try? user.apply(">" + password) } else { try? user.apply("nopass") }
        return user
    }

    /// Changes on every `ACL SETUSER`, `DELUSER` and `LOAD`.
    public var generation: UInt64 { state.withLockedValue { $0.generation } }

    /// The user called `name`, for a connection already authenticated as it.
    public func user(named name: String) -> ACLUser? {
        state.withLockedValue { $0.users[name] }
    }

    /// Every user, by name.
    public var users: [ACLUser] {
        state.withLockedValue { $0.users.values.sorted { $0.name < $1.name } }
    }

    /// The enabled user called `name` whose password is `password`, or `nil`.
    ///
    /// Constant time in the inputs: the name and the password are hashed (SHA-256) and
    /// the digests compared with every user's name and password digests without
    /// stopping early, so neither the lengths nor the first differing byte of a name
    /// or a password show in the time it takes.
    public func authenticate(username: String, password: String) -> ACLUser? {
        let nameDigest = sha256(username)
        let passwordDigest = sha256(password)
        let users = state.withLockedValue { Array($0.users.values) }
        var found: ACLUser?
        for user in users {
            let nameMatches = constantTimeEqual(user.nameDigest, nameDigest)
            var passwordMatches = user.noPassword
            for hash in user.passwordHashes {
                passwordMatches = constantTimeEqual(hash, passwordDigest) || passwordMatches
            }
            if nameMatches && passwordMatches && user.enabled { found = user }
        }
        return found
    }

    /// `ACL SETUSER name rules…`: creates the user (off, no rights) if needed and applies
    /// the rules in order; nothing changes when one is invalid.
    public func setUser(_ name: String, rules: [String]) throws(ACLError) {
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw ACLError(message: "Usernames can't contain spaces or null characters")
        }
        var user = state.withLockedValue { $0.users[name] } ?? ACLUser(name: name)
        for rule in rules { try user.apply(rule) }
        state.withLockedValue {
            $0.users[name] = user
            $0.generation &+= 1
        }
    }

    /// `ACL DELUSER name…`: returns how many existed. The default user stays.
    public func deleteUsers(_ names: [String]) throws(ACLError) -> Int {
        guard !names.contains("default") else { throw ACLError(message: "The 'default' user cannot be removed") }
        return state.withLockedValue { state in
            let removed = names.reduce(0) { $0 + (state.users.removeValue(forKey: $1) == nil ? 0 : 1) }
            state.generation &+= 1
            return removed
        }
    }

    /// `ACL LOAD`: replaces every user with the file's; nothing changes when it is invalid.
    public func load() throws(ACLError) {
        guard let filePath else { throw Self.noFile }
        let users = try Self.read(file: filePath, defaultPassword: nil)
        state.withLockedValue {
            $0.users = users
            $0.generation &+= 1
        }
    }

    /// `ACL SAVE`: writes every user to the file (a temporary file renamed over it).
    public func save() throws(ACLError) {
        guard let filePath else { throw Self.noFile }
        let text = users.map { $0.listLine + "\n" }.joined()
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: filePath), options: [.atomic])
        } catch {
            throw ACLError(message: "There was an error trying to save the ACLs. Please check the server logs for more information")
        }
    }

    static let noFile = ACLError(message: "This Aegis node is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.")

    /// Parses a `users.acl` file: `user <name> <rules…>` lines; blank lines and lines
    /// starting with `#` are skipped.
    static func read(file path: String, defaultPassword: String?) throws(ACLError) -> [String: ACLUser] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ACLError(message: "cannot read the ACL file \(path)")
        }
        var users: [String: ACLUser] = [:]
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let words = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard let first = words.first, !first.hasPrefix("#") else { continue }
            guard first == "user", words.count >= 2 else {
                throw ACLError(message: "\(path):\(number + 1): should start with user keyword")
            }
            guard users[words[1]] == nil else {
                throw ACLError(message: "\(path):\(number + 1): duplicate user '\(words[1])' found")
            }
            do {
                users[words[1]] = try ACLUser(name: words[1], rules: Array(words.dropFirst(2)))
            } catch {
                throw ACLError(message: "\(path):\(number + 1): \(error.message)")
            }
        }
        if users["default"] == nil { users["default"] = defaultUser(password: defaultPassword) }
        return users
    }
}
