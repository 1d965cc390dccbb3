@testable import AegisClient
import Testing

/// The client's pure parts: endpoints, leader discovery from INFO, session numbering.
@Suite struct ClientUnitTests {
    @Test func test_endpoints_parse() {
        #expect(AegisEndpoint("127.0.0.1:7001") == AegisEndpoint(host: "127.0.0.1", port: 7001))
        #expect(AegisEndpoint("[::1]:7001") == AegisEndpoint(host: "::1", port: 7001))
        #expect(AegisEndpoint("[::1]:7001")?.description == "[::1]:7001")
        for bad in ["", "host", ":7001", "host:0", "host:70000", "host:x"] { #expect(AegisEndpoint(bad) == nil, "\(bad)") }
    }

    @Test func test_leaderAddress_isReadFromInfo() {
        let info = "# Replication\r\nrole:slave\r\nleader_id:n2\r\nleader_address:127.0.0.1:7002\r\n"
        #expect(AegisClient.leaderAddress(inInfo: info) == AegisEndpoint(host: "127.0.0.1", port: 7002))
        #expect(AegisClient.leaderAddress(inInfo: "role:slave\r\nleader_address:\r\n") == nil)
    }

    @Test func test_sessionNumbers_acknowledgeWhatWasAnswered() {
        var state = ClientState()
        let session = state.adopt(session: 42)
        #expect(state.adopt(session: 43) == 42)  // a second open loses to the first
        let one = state.nextSequence(in: session), two = state.nextSequence(in: session), three = state.nextSequence(in: session)
        #expect([one, two, three] == [1, 2, 3])
        #expect(state.acknowledged(in: session) == 0)
        state.finish(two, in: session)
        #expect(state.acknowledged(in: session) == 0)  // 1 is still out
        state.finish(one, in: session)
        #expect(state.acknowledged(in: session) == 2)
        state.finish(three, in: session)
        #expect(state.acknowledged(in: session) == 3)
        state.forgetSession(session)
        #expect(state.session == nil)
    }

    @Test func test_errors_areClassified() {
        #expect(AegisClient.retryableError(.error("CLUSTERDOWN no leader"), unknownOutcomeToo: false) != nil)
        #expect(AegisClient.retryableError(.error("TRYAGAIN later"), unknownOutcomeToo: false) != nil)
        #expect(AegisClient.retryableError(.error("TIMEOUT a write may still be applied"), unknownOutcomeToo: false) == nil)
        #expect(AegisClient.retryableError(.error("TIMEOUT a write may still be applied"), unknownOutcomeToo: true) != nil)
        #expect(AegisClient.retryableError(.error("WRONGTYPE no"), unknownOutcomeToo: true) == nil)
        #expect(AegisClient.unknownOutcomeError(.error("TIMEOUT x")) == "TIMEOUT x")
    }
}
