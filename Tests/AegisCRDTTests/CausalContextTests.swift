import AegisCRDT
import Testing

@Test func test_causalContext_outOfOrderDotsFoldIntoTheCompactClock() {
    var context = CausalContext()
    context.insert(Dot(replica: "a", counter: 3))
    context.insert(Dot(replica: "a", counter: 2))
    #expect(context.cloud.count == 2)
    context.insert(Dot(replica: "a", counter: 1))
    #expect(context.cloud.isEmpty)
    #expect(context.compact == VectorClock(["a": 3]))
    #expect(context == CausalContext(dots: (1...3).map { Dot(replica: "a", counter: $0) }))
}

@Test func test_causalContext_nextDotFollowsTheHighestSeenCounter() throws {
    let context = CausalContext(dots: [Dot(replica: "a", counter: 1), Dot(replica: "a", counter: 5)])
    #expect(try context.nextDot(for: "a") == Dot(replica: "a", counter: 6))
    #expect(try context.nextDot(for: "b") == Dot(replica: "b", counter: 1))
    #expect(context.contains(Dot(replica: "a", counter: 5)))
    #expect(!context.contains(Dot(replica: "a", counter: 3)))
}
