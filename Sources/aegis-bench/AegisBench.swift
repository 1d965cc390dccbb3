import ArgumentParser

/// `aegis-bench`: benchmark programs. Each prints its setup and its figures; with
/// `--json`, one JSON object per scenario.
@main
struct AegisBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aegis-bench",
        abstract: "Aegis benchmarks: each prints its setup and its figures.",
        subcommands: [
            // One line per benchmark; each lives in its own file.
            CoreBench.self,
            WALBench.self,
            KVBench.self,
            ClusterBench.self,
            CRDTBench.self,
            BackupBench.self,
            StreamBench.self,
            AABench.self,
            AAMergeBench.self,
        ])
}

