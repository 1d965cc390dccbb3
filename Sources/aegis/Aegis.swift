import ArgumentParser

/// `aegis`: the server and its tools.
@main
struct Aegis: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aegis",
        abstract: "Aegis: a replicated, strongly consistent key-value store that speaks the Redis protocol.",
        subcommands: [ServeCommand.self, DevCommand.self])
}
