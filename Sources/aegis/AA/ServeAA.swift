import AegisKV
import AegisServer
import AegisStream
import AegisTransport
import ArgumentParser
import Foundation
import Logging
import NIOSSL

/// The active-active options of `aegis serve` (flags, then AEGIS_<NAME>, then --config).
struct ServeAAOptions: ParsableArguments {
    @Flag(help: "Join an active-active group: keep CRDT metadata, serve this cluster's changes to its peers and merge theirs (a replicated setting, recorded once).")
    var activeActive = false
    @Option(help: ArgumentHelp("A peer cluster of the active-active group, as its cluster ID and admin addresses (repeat for each peer; every cluster lists every other: a mesh).", valueName: "id=host:port[,host:port…]"))
    var aaPeer: [String] = []
    @Option(help: "The most a peer's timestamps may be ahead of this cluster's clock (ms, default 60000): a batch further ahead is refused until the clocks agree.")
    var aaMaxClockSkew: UInt64?
    @Option(help: "/healthz warns when a link has been behind for longer than this many seconds (default 5).")
    var aaWarnLag: Double?
    @Option(help: "The most key states in one page a peer catching up is sent (default 5000, 1...50000): a peer that compacted past this cluster's cursor is caught up from its whole state, a page at a time.")
    var aaCatchUpPageStates: Int?
    @Option(help: ArgumentHelp("A topology file (YAML: kind mesh|star|tree, hub, clusters with admin addresses, a tree's links): this cluster links its neighbours there, and in a star or tree forwards changes between them. Recorded through the log when the cluster has no topology yet; replaces --aa-peer.", valueName: "file"))
    var aaTopology: String?
    @Option(help: ArgumentHelp("A conflict strategy for the keys starting with PREFIX (repeat; the longest prefix wins; keys under none: last writer wins). STRATEGY is lww, priority:CLUSTER,… (highest first), vector-clock or manual (custom:NAME needs a merge function registered by an embedding program). Recorded through the log when it differs from the cluster's table.", valueName: "PREFIX=STRATEGY[:ARGS]"))
    var aaStrategy: [String] = []

    func makeCoordinator(config: String?, settings: ServeSettings, logger: Logger) throws -> AACoordinator? {
        let value = try ServeSettings.lookup(config: config)
        let enabled = activeActive || value("active-active", nil).map { ["1", "true", "yes"].contains($0) } == true
        guard enabled else {
            guard aaPeer.isEmpty else { throw ValidationError("--aa-peer needs --active-active") }
            guard aaTopology == nil else { throw ValidationError("--aa-topology needs --active-active") }
            return nil
        }
        let topologyPath = aaTopology ?? value("aa-topology", nil)
        guard topologyPath == nil || aaPeer.isEmpty else { throw ValidationError("give --aa-topology or --aa-peer, not both") }
        let topology = try topologyPath.map { try AATopologyFile.load(path: $0, cluster: settings.clusterID) }
        for address in (topology?.clusters.values).map({ Array($0.joined()) }) ?? [] where settings.tls == nil {
            let host = PeerAddress(parsing: address)?.host ?? ""
            guard host == "localhost" || host == "::1" || host.hasPrefix("127.") else {
                throw ValidationError("'\(address)': without TLS (--tls-ca) active-active links run in plain HTTP, on loopback addresses only")
            }
        }
        var peers: [AACoordinator.Peer] = []
        var texts = aaPeer
        if texts.isEmpty, let listed = value("aa-peer", nil) { texts = listed.split(separator: ";").map(String.init) }
        for text in texts {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            let addresses = parts.count == 2 ? parts[1].split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } : []
            guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= StreamBatch.maxSourceSize,
                  parts[0] != settings.clusterID, !addresses.isEmpty,
                  addresses.allSatisfy({ PeerAddress(parsing: $0) != nil }) else {
                throw ValidationError("--aa-peer: '\(text)' is not ID=host:port[,host:port…] of another cluster")
            }
            guard !peers.contains(where: { $0.id == parts[0] }) else { throw ValidationError("--aa-peer: \(parts[0]) is given twice") }
            for address in addresses where settings.tls == nil {
                let host = PeerAddress(parsing: address)?.host ?? ""
                guard host == "localhost" || host == "::1" || host.hasPrefix("127.") else {
                    throw ValidationError("'\(address)': without TLS (--tls-ca) active-active links run in plain HTTP, on loopback addresses only")
                }
            }
            peers.append(AACoordinator.Peer(id: parts[0], addresses: addresses))
        }
        let pageStates = aaCatchUpPageStates ?? value("aa-catch-up-page-states", nil).flatMap { Int($0) } ?? 5_000
        guard (1 ... ActiveActiveBatch.maxStates).contains(pageStates) else {
            throw ValidationError("--aa-catch-up-page-states: 1 to \(ActiveActiveBatch.maxStates)")
        }
        var strategyTexts = aaStrategy
        if strategyTexts.isEmpty, let listed = value("aa-strategy", nil) { strategyTexts = listed.split(separator: ";").map(String.init) }
        let strategies = try AAStrategySeed.settings(parsing: strategyTexts)
        let tls = try settings.tls.map { try ToolTLSOptions.clientContext(trusting: $0.caPath) }
        return AACoordinator(clusterID: settings.clusterID, peers: peers,
                             maxClockSkewMillis: aaMaxClockSkew ?? ActiveActiveSettings.defaultMaxClockSkewMillis,
                             settings: StreamSettings(), client: DRClient(token: settings.adminToken, tls: tls), logger: logger,
                             catchUpPageStates: pageStates, strategies: strategies, topology: topology)
    }
}
