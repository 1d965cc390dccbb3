import ArgumentParser
import Foundation

/// `aegis aa`: the state of a cluster's active-active group.
struct AACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aa",
        abstract: "Active-active: clusters that all take writes and merge each other's (CRDT data types).",
        discussion: """
        Each cluster is started with `aegis serve … --active-active --aa-peer ID=ADMIN[,…]` once per other cluster \
        (a mesh). `aegis dev --regions 3` starts three such clusters on loopback.

          aegis aa status --admin HOST:PORT
          aegis aa conflicts|audit|strategies --admin HOST:PORT
          aegis aa resolve ID --value V|--pick N --admin HOST:PORT
          aegis aa topology [--set FILE] --admin HOST:PORT
          aegis aa add ID=ADMIN[,…] [--via CLUSTER] --admin HOST:PORT
          aegis aa remove ID --admin HOST:PORT

        `aegis serve … --active-active --aa-topology FILE` declares a mesh, a star or a tree \
        (see `aegis aa topology --help`); in a star or tree clusters forward each other's changes.
        """,
        subcommands: [Status.self, Conflicts.self, Resolve.self, Audit.self, Strategies.self, Topology.self, Add.self,
                      Remove.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a node's links: cursors, lag in entries and seconds, errors.")
        @OptionGroup var options: AdminOptions

        func run() async throws {
            let data = try await options.request("GET", "/v1/aa")
            if options.json {
                print(String(decoding: data, as: UTF8.self), terminator: "")
                return
            }
            let d = try JSONDecoder().decode(AADocument.self, from: data)
            print("cluster \(d.clusterID), node \(d.nodeID)\(d.isLeader ? " (leader)" : ""): active-active "
                + (d.enabled ? "enabled (max clock skew \(d.maxClockSkewMillis) ms)" : "not enabled yet"))
            if let m = d.metadata {
                print("metadata: \(m.keys) keys, \(m.emptyParts) empty parts waiting, stable stamp \(m.stableMillis) ms")
            }
            for l in d.links {
                var line = "link from \(l.source) (\(l.addresses)): merged through \(l.cursor) of \(l.sourceCommit)"
                if let lag = l.lagEntries, let seconds = l.lagSeconds { line += ", \(lag) entries / \(seconds) s behind" }
                if let ago = l.lastContactMillisAgo { line += ", last contact \(ago) ms ago" }
                if let frames = l.frames, let states = l.states, let errors = l.errors {
                    line += "; \(frames) frames, \(states) key states, \(errors) errors"
                }
                if let error = l.lastError { line += "; last error: \(error)" }
                print(line)
            }
        }
    }
}
