import ArgumentParser

/// The `aegis` program: the server and the tools around it.
struct Aegis: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aegis",
        abstract: "Aegis: a replicated, strongly consistent key-value store that speaks the Redis protocol.",
        discussion: """
        Clients use RESP (redis-cli, redis-py, any Redis client); operators use the HTTP admin API \
        (/livez, /readyz, /healthz, /metrics, /v1/cluster). The tools below default to the first node of \
        `aegis dev` (RESP 127.0.0.1:7001, admin 127.0.0.1:8001).
        """,
        subcommands: [
            ServeCommand.self, DevCommand.self,
            KVCommand.self, ClusterCommand.self, BenchCommand.self, CertsCommand.self,
            BackupCommand.self, RecoverCommand.self, DRCommand.self, AACommand.self,
        ])
}

/// Parses the arguments and runs the chosen (async) subcommand. Top-level code in
/// main.swift cannot use `@main`, and there `Aegis.main()` resolves to the synchronous
/// entry point, which does not run async subcommands; inside an async function the
/// async `run()` is chosen.
func runAegis() async {
    do {
        var command = try Aegis.parseAsRoot()
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    } catch {
        Aegis.exit(withError: error)
    }
}

await runAegis()
