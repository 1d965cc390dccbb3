import AegisBackup
import AegisRaft
import AegisServer
import AegisStream
import AegisTransport
import ArgumentParser
import Foundation
import Logging
import NIOSSL

/// The disaster-recovery options of `aegis serve` (flags, then AEGIS_<NAME>, then --config).
struct ServeDROptions: ParsableArguments {
    @Option(help: ArgumentHelp("Make this cluster a standby of the primary at these admin addresses (host:port,…), the first time it starts (a cluster already configured for DR keeps its recorded role).", valueName: "host:port[,…]"))
    var standbyOf: String?
    @Option(help: ArgumentHelp("The other cluster's admin addresses: a primary that lost its write lease asks them whether it was replaced, and fences itself if so.", valueName: "host:port[,…]"))
    var drPeer: String?
    @Option(help: "Write lease of the primary (e.g. 2s; set on the standby, which asks the primary for it; default 0: none). With a lease, a primary that hears nothing from its standby for this long stops taking writes on its own, and a failover without --force waits it out.")
    var drLease: String?
    @Option(help: "Compression of stream frames: none, gzip, lz4, zstd (default lz4).") var drCompression: String?
    @Option(help: "Most log entries in one stream batch (default 10000).") var drBatchEntries: Int?
    @Option(help: "Most log bytes in one stream batch (default 4194304).") var drBatchBytes: Int?
    @Option(help: "A file holding the other cluster's admin token (default: this node's admin token).") var drAdminTokenFile: String?
    @Option(help: "The CA certificate of the other cluster's admin port (default: --tls-ca; without either, plain HTTP, loopback addresses only).")
    var drTlsCa: String?

    func makeCoordinator(config: String?, settings: ServeSettings, logger: Logger) throws -> DRCoordinator {
        let value = try ServeSettings.lookup(config: config)
        func addresses(_ name: String, _ flag: String?) throws -> [String] {
            guard let text = value(name, flag) else { return [] }
            let list = text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            guard !list.isEmpty, list.allSatisfy({ PeerAddress(parsing: $0) != nil }) else {
                throw ValidationError("--\(name): '\(text)' is not host:port[,host:port…]")
            }
            return list
        }
        var stream = StreamSettings()
        if let text = value("dr-lease", drLease) {
            guard let lease = BackupServiceConfiguration.parseDuration(text) else {
                throw ValidationError("--dr-lease: '\(text)' is not a duration like 2s or 500ms")
            }
            stream.leaseMillis = WriteLease.nanoseconds(lease) / 1_000_000
        }
        let codecName = value("dr-compression", drCompression) ?? "lz4"
        guard let codec = BackupCompression(rawValue: codecName) else {
            throw ValidationError("--dr-compression: '\(codecName)' is not none, gzip, lz4 or zstd")
        }
        try codec.checkAvailable()
        stream.compression = codec
        if let n = value("dr-batch-entries", drBatchEntries.map(String.init)) {
            guard let entries = Int(n), (1 ... stream.limits.maxBatchEntries).contains(entries) else {
                throw ValidationError("--dr-batch-entries must be 1 to \(stream.limits.maxBatchEntries)")
            }
            stream.maxBatchEntries = entries
        }
        if let n = value("dr-batch-bytes", drBatchBytes.map(String.init)) {
            guard let bytes = Int(n), (4096 ... stream.limits.maxBatchBytes / 2).contains(bytes) else {
                throw ValidationError("--dr-batch-bytes must be 4096 to \(stream.limits.maxBatchBytes / 2)")
            }
            stream.maxBatchBytes = bytes
        }
        let standbyOf = try addresses("standby-of", self.standbyOf)
        let peers = try addresses("dr-peer", drPeer)
        var token = settings.adminToken
        if let path = value("dr-admin-token-file", drAdminTokenFile) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                  let line = text.split(whereSeparator: \.isNewline).first else {
                throw ValidationError("--dr-admin-token-file: cannot read a token from '\(path)'")
            }
            token = String(line).trimmingCharacters(in: .whitespaces)
        }
        var tls: NIOSSLContext?
        if let ca = value("dr-tls-ca", drTlsCa) ?? settings.tls?.caPath {
            tls = try ToolTLSOptions.clientContext(trusting: ca)
        } else {
            for address in standbyOf + peers {
                let host = PeerAddress(parsing: address)?.host ?? ""
                guard host == "localhost" || host == "::1" || host.hasPrefix("127.") else {
                    throw ValidationError("'\(address)': without TLS (--dr-tls-ca or --tls-ca) the change stream runs in plain HTTP, on loopback addresses only")
                }
            }
        }
        let clients = settings.members.values.compactMap(\.client).sorted().joined(separator: ",")
        // Three election timeouts: a deposed standby leader stops asking within one
        // (check-quorum), and clock rates drift a little.
        let margin = Duration.milliseconds(Int64(settings.tickMs) * Int64(settings.electionTicks) * 3)
        return DRCoordinator(settings: stream, clusterID: settings.clusterID, clientAddresses: clients,
                             adminAddresses: settings.adminListen.description,
                             standbyOf: standbyOf.isEmpty ? nil : standbyOf.joined(separator: ","), peers: peers,
                             client: DRClient(token: token, tls: tls), promotionMargin: margin, logger: logger)
    }
}
