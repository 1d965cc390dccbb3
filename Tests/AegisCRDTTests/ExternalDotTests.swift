import AegisCRDT
import Testing

/// Updates under dots chosen by the caller (`ORSet.insert(_:dot:)`,
/// `ORMap.update(_:dot:_:)`) and a hybrid logical clock resumed after a stored timestamp.
@Suite struct ExternalDotTests {
    @Test func test_insertWithDot_behavesLikeInsert_andRefusesAUsedDot() throws {
        var chosen = ORSet<Int>()
        var automatic = ORSet<Int>()
        let delta = try chosen.insert(7, dot: Dot(replica: "a", counter: 1))
        let expected = try automatic.insert(7, at: "a")
        #expect(chosen == automatic && delta == expected)
        // A dot may skip ahead (a counter shared with other sets), and a re-add replaces
        // the observed add.
        try chosen.insert(7, dot: Dot(replica: "a", counter: 5))
        #expect(chosen.dots(of: 7) == [Dot(replica: "a", counter: 5)])
        #expect(throws: CRDTError.self) { try chosen.insert(8, dot: Dot(replica: "a", counter: 5)) }
        #expect(throws: CRDTError.self) { try chosen.insert(8, dot: Dot(replica: "a", counter: 1)) }
        #expect(!chosen.contains(8))
        // Add-wins with chosen dots: a remove that did not see the re-add loses to it.
        var removed = chosen
        removed.remove(7)
        var readded = chosen
        try readded.insert(7, dot: Dot(replica: "b", counter: 1))
        #expect(removed.merged(with: readded).contains(7) && readded.merged(with: removed).contains(7))
    }

    @Test func test_updateWithDot_keepsValuesAndPresence() throws {
        var map = ORMap<String, GCounter>()
        try map.update("x", dot: Dot(replica: "a", counter: 3)) { counter throws(CRDTError) in
            try counter.increment(by: 2, at: "a")
        }
        #expect(map["x"]?.value == 2 && map.presence.dots(of: "x") == [Dot(replica: "a", counter: 3)])
        #expect(throws: CRDTError.self) {
            try map.update("y", dot: Dot(replica: "a", counter: 3)) { counter throws(CRDTError) in
                try counter.increment(by: 1, at: "a")
            }
        }
        map.remove("x")
        #expect(map["x"] == nil && map.count == 0 && map.storedValueCount == 1)
    }

    @Test func test_clockResumedAfterATimestamp_neverGoesBack() throws {
        let stored = HLCTimestamp(physical: 500, logical: 3, replica: "a")
        var clock = HybridLogicalClock(replica: "a", resumingAfter: stored)
        #expect(try clock.now(physicalTime: 100) == HLCTimestamp(physical: 500, logical: 4, replica: "a"))
        #expect(try clock.now(physicalTime: 900) == HLCTimestamp(physical: 900, logical: 0, replica: "a"))
    }
}
