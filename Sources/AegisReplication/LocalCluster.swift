import Foundation
public import AegisCRDT
public import AegisKV
public import AegisRaft
import AegisStorage
import AegisTransport
public import Logging
import NIOPosix

/// Several nodes in one process, each with its own data directory, its own loopback
/// address (127.0.0.1, 127.0.0.2, …) and a TCP transport: for tests and benchmarks
/// of the real runtime (real sockets, real fsync). Nodes can be stopped and restarted
/// from their data directories.
public final class LocalCluster: @unchecked Sendable {
    /// One member.
    public final class Member: @unchecked Sendable {
        public let id: NodeID
        public let host: String
        public internal(set) var port: Int
        public let directory: String
        public internal(set) var runtime: NodeRuntime?
        var transport: TCPTransport?
        var storage: DiskStorage?
        var task: Task<Void, any Error>?

        init(id: NodeID, host: String, directory: String) {
            self.id = id
            self.host = host
            self.port = 0
            self.directory = directory
        }

        /// `host:port` of the peer listener.
        public var address: String { "\(host):\(port)" }

        /// `fdatasync` calls of the member's WAL so far (0 when stopped).
        public var dataSyncs: Int { storage?.statistics.dataSyncs ?? 0 }
    }

    /// The members, in order.
    public let members: [Member]
    /// Root of the members' data directories.
    public let directory: String
    let raft: RaftConfig
    let tickInterval: Duration
    let logger: Logger
    /// The cluster's replica ID for CRDT metadata (`NodeConfiguration.replica`).
    let replica: ReplicaID

    /// Prepares `count` members under `directory` (created if needed); `replica` is the
    /// cluster's replica ID (distinct per cluster of an active-active group).
    public init(count: Int, directory: String, raft: RaftConfig? = nil, tickInterval: Duration = .milliseconds(10),
                replica: ReplicaID = StateMachine.defaultReplica,
                logger: Logger = Logger(label: "aegis.local-cluster")) throws {
        self.directory = directory
        self.replica = replica
        var c = raft ?? NodeConfiguration.defaultRaft
        if raft == nil {
            c.electionTimeout = 30
            c.heartbeatInterval = 3
        }
        self.raft = c
        self.tickInterval = tickInterval
        self.logger = logger
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        members = (1...count).map { k in
            Member(id: NodeID("n\(k)"), host: "127.0.0.\(k)", directory: "\(directory)/n\(k)")
        }
    }

    /// Starts every member (binding ports first so that each knows the others').
    public func start() async throws {
        for k in members.indices { try await bind(k) }
        for k in members.indices { try launch(k) }
    }

    private func bind(_ k: Int) async throws {
        let member = members[k]
        var configuration = TCPTransport.Configuration(nodeID: member.id, clusterID: "local", host: member.host,
                                                        port: member.port)
        for other in members where other.id != member.id && other.port != 0 {
            configuration.peers[other.id] = PeerAddress(host: other.host, port: other.port)
        }
        let transport = try TCPTransport(configuration: configuration, logger: logger)
        let address = try await transport.start()
        member.port = address.port ?? member.port
        member.transport = transport
        for other in members where other.id != member.id {
            other.transport?.setPeer(member.id, address: PeerAddress(host: member.host, port: member.port))
            if other.port != 0 { transport.setPeer(other.id, address: PeerAddress(host: other.host, port: other.port)) }
        }
    }

    private func launch(_ k: Int) throws {
        let member = members[k]
        guard let transport = member.transport else { return }
        try FileManager.default.createDirectory(atPath: member.directory, withIntermediateDirectories: true)
        let storage = try DiskStorage(directory: member.directory, options: .nodeLog)
        var configuration = NodeConfiguration(nodeID: member.id, bootstrapVoters: members.map(\.id), raft: raft)
        configuration.tickInterval = tickInterval
        configuration.replica = replica
        configuration.snapshotReceiveDirectory = member.directory
        var addresses: [NodeID: MemberAddress] = [:]
        for other in members { addresses[other.id] = MemberAddress(peer: other.address) }
        var nodeLogger = logger
        nodeLogger[metadataKey: "node"] = "\(member.id)"
        let runtime = try NodeRuntime(configuration: configuration, storage: storage, transport: transport,
                                      addresses: addresses, logger: nodeLogger)
        member.storage = storage
        member.runtime = runtime
        member.task = Task { try await runtime.run() }
    }

    /// Stops a member (as a clean shutdown; its data stays). With `gracefully`, a leader
    /// hands leadership over first (`NodeRuntime.stopGracefully()`).
    public func stop(_ k: Int, gracefully: Bool = false) async {
        let member = members[k]
        if gracefully { member.runtime?.stopGracefully() } else { member.runtime?.stop() }
        _ = try? await member.task?.value
        await member.transport?.shutdown()
        member.storage?.close()
        member.runtime = nil
        member.transport = nil
        member.storage = nil
        member.task = nil
    }

    /// Restarts a stopped member on the same address from its data directory.
    public func restart(_ k: Int) async throws {
        try await bind(k)
        try launch(k)
    }

    /// Stops every member.
    public func shutdown() async {
        for k in members.indices { await stop(k) }
    }

    /// The index of the member that leads (as the members report), if exactly one does.
    public var leaderIndex: Int? {
        let leaders = members.indices.filter { members[$0].runtime?.status.role == .leader }
        return leaders.count == 1 ? leaders[0] : nil
    }

    /// Waits until a leader is elected and known to every running member. The default
    /// allows for a loaded machine (`swift test` runs many clusters at once on 2 cores);
    /// an idle one elects within about a second.
    public func waitForLeader(timeout: Duration = .seconds(90)) async throws -> Int {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            if let l = leaderIndex {
                let id = members[l].id
                let agreed = members.allSatisfy { $0.runtime == nil || $0.runtime?.status.leader == id }
                if agreed { return l }
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw ReplicationError.noLeader
    }
}
