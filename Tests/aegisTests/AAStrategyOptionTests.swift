@testable import aegis
import AegisKV
import ArgumentParser
import Testing

/// `aegis serve --aa-strategy` and the admin API's JSON form of the strategy table.
@Suite struct AAStrategyOptionTests {
    @Test func test_strategyOptions_parse_andBadOnesAreRefused() throws {
        #expect(try AAStrategySeed.settings(parsing: []) == nil)
        let settings = try #require(try AAStrategySeed.settings(parsing: ["m:=manual", "p:=priority:eu,us", "=vector-clock"]))
        #expect(settings.rules.map(\.description) == ["=vector-clock", "m:=manual", "p:=priority:eu,us"])
        #expect(settings.strategy(for: "p:1") == .priority(["eu", "us"]) && settings.strategy(for: "z") == .vectorClock)
        for bad in [["nope"], ["k=unknown"], ["k=custom:merge"], ["k=manual", "k=lww"], ["k=priority:a,a"]] {
            #expect(throws: ValidationError.self) { try AAStrategySeed.settings(parsing: bad) }
        }
    }

    @Test func test_theJSONFormRoundTrips() throws {
        let settings = ActiveActiveConflictSettings(rules: [try ActiveActiveStrategyRule(parsing: "m:=manual")], maxSiblings: 3)
        #expect(try AAConflictsAdmin.Strategies(settings).settings() == settings)
        var partial = AAConflictsAdmin.Strategies(settings)
        partial.maxConflicts = nil
        #expect(try partial.settings().maxConflicts == ActiveActiveConflictSettings.defaultMaxConflicts)
        partial.rules = ["bad"]
        #expect(throws: KVError.self) { try partial.settings() }
    }
}
