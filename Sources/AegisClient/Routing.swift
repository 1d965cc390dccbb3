import AegisRESP
import NIOCore

extension AegisClient {
    /// A connection to the leader (when followed and known, discovering it first when
    /// unknown) or to the next node, opening one if the node's pool is not full.
    func connection(preferLeader: Bool) async throws(ConnectionFailure) -> RESPClientConnection {
        if preferLeader && configuration.followLeader && state.withLockedValue({ $0.leader }) == nil {
            await discoverLeader()
        }
        let endpoint = state.withLockedValue { state -> AegisEndpoint in
            if preferLeader && configuration.followLeader, let leader = state.leader { return leader }
            let endpoints = configuration.endpoints
            defer { state.nextEndpoint = (state.nextEndpoint + 1) % endpoints.count }
            return endpoints[state.nextEndpoint % endpoints.count]
        }
        return try await connection(to: endpoint)
    }

    /// An open connection to `endpoint`: the next pooled one, or a new one while the
    /// pool has fewer than `connectionsPerNode`.
    func connection(to endpoint: AegisEndpoint) async throws(ConnectionFailure) -> RESPClientConnection {
        let pooled = state.withLockedValue { state -> RESPClientConnection? in
            let pool = (state.pools[endpoint] ?? []).filter(\.isActive)
            defer { state.pools[endpoint] = pool }
            guard pool.count >= configuration.connectionsPerNode else { return nil }
            let index = (state.cursor[endpoint] ?? 0) % pool.count
            state.cursor[endpoint] = index + 1
            return pool[index]
        }
        if let pooled { return pooled }
        if state.withLockedValue({ $0.isShutDown }) { throw ConnectionFailure(maybeSent: false, reason: "the client is shut down") }
        let fresh = try await RESPClientConnection.connect(to: endpoint, configuration: configuration,
                                                           sslContext: sslContext, group: group)
        let kept = state.withLockedValue { state -> Bool in
            guard !state.isShutDown else { return false }
            state.pools[endpoint, default: []].append(fresh)
            state.statistics.connectionsOpened += 1
            return true
        }
        if !kept {
            fresh.close()
            throw ConnectionFailure(maybeSent: false, reason: "the client is shut down")
        }
        return fresh
    }

    /// Asks the nodes in turn for `INFO replication` and records the leader's client
    /// address; leaves it unknown when no node knows one.
    func discoverLeader() async {
        for endpoint in configuration.endpoints {
            guard let connection = try? await connection(to: endpoint),
                  let reply = try? await connection.send([[Array("INFO".utf8), Array("replication".utf8)]]).first,
                  let text = reply.text else { continue }
            if let leader = Self.leaderAddress(inInfo: text) {
                state.withLockedValue { state in
                    state.leader = leader
                    state.statistics.leaderDiscoveries += 1
                }
                return
            }
        }
    }

    /// The `leader_address` of an `INFO replication` reply.
    static func leaderAddress(inInfo text: String) -> AegisEndpoint? {
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("leader_address:") {
            return AegisEndpoint(String(line.dropFirst("leader_address:".count)))
        }
        return nil
    }
}
