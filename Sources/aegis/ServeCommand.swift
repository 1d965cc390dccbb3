import AegisCRDT
import AegisRaft
import AegisReplication
import AegisServer
import AegisStorage
import AegisTLS
import AegisTransport
import ArgumentParser
import Foundation
import Logging
import Metrics
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle

/// `aegis serve`: runs one node.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run one node of an Aegis cluster.",
        discussion: """
            Settings come from flags, then environment variables (AEGIS_<NAME>, e.g. \
            AEGIS_DATA_DIR), then an optional file (--config) of `name = value` lines \
            using the flag names (e.g. `data-dir = /var/lib/aegis`), then defaults.

            The data directory records the cluster ID, the cluster UUID and the node ID \
            (file `identity`); a node refuses to start on a directory of another node or \
            cluster. A node whose data directory is empty bootstraps a new cluster from \
            --peers (every founding member, this one included) only with \
            --initial-cluster-state new; otherwise it refuses to start (a member that \
            lost its data must not vote with an empty log). With --join it starts empty \
            and waits to be added by the leader: `aegis cluster add <id> --peer \
            host:port --client host:port` (as a learner), then `aegis cluster promote <id>`; \
            until the change that adds it arrives it neither votes nor campaigns.

            Without a password, clients are accepted on loopback only (protected mode).

            TLS: --tls-ca, --tls-cert and --tls-key (PEM; `aegis certs` makes them; the \
            certificate must name the node ID) turn on mutual TLS between peers, TLS on \
            the RESP port (redis-cli --tls --cacert ca.pem) and HTTPS on the admin port. \
            SIGHUP re-reads the three files; new connections use them, a bad file is \
            logged and the old certificates stay. --client-listen-plain adds a plaintext \
            RESP listener on a loopback address.

            Every admin endpoint but /livez, /readyz, /healthz and /metrics needs \
            `Authorization: Bearer <token>` (--admin-token-file); without a token they \
            answer 403.

            Examples:
              aegis serve --id node1 --data-dir /var/lib/aegis --peer-listen 10.0.0.1:9001 \\
                --client-listen 10.0.0.1:7001 --admin-listen 10.0.0.1:8001 \\
                --peers node1=10.0.0.1:9001/10.0.0.1:7001,node2=10.0.0.2:9001/10.0.0.2:7001,node3=...
              aegis serve --config /etc/aegis/node1.conf
            """)

    @Option(help: "A file of `name = value` lines (flag names without dashes).") var config: String?
    @Option(help: "This node's ID.") var id: String?
    @Option(help: "The data directory (WAL and snapshots).") var dataDir: String?
    @Option(help: "The cluster ID: peers of another cluster are refused.") var clusterId: String?
    @Option(help: "host:port for Raft traffic from peers.") var peerListen: String?
    @Option(help: "host:port for RESP clients.") var clientListen: String?
    @Option(help: "host:port for the HTTP admin API.") var adminListen: String?
    @Option(help: "With TLS, a plaintext RESP listener as host:port; loopback addresses only.") var clientListenPlain: String?
    @Option(help: "PEM file of the cluster CA certificate (with --tls-cert and --tls-key: TLS on every port).") var tlsCa: String?
    @Option(help: "PEM file of this node's certificate (its SAN names the node ID).") var tlsCert: String?
    @Option(help: "PEM file of this node's private key.") var tlsKey: String?
    @Option(help: "Members: id=peerHost:port/clientHost:port, comma-separated (this node included).") var peers: String?
    @Flag(help: "Start empty and wait to be added to an existing cluster.") var join = false
    @Option(help: "new: found a new cluster from --peers if the data directory is empty; existing (default): never bootstrap, refuse an empty data directory unless --join.")
    var initialClusterState: String?
    @Option(help: "The UUID of a new cluster (with --initial-cluster-state new; default: derived from --cluster-id and --peers).")
    var clusterUuid: String?
    @Option(help: "Password of the default user, which clients send with AUTH <password>.") var password: String?
    @Option(help: "Redis ACL users (users.acl format: `user <name> on >password ~pattern +@read`); ACL LOAD and ACL SAVE use it. Per node: give every node the same file.")
    var aclFile: String?
    @Option(help: "Bearer token every admin endpoint but /livez, /readyz, /healthz and /metrics requires (visible in ps: prefer --admin-token-file or AEGIS_ADMIN_TOKEN).")
    var adminToken: String?
    @Option(help: "A file holding the admin token (its first line).") var adminTokenFile: String?
    @Option(help: "Most client connections at once (default 10000); more are refused.") var maxClients: Int?
    @Option(help: "Largest value a client may write, in bytes (default 1048576); refused when the request is parsed.")
    var maxValueBytes: Int?
    @Option(help: "Most members of one set or fields of one hash (default 1000000); a write beyond it is refused. The same on every node.")
    var maxCollectionSize: Int?
    @Option(help: "Most keys a KEYS reply holds (default 100000); more matches are an error (use SCAN).")
    var maxKeysReply: Int?
    @Option(help: "Most AEGIS.WATCH watches on this node at once (default 1000); more are refused.") var maxWatches: Int?
    @Option(help: "Most keys the leader removes per expiry entry (default 512).") var expiryBatchSize: Int?
    @Option(help: "Milliseconds between the leader's looks for expired keys (default 100).") var expiryIntervalMs: Int?
    @Option(help: "Applied entries after which a snapshot is considered (default 100000).") var snapshotEntries: Int?
    @Option(help: "Entries kept in the log behind a snapshot for slow followers and DR standbys (default 10000).")
    var snapshotTrailingEntries: Int?
    @Option(help: "Milliseconds per Raft tick (default 10).") var tickMs: Int?
    @Option(help: "Election timeout in ticks (default 100).") var electionTicks: Int?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: String?
    @Option(help: "The disk health check warns below this many free bytes on the data directory's file system (default 1073741824).")
    var minFreeDiskBytes: UInt64?
    @Option(help: "Milliseconds a leader stopping (SIGTERM, POST /v1/node/shutdown) may spend handing leadership over (default 2000).")
    var handoverTimeoutMs: Int?
    @Option(help: "Log a pass of the node loop slower than this many milliseconds, with where its time went (default 100; 0: never).")
    var slowLoopWarningMs: Int?
    @Option(help: "How the leader confirms a linearizable read: safe (a heartbeat round to a quorum per batch of reads, no clock assumption; the default) or lease (no round while the leader's lease holds; sound only while every node's clock rate drifts less than --max-clock-drift-percent, and every node must run with the same mode).")
    var readMode: String?
    @Option(help: "The clock-rate drift, in percent (0-99), lease reads tolerate; the lease is shortened to match (default 10). Late ticks on an overloaded or paused node count as drift.")
    var maxClockDriftPercent: Int?
    @Flag(help: "UNSAFE, for testing the linearizability checker only: serve every read from local state without ReadIndex (stale reads).")
    var unsafeLocalReads = false
    @OptionGroup(title: "Backups") var backup: ServeBackupOptions
    @OptionGroup(title: "Disaster recovery") var dr: ServeDROptions
    @OptionGroup(title: "DR drills") var drill: ServeDrillOptions
    @OptionGroup(title: "Active-active") var aa: ServeAAOptions

    func run() async throws {
        let settings = try ServeSettings.resolve(self)
        LoggingSystem.bootstrap { label in ServerLogHandler(label: label, level: settings.logLevel) }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        var logger = Logger(label: "aegis")
        logger[metadataKey: "node"] = "\(settings.id)"

        let plan: DataDirectoryGuard.Plan
        do {
            plan = try DataDirectoryGuard.plan(
                directory: settings.dataDir, clusterID: settings.clusterID, nodeID: settings.id.rawValue,
                state: settings.initialClusterState, join: settings.join, clusterUUID: settings.clusterUUID,
                founders: settings.members.map { "\($0.key)=\($0.value.peer)" })
        } catch {
            logger.critical("refusing to start: \(error)")
            throw ExitCode(2)
        }
        let identity: IdentityFile
        let bootstrap: Bool
        switch plan {
        case .bootstrap(let id):
            identity = IdentityFile(id, directory: settings.dataDir)
            bootstrap = true
        case .start(let id, let write):
            identity = IdentityFile(id, directory: settings.dataDir)
            bootstrap = false
            if write { try identity.save() }
        }
        try FileManager.default.createDirectory(atPath: settings.dataDir, withIntermediateDirectories: true)
        var nodeConfig = NodeConfiguration(nodeID: settings.id,
                                           bootstrapVoters: bootstrap ? settings.members.keys.sorted() : [])
        nodeConfig.awaitingAdd = identity.current.membership == .awaitingAdd
        nodeConfig.snapshotReceiveDirectory = settings.dataDir
        nodeConfig.limits.maxValueSize = settings.maxValueBytes
        nodeConfig.limits.maxCollectionSize = settings.maxCollectionSize
        nodeConfig.replica = ReplicaID(settings.clusterID)
        // PUBLISH goes through the log; every node delivers what it applies to its subscribers.
        let pubsub = PubSubHub(fedByLog: true)
        nodeConfig.onApplied = pubsub.observer
        let opening = ContinuousClock.now
        // The snapshot is parsed into the state machine while the log is recovered.
        var storageOptions = DiskStorageOptions.nodeLog
        nodeConfig.prefaultsReplayMemory = true
        storageOptions.snapshotPreparer = nodeConfig.snapshotPreparer
        let storage = try DiskStorage(directory: settings.dataDir, options: storageOptions)
        defer { storage.close() }
        let recovered = storage.recovery
        let opened = (ContinuousClock.now - opening).components
        logger.info("opened the storage", metadata: [
            "seconds": "\(Double(opened.seconds) + Double(opened.attoseconds) / 1e18)",
            "segments": "\(recovered.segments)", "entries": "\(recovered.firstIndex)...\(recovered.lastIndex)",
            "snapshot_index": "\(recovered.snapshotIndex)"])

        var transportConfig = TCPTransport.Configuration(nodeID: settings.id, clusterID: settings.clusterID,
                                                         host: settings.peerListen.host, port: settings.peerListen.port)
        transportConfig.clusterUUID = identity.current.clusterUUID
        transportConfig.onClusterUUIDLearned = { [logger] uuid in
            logger.notice("learned the cluster UUID from a peer", metadata: ["uuid": "\(uuid)"])
            identity.update(logger: logger) { $0.clusterUUID = uuid }
        }
        for (peer, address) in settings.members where peer != settings.id {
            if let p = PeerAddress(parsing: address.peer) { transportConfig.peers[peer] = p }
        }
        var loaded: CertificateStore?
        if let files = settings.tls {
            do {
                let store = try CertificateStore(files: files, requiredIdentity: settings.id.rawValue)
                transportConfig.tls = TCPTransport.TLSSettings(certificates: store)
                loaded = store
            } catch {
                logger.critical("refusing to start: \(error.message)")
                throw ExitCode(2)
            }
        } else {
            logger.warning("no TLS (--tls-ca, --tls-cert, --tls-key): peers, clients and operators talk in plaintext, and the peer port cannot tell members from strangers")
        }
        let certificates = loaded
        let transport = try TCPTransport(configuration: transportConfig, logger: logger)
        do {
            try await transport.start()
        } catch {
            throw ListenError(what: "peers", host: settings.peerListen.host, port: Int(settings.peerListen.port),
                              underlying: "\(error)")
        }

        // With continuous archiving on this member, the log is not compacted past what
        // it shipped (bounded by maxEntriesHeldForArchiving).
        let archived = ArchivedIndex()
        let coordinator = try dr.makeCoordinator(config: config, settings: settings, logger: logger)
        coordinator.isolated = drill.drDrillCopy
        coordinator.dataDirectory = settings.dataDir
        let drills = try drill.makeExtension(config: config, dataDirectory: settings.dataDir, coordinator: coordinator)
        let activeActive = try aa.makeCoordinator(config: config, settings: settings, logger: logger)
        // Nor past what a DR standby or an active-active peer still has to pull (all
        // bounded by maxEntriesHeldForArchiving).
        nodeConfig.compactionFloor = {
            [archived.value, coordinator.compactionFloor, activeActive?.compactionFloor].compactMap { $0 }.min()
        }
        // Standby and fenced clusters, and a primary without its write lease, refuse
        // client writes on the leader before they are logged.
        nodeConfig.writeGuard = { coordinator.writeRefusal($0) }
        nodeConfig.onAdded = { [logger] in identity.update(logger: logger) { $0.membership = .member } }
        nodeConfig.tickInterval = .milliseconds(settings.tickMs)
        nodeConfig.expiryBatchSize = settings.expiryBatchSize
        nodeConfig.expiryIntervalTicks = max(1, settings.expiryIntervalMs / settings.tickMs)
        if let entries = settings.snapshotEntries { nodeConfig.raft.snapshotThreshold = UInt64(entries) }
        if let entries = settings.snapshotTrailingEntries { nodeConfig.raft.snapshotTrailingEntries = UInt64(entries) }
        nodeConfig.raft.electionTimeout = settings.electionTicks
        nodeConfig.raft.heartbeatInterval = max(1, settings.electionTicks / 10)
        nodeConfig.raft.readOnlyOption = settings.readOnlyOption
        nodeConfig.raft.maxClockDriftPercent = settings.maxClockDriftPercent
        nodeConfig.handoverTimeout = .milliseconds(settings.handoverTimeoutMs)
        nodeConfig.slowLoopWarning = settings.slowLoopWarningMs == 0 ? nil : .milliseconds(settings.slowLoopWarningMs)
        var addresses = settings.members
        addresses[settings.id] = MemberAddress(peer: settings.peerListen.description, client: settings.clientListen.description)
        let runtime = try NodeRuntime(configuration: nodeConfig, storage: storage, transport: transport,
                                      addresses: addresses, logger: logger)
        coordinator.attach(runtime)
        activeActive?.attach(runtime)
        if bootstrap {
            // After the founding log is durable: a crash in between leaves a log without
            // an identity, which the next start adopts.
            try identity.save()
        }
        if nodeConfig.awaitingAdd {
            logger.notice("this node waits to be added to the cluster and does not vote until then: add it with `aegis cluster add \(settings.id) --peer \(settings.peerListen) --client \(settings.clientListen)` on the leader")
        }
        if settings.unsafeLocalReads {
            logger.warning("UNSAFE: --unsafe-local-reads serves every read from this node's local state without ReadIndex; reads may be stale and the cluster is NOT linearizable. For testing the checker only.")
        }
        let backend = RuntimeBackend(runtime: runtime, clusterID: settings.clusterID,
                                     unsafeLocalReads: settings.unsafeLocalReads)
        let acl: ACLStore
        do {
            acl = try settings.aclFile.map { try ACLStore(file: $0, defaultPassword: settings.password) }
                ?? ACLStore(defaultPassword: settings.password)
        } catch {
            logger.critical("refusing to start: \(error)")
            throw ExitCode(2)
        }
        if settings.adminToken == nil {
            logger.warning("no admin token (--admin-token-file, --admin-token or AEGIS_ADMIN_TOKEN): the admin API answers 403 to everything but /livez, /readyz, /healthz and /metrics")
        }
        let defaultUser = acl.user(named: "default")
        // RESP and admin clients show no certificate; they authenticate with passwords and tokens.
        let serverTLS: (@Sendable () throws -> NIOSSLContext)? = certificates.map { store in
            { @Sendable () throws -> NIOSSLContext in try store.serverContext(clientAuthentication: .none) }
        }
        let resp = RESPServer(
            configuration: RESPServerConfiguration(
                host: settings.clientListen.host, port: settings.clientListen.port,
                password: settings.password, protectedMode: defaultUser?.noPassword ?? true,
                // One source for the sizes: the server refuses at parse exactly what the
                // state machine and the log would refuse later.
                limits: {
                    var limits = RESPLimits(maxClients: settings.maxClients, maxValueSize: nodeConfig.limits.maxValueSize,
                                            maxRequestBytes: nodeConfig.maxEntryBytes)
                    limits.maxKeysReply = settings.maxKeysReply
                    limits.maxWatches = settings.maxWatches
                    // A transaction is one log entry: its arguments fit in one.
                    limits.maxTransactionBytes = min(limits.maxTransactionBytes, nodeConfig.maxEntryBytes / 2)
                    return limits
                }(),
                plaintextHost: settings.clientListenPlain?.host, plaintextPort: settings.clientListenPlain?.port ?? 0),
            backend: backend, acl: acl, tls: serverTLS, logger: logger, pubsub: pubsub)
        let backupService = try backup.makeService(config: config, dataDirectory: settings.dataDir, logger: logger,
                                                   archived: archived)
        let shutdown = GracefulShutdownTrigger()
        let aaExtensions: [any AdminExtension] = activeActive.map {
            [AAAdminExtension(coordinator: $0, warnLagSeconds: aa.aaWarnLag ?? 5, deadLinkMillis: 5_000)]
        } ?? []
        let admin = AdminServer(
            configuration: AdminServerConfiguration(host: settings.adminListen.host, port: settings.adminListen.port,
                                                    adminToken: settings.adminToken, dataDirectory: settings.dataDir,
                                                    minFreeDiskBytes: settings.minFreeDiskBytes),
            backend: backend, registry: registry, logger: logger,
            tls: serverTLS, certificates: { certificates.map(CertificateReloader.served) ?? [] },
            extensions: (backupService.map { [BackupAdminExtension(service: $0)] } ?? [])
                + [DRAdminExtension(coordinator: coordinator, warnLagSeconds: 5, deadLinkMillis: 5_000),
                   DRRecoveryAdminExtension(coordinator: coordinator), drills] + aaExtensions,
            onShutdownRequest: { [logger] in
                logger.notice("stopping: asked through the admin API")
                await shutdown.trigger()
            })
        logger.info("node starting", metadata: [
            "peers": "\(settings.peerListen)", "clients": "\(settings.clientListen)", "admin": "\(settings.adminListen)",
            "data": "\(settings.dataDir)", "pid": "\(ProcessInfo.processInfo.processIdentifier)"])
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: runtime), .init(service: resp), .init(service: admin)]
        if let certificates { services.append(.init(service: CertificateReloader(store: certificates, logger: logger))) }
        if let backupService { services.append(.init(service: backupService)) }
        services.append(.init(service: coordinator))
        if let activeActive { services.append(.init(service: activeActive)) }
        if drill.drDrillCopy {
            // The copy of a drill stops gracefully once its drill is gone; never by an error
            // (a failing service cancels the group instead of stopping it).
            services.append(.init(service: ParentWatch(logger: logger), successTerminationBehavior: .gracefullyShutdownGroup,
                                  failureTerminationBehavior: .gracefullyShutdownGroup))
        }
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        shutdown.set(group)
        try await group.run()
        await transport.shutdown()
    }
}

/// The resolved settings of `aegis serve` (flags > environment > file > defaults).
struct ServeSettings {
    var id: NodeID
    var dataDir: String
    var clusterID: String
    var peerListen: PeerAddress
    var clientListen: PeerAddress
    var adminListen: PeerAddress
    var clientListenPlain: PeerAddress?
    var tls: TLSFiles?
    var members: [NodeID: MemberAddress]
    var join: Bool
    var initialClusterState: DataDirectoryGuard.InitialClusterState
    var clusterUUID: String?
    var password: String?
    var aclFile: String?
    var adminToken: String?
    var maxClients: Int
    var maxValueBytes: Int
    var maxCollectionSize: Int
    var maxKeysReply: Int
    var maxWatches: Int
    var expiryBatchSize: Int
    var expiryIntervalMs: Int
    var snapshotEntries: Int?
    var snapshotTrailingEntries: Int?
    var tickMs: Int
    var electionTicks: Int
    var logLevel: Logger.Level
    /// Reads skip ReadIndex and serve local state: not linearizable, for testing only.
    var unsafeLocalReads: Bool
    var minFreeDiskBytes: UInt64
    var handoverTimeoutMs: Int
    /// 0: slow passes of the node loop are not logged.
    var slowLoopWarningMs: Int
    /// How the leader confirms linearizable reads (`--read-mode`).
    var readOnlyOption: ReadOnlyOption
    /// The drift lease reads tolerate (`--max-clock-drift-percent`).
    var maxClockDriftPercent: Int

    static func resolve(_ flags: ServeCommand) throws -> ServeSettings {
        let env = ProcessInfo.processInfo.environment
        var file: [String: String] = [:]
        if let path = flags.config { file = try parseConfigFile(path) }
        func value(_ name: String, _ flag: String?) -> String? {
            if let flag { return flag }
            let envName = "AEGIS_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
            if let v = env[envName], !v.isEmpty { return v }
            return file[name]
        }
        func address(_ name: String, _ flag: String?, _ fallback: String) throws -> PeerAddress {
            let text = value(name, flag) ?? fallback
            guard let a = PeerAddress(parsing: text) else {
                throw ValidationError("--\(name): '\(text)' is not host:port")
            }
            return a
        }
        guard let id = value("id", flags.id) else { throw ValidationError("--id is required (or AEGIS_ID, or id in --config)") }
        let peerListen = try address("peer-listen", flags.peerListen, "127.0.0.1:9001")
        let clientListen = try address("client-listen", flags.clientListen, "127.0.0.1:7001")
        let adminListen = try address("admin-listen", flags.adminListen, "127.0.0.1:8001")
        let tlsPaths = [value("tls-ca", flags.tlsCa), value("tls-cert", flags.tlsCert), value("tls-key", flags.tlsKey)]
        let tls: TLSFiles?
        switch tlsPaths.compactMap({ $0 }).count {
        case 0: tls = nil
        case 3: tls = TLSFiles(caPath: tlsPaths[0] ?? "", certificatePath: tlsPaths[1] ?? "", keyPath: tlsPaths[2] ?? "")
        default: throw ValidationError("--tls-ca, --tls-cert and --tls-key go together (all three or none)")
        }
        var clientListenPlain: PeerAddress?
        if let text = value("client-listen-plain", flags.clientListenPlain) {
            guard tls != nil else { throw ValidationError("--client-listen-plain needs TLS (--tls-ca, --tls-cert, --tls-key); without TLS --client-listen is plaintext already") }
            let plain = try address("client-listen-plain", text, text)
            guard plain.host == "localhost" || plain.host == "::1" || plain.host.hasPrefix("127.") else {
                throw ValidationError("--client-listen-plain: '\(text)' is not a loopback address; plaintext RESP is for clients on this host only")
            }
            clientListenPlain = plain
        }
        var members: [NodeID: MemberAddress] = [:]
        if let list = value("peers", flags.peers) {
            for item in list.split(separator: ",") {
                let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
                let addrs = parts.count == 2 ? parts[1].split(separator: "/").map(String.init) : []
                guard parts.count == 2, (1...2).contains(addrs.count), addrs.allSatisfy({ PeerAddress(parsing: $0) != nil }) else {
                    throw ValidationError("--peers: '\(item)' is not id=peerHost:port[/clientHost:port]")
                }
                members[NodeID(parts[0])] = MemberAddress(peer: addrs[0], client: addrs.count == 2 ? addrs[1] : nil)
            }
        }
        let join = flags.join || value("join", nil) == "true"
        if !join && members[NodeID(id)] == nil {
            members[NodeID(id)] = MemberAddress(peer: peerListen.description, client: clientListen.description)
        }
        let stateText = value("initial-cluster-state", flags.initialClusterState) ?? "existing"
        guard let initialState = DataDirectoryGuard.InitialClusterState(rawValue: stateText) else {
            throw ValidationError("--initial-cluster-state: '\(stateText)' is not new or existing")
        }
        let clusterUUID = value("cluster-uuid", flags.clusterUuid)
        if let clusterUUID, UUID(uuidString: clusterUUID) == nil {
            throw ValidationError("--cluster-uuid: '\(clusterUUID)' is not a UUID")
        }
        let maxClients = Int(value("max-clients", flags.maxClients.map(String.init)) ?? "10000") ?? -1
        let maxValueBytes = Int(value("max-value-bytes", flags.maxValueBytes.map(String.init)) ?? "\(1 << 20)") ?? -1
        guard maxClients > 0 else { throw ValidationError("--max-clients must be a positive number") }
        let maxCollectionSize = Int(value("max-collection-size", flags.maxCollectionSize.map(String.init)) ?? "1000000") ?? -1
        guard maxCollectionSize > 0 else { throw ValidationError("--max-collection-size must be a positive number") }
        func positive(_ name: String, _ flag: Int?, _ fallback: Int) throws -> Int {
            let parsed = Int(value(name, flag.map(String.init)) ?? String(fallback)) ?? -1
            guard parsed > 0 else { throw ValidationError("--\(name) must be a positive number") }
            return parsed
        }
        let maxKeysReply = try positive("max-keys-reply", flags.maxKeysReply, 100_000)
        let maxWatches = try positive("max-watches", flags.maxWatches, 1_000)
        let expiryBatchSize = try positive("expiry-batch-size", flags.expiryBatchSize, 512)
        let expiryIntervalMs = try positive("expiry-interval-ms", flags.expiryIntervalMs, 100)
        let snapshotEntries = value("snapshot-entries", flags.snapshotEntries.map(String.init)) == nil ? nil
            : try positive("snapshot-entries", flags.snapshotEntries, 100_000)
        let snapshotTrailingEntries = value("snapshot-trailing-entries", flags.snapshotTrailingEntries.map(String.init)) == nil
            ? nil : try positive("snapshot-trailing-entries", flags.snapshotTrailingEntries, 10_000)
        // The value plus its key and framing must fit in one log entry (32 MiB).
        guard maxValueBytes > 0, maxValueBytes <= 16 << 20 else {
            throw ValidationError("--max-value-bytes must be between 1 and 16777216")
        }
        var adminToken = value("admin-token", flags.adminToken)
        if adminToken == nil, let path = value("admin-token-file", flags.adminTokenFile) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                  let line = text.split(whereSeparator: \.isNewline).first, !line.isEmpty else {
                throw ValidationError("--admin-token-file: cannot read a token from '\(path)'")
            }
            adminToken = String(line).trimmingCharacters(in: .whitespaces)
        }
        let levelText = value("log-level", flags.logLevel) ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else { throw ValidationError("--log-level: unknown level '\(levelText)'") }
        let tick = Int(value("tick-ms", flags.tickMs.map(String.init)) ?? "10") ?? 10
        let election = Int(value("election-ticks", flags.electionTicks.map(String.init)) ?? "100") ?? 100
        guard tick > 0, election > 2 else { throw ValidationError("--tick-ms must be positive and --election-ticks at least 3") }
        guard let minFreeDisk = UInt64(value("min-free-disk-bytes", flags.minFreeDiskBytes.map(String.init)) ?? "1073741824") else {
            throw ValidationError("--min-free-disk-bytes must be a non-negative number of bytes")
        }
        guard let handover = Int(value("handover-timeout-ms", flags.handoverTimeoutMs.map(String.init)) ?? "2000"),
              (0 ... 600_000).contains(handover) else {
            throw ValidationError("--handover-timeout-ms must be between 0 and 600000")
        }
        guard let slowLoop = Int(value("slow-loop-warning-ms", flags.slowLoopWarningMs.map(String.init)) ?? "100"),
              (0 ... 600_000).contains(slowLoop) else {
            throw ValidationError("--slow-loop-warning-ms must be between 0 and 600000")
        }
        let readModeText = value("read-mode", flags.readMode) ?? "safe"
        let readOnlyOption: ReadOnlyOption
        switch readModeText {
        case "safe": readOnlyOption = .safe
        case "lease": readOnlyOption = .leaseBased
        default: throw ValidationError("--read-mode: '\(readModeText)' is not safe or lease")
        }
        guard let drift = Int(value("max-clock-drift-percent", flags.maxClockDriftPercent.map(String.init)) ?? "10"),
              (0 ... 99).contains(drift) else {
            throw ValidationError("--max-clock-drift-percent must be between 0 and 99")
        }
        var readSettings = RaftConfig(electionTimeout: election, heartbeatInterval: max(1, election / 10))
        readSettings.readOnlyOption = readOnlyOption
        readSettings.maxClockDriftPercent = drift
        do { try readSettings.validate() } catch {
            throw ValidationError("--read-mode \(readModeText) with --election-ticks \(election) and --max-clock-drift-percent \(drift): \(error)")
        }
        return ServeSettings(
            id: NodeID(id), dataDir: value("data-dir", flags.dataDir) ?? "./.aegis/\(id)",
            clusterID: value("cluster-id", flags.clusterId) ?? "aegis", peerListen: peerListen,
            clientListen: clientListen, adminListen: adminListen, clientListenPlain: clientListenPlain, tls: tls,
            members: members, join: join,
            initialClusterState: initialState, clusterUUID: clusterUUID?.uppercased(),
            password: value("password", flags.password), aclFile: value("acl-file", flags.aclFile), adminToken: adminToken,
            maxClients: maxClients, maxValueBytes: maxValueBytes, maxCollectionSize: maxCollectionSize,
            maxKeysReply: maxKeysReply, maxWatches: maxWatches, expiryBatchSize: expiryBatchSize, expiryIntervalMs: expiryIntervalMs,
            snapshotEntries: snapshotEntries, snapshotTrailingEntries: snapshotTrailingEntries, tickMs: tick, electionTicks: election,
            logLevel: level,
            unsafeLocalReads: flags.unsafeLocalReads || value("unsafe-local-reads", nil) == "true",
            minFreeDiskBytes: minFreeDisk, handoverTimeoutMs: handover, slowLoopWarningMs: slowLoop,
            readOnlyOption: readOnlyOption, maxClockDriftPercent: drift)
    }

    /// `name = value` lines; `#` starts a comment.
    static func parseConfigFile(_ path: String) throws -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("--config: cannot read '\(path)'")
        }
        var result: [String: String] = [:]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1).first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
            if line.isEmpty { continue }
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--config \(path):\(n + 1): expected `name = value`, got '\(line)'")
            }
            result[parts[0]] = parts[1]
        }
        return result
    }
}

/// The data directory's identity file, updated durably when the node learns its cluster
/// UUID or is added to the cluster. Updates may come from any thread.
final class IdentityFile: @unchecked Sendable {
    private let lock = NSLock()
    private var identity: DataDirectoryIdentity
    private let directory: String

    init(_ identity: DataDirectoryIdentity, directory: String) {
        self.identity = identity
        self.directory = directory
    }

    var current: DataDirectoryIdentity {
        lock.lock()
        defer { lock.unlock() }
        return identity
    }

    func save() throws {
        lock.lock()
        defer { lock.unlock() }
        try identity.write(to: directory)
    }

    /// Changes the identity and writes it. A failed write is logged as an error: the
    /// file keeps its previous, still valid, content (it is replaced atomically) and
    /// the running node keeps the change in memory; the next update writes it again.
    func update(logger: Logger, _ change: (inout DataDirectoryIdentity) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        var next = identity
        change(&next)
        guard next != identity else { return }
        identity = next
        do { try identity.write(to: directory) } catch {
            logger.error("could not update the data directory's identity file", metadata: ["error": "\(error)"])
        }
    }
}

/// Starts the service group's graceful shutdown from the admin API (`POST
/// /v1/node/shutdown`), as SIGTERM does.
final class GracefulShutdownTrigger: @unchecked Sendable {
    private let lock = NSLock()
    private var group: ServiceGroup?

    func set(_ group: ServiceGroup) {
        lock.lock()
        self.group = group
        lock.unlock()
    }

    private var current: ServiceGroup? {
        lock.lock()
        defer { lock.unlock() }
        return group
    }

    func trigger() async {
        await current?.triggerGracefulShutdown()
    }
}
