import AegisServer
import ArgumentParser
import Foundation

/// Where the key-value tools connect.
struct RESPConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The node's RESP address (host:port). Any node works: followers forward writes to the leader.",
                                            valueName: "host:port"))
    var server: String = DevDefaults.respAddress

    @Option(name: .long, help: ArgumentHelp("The node's password, if it has one (default: $AEGIS_PASSWORD).", valueName: "password"))
    var password: String?

    @Option(name: .long, help: ArgumentHelp("The ACL user to authenticate as with --password (default: $AEGIS_USER, else default).", valueName: "name"))
    var user: String?

    @OptionGroup var tls: ToolTLSOptions

    var resolvedPassword: String? { password ?? ProcessInfo.processInfo.environment["AEGIS_PASSWORD"] }
    var resolvedUser: String? { user ?? ProcessInfo.processInfo.environment["AEGIS_USER"] }

    /// Connects (over TLS unless --no-tls or no CA is known), authenticates and runs `body`.
    func with<Result: Sendable>(_ body: (inout RESPConnection) async throws -> Result) async throws -> Result {
        try await RESPConnection.with(server, password: resolvedPassword, user: resolvedUser, tls: try tls.clientContext(), body)
    }
}

struct KVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv",
        abstract: "Read and write keys on an Aegis cluster over RESP.",
        discussion: """
        The kv tools speak the Redis protocol to one node (--server, default \(DevDefaults.respAddress), the first node of \
        `aegis dev`). Writes go through Raft and return once applied; reads are linearizable unless --stale.

        Examples:
          aegis kv set greeting hello
          aegis kv get greeting
          aegis kv cas greeting hello bonjour
          aegis kv incr visits --by 10
          aegis kv del greeting visits --server 127.0.0.1:7002
          aegis kv watch config: --from 1
        """,
        subcommands: [Get.self, SetKey.self, Delete.self, CompareAndSwap.self, Increment.self, Watch.self])

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a key's value.",
            discussion: """
            Prints the value and a newline; exits with status 1 when the key does not exist. Reads are linearizable \
            (the node confirms with the leader); --stale reads the node's local state, which may be behind.

            Examples:
              aegis kv get greeting
              aegis kv get greeting --stale --server 127.0.0.1:7003
            """)

        @Argument(help: "The key.") var key: String
        @Flag(help: "Read the node's local state (READONLY), possibly stale, without asking the leader.") var stale = false
        @OptionGroup var connection: RESPConnectionOptions

        func run() async throws {
            let reply = try await connection.with { connection in
                if stale { _ = try await connection.call(["READONLY"]) }
                return try await connection.call(["GET", key])
            }
            try finish(reply, missing: "key '\(key)' does not exist")
        }
    }

    struct SetKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Set a key's value.",
            discussion: """
            Prints OK once the write is applied. --if-absent writes only when the key does not exist (SET NX), \
            --if-present only when it does (SET XX); otherwise exits with status 1.

            Examples:
              aegis kv set greeting hello
              aegis kv set lock owner-1 --if-absent
            """)

        @Argument(help: "The key.") var key: String
        @Argument(help: "The value.") var value: String
        @Flag(help: "Only create the key (SET NX).") var ifAbsent = false
        @Flag(help: "Only overwrite an existing key (SET XX).") var ifPresent = false
        @OptionGroup var connection: RESPConnectionOptions

        func validate() throws {
            if ifAbsent && ifPresent { throw ValidationError("--if-absent and --if-present exclude each other") }
        }

        func run() async throws {
            var command = ["SET", key, value]
            if ifAbsent { command.append("NX") }
            if ifPresent { command.append("XX") }
            let reply = try await connection.with { try await $0.call(command) }
            try finish(reply, missing: ifAbsent ? "key '\(key)' already exists; nothing written" : "key '\(key)' does not exist; nothing written")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "del",
            abstract: "Delete keys.",
            discussion: """
            Prints how many of the keys existed.

            Examples:
              aegis kv del greeting
              aegis kv del a b c
            """)

        @Argument(help: "The keys.") var keys: [String]
        @OptionGroup var connection: RESPConnectionOptions

        func validate() throws {
            if keys.isEmpty { throw ValidationError("name at least one key") }
        }

        func run() async throws {
            let reply = try await connection.with { try await $0.call(["DEL"] + keys) }
            try finish(reply, missing: "")
        }
    }

    struct CompareAndSwap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cas",
            abstract: "Replace a key's value only if it still holds an expected value.",
            discussion: """
            Atomic compare-and-swap (SET key new IFEQ expected). Prints OK when swapped; when the key holds another \
            value or does not exist, prints the current value to standard error and exits with status 1.

            Examples:
              aegis kv cas config v1 v2
            """)

        @Argument(help: "The key.") var key: String
        @Argument(help: "The value the key must hold now.") var expected: String
        @Argument(help: "The value to write.") var new: String
        @OptionGroup var connection: RESPConnectionOptions

        func run() async throws {
            let (reply, current) = try await connection.with { connection in
                let reply = try await connection.call(["SET", key, new, "IFEQ", expected])
                return (reply, reply == .null ? try await connection.call(["GET", key]) : .null)
            }
            if reply == .null {
                let now = current == .null ? "the key does not exist" : "the key holds '\(current.text ?? "")'"
                throw ToolError("not swapped: \(now), not '\(expected)'")
            }
            try finish(reply, missing: "")
        }
    }

    struct Increment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "incr",
            abstract: "Add to a key holding a decimal integer.",
            discussion: """
            Prints the new value. A missing key counts as 0; a value that is not a 64-bit integer is an error.

            Examples:
              aegis kv incr visits
              aegis kv incr stock --by -3
            """)

        @Argument(help: "The key.") var key: String
        @Option(help: "The amount to add (may be negative).") var by: Int64 = 1
        @OptionGroup var connection: RESPConnectionOptions

        func run() async throws {
            let reply = try await connection.with {
                try await $0.call(["INCRBY", key, String(by)])
            }
            try finish(reply, missing: "")
        }
    }
}

/// Prints a reply; errors and nulls end the command with status 1.
private func finish(_ reply: RESPValue, missing: String) throws {
    switch reply {
    case .error(let text): throw ToolError(text)
    case .null: throw ToolError(missing)
    case .integer(let number): print(number)
    default: print(render(reply))
    }
}
