import AegisCluster
import Testing

@Suite struct ClusterConfigTests {
    @Test func test_builder_setsEveryField() throws {
        let config = ClusterConfig(name: "prod")
            .withMinNodes(5).withMaxNodes(9).withReplicationFactor(5)
            .withHeartbeatInterval(.milliseconds(200)).withFailureTimeout(.seconds(2)).withQuorumSize(3)
            .withFailureDetector(FailureDetectorConfig(suspectPhi: 10))
        #expect(config.minNodes == 5 && config.maxNodes == 9 && config.replicationFactor == 5)
        #expect(config.heartbeatInterval == .milliseconds(200) && config.failureTimeout == .seconds(2))
        #expect(config.quorumSize == 3 && config.failureDetector.suspectPhi == 10)
        try config.validate()
    }

    @Test func test_validate_namesTheWrongSetting() {
        let base = ClusterConfig(name: "c")
        let cases: [(ClusterConfig, String)] = [
            (ClusterConfig(name: ""), "the name must be non-empty"),
            (ClusterConfig(name: "a b"), "contain no whitespace"),
            (base.withMinNodes(0), "minNodes must be at least 1"),
            (base.withMaxNodes(2), "maxNodes (2) must be at least minNodes (3)"),
            (base.withReplicationFactor(0), "replicationFactor must be between 1 and maxNodes"),
            (base.withMaxNodes(3).withReplicationFactor(4), "replicationFactor must be between 1 and maxNodes (3)"),
            (base.withHeartbeatInterval(.zero), "heartbeatInterval must be positive"),
            (base.withFailureTimeout(.milliseconds(1500)), "must be at least twice the heartbeatInterval"),
            (base.withQuorumSize(1), "quorumSize must be a majority of the replicationFactor (2...3)"),
            (base.withQuorumSize(4), "quorumSize must be a majority"),
            (base.withFailureDetector(FailureDetectorConfig(windowSize: 0)), "the failure detector needs"),
        ]
        for (config, message) in cases {
            do {
                try config.validate()
                Issue.record("accepted an invalid configuration; expected: \(message)")
            } catch {
                guard case .invalidConfig(let why) = error else { Issue.record("wrong error \(error)"); continue }
                #expect(why.contains(message), "\(why)")
            }
        }
    }

    @Test func test_cluster_refusesAnInvalidConfiguration() {
        #expect(throws: ClusterError.self) {
            try Cluster(localNode: NodeInfo(id: "n", address: "h", port: 1), config: ClusterConfig(name: "c").withMinNodes(0))
        }
    }
}
