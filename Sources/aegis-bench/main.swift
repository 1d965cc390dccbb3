import ArgumentParser

/// `aegis-bench`: benchmark programs. Each prints its setup and its figures; with
/// `--json`, one JSON object per scenario.
struct AegisBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aegis-bench",
        abstract: "Aegis benchmarks: each prints its setup and its figures.",
        subcommands: [
            // One line per benchmark; each lives in its own file.
            CoreBench.self,
            WALBench.self,
            KVBench.self,
            CRDTBench.self,
        ])
}

AegisBench.main()
