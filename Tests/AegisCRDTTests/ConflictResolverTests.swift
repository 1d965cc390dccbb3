import AegisCRDT
import Testing

private let eu = Origin(replica: "eu-1", region: "eu")
private let us = Origin(replica: "us-1", region: "us")
private let ap = Origin(replica: "ap-1", region: "ap")
private let resolverOrigin = Origin(replica: "eu-2", region: "eu")

private func version(_ value: String, _ clock: [ReplicaID: UInt64], _ origin: Origin, at physical: UInt64) -> Version<String> {
    Version(value: value, clock: VectorClock(clock), origin: origin,
            timestamp: HLCTimestamp(physical: physical, replica: origin.replica))
}

private let now = HLCTimestamp(physical: 9_000, replica: "eu-2")
private let fromEU = version("eu value", ["eu-1": 2, "us-1": 1], eu, at: 200)
private let fromUS = version("us value", ["eu-1": 1, "us-1": 2], us, at: 100)

@Test func test_conflictResolver_orderedVersionsAreNotAConflict() {
    var resolver = ConflictResolver(strategy: LastWriterWinsStrategy<String>(), origin: resolverOrigin)
    let older = version("old", ["eu-1": 1], eu, at: 900)
    let newer = version("new", ["eu-1": 1, "us-1": 1], us, at: 100)
    let result = resolver.reconcile(key: "k", current: [older], incoming: newer, at: now)
    #expect(result.versions == [newer])
    #expect(result.conflict == nil)
    #expect(resolver.auditTrail.isEmpty)
}

@Test func test_conflictResolver_lastWriterWinsKeepsTheNewestWithAJoinedClock() {
    var resolver = ConflictResolver(strategy: LastWriterWinsStrategy<String>(), origin: resolverOrigin)
    let result = resolver.reconcile(key: "k", current: [fromUS], incoming: fromEU, at: now)
    let expected = Version(value: "eu value", clock: VectorClock(["eu-1": 2, "us-1": 2]), origin: eu, timestamp: fromEU.timestamp)
    #expect(result.versions == [expected])
    #expect(result.outcome == .winner(expected))
    #expect(expected.clock.dominates(fromUS.clock))
}

@Test func test_conflictResolver_vectorClockStrategyKeepsSiblingsUntilALaterWrite() {
    var resolver = ConflictResolver(strategy: VectorClockStrategy<String>(), origin: resolverOrigin)
    let siblings = resolver.reconcile(key: "k", current: [fromUS], incoming: fromEU, at: now).versions
    #expect(siblings == [fromUS, fromEU])
    let resolving = version("both seen", ["eu-1": 3, "us-1": 2], eu, at: 300)
    let after = resolver.reconcile(key: "k", current: siblings, incoming: resolving, at: now)
    #expect(after.versions == [resolving])
    #expect(after.conflict == nil)
}

@Test func test_conflictResolver_priorityPrefersReplicaThenRegionThenNewest() {
    let byRegion = PriorityStrategy<String>(regionPriorities: ["us": 10, "eu": 5])
    var resolver = ConflictResolver(strategy: byRegion, origin: resolverOrigin)
    #expect(resolver.reconcile(key: "k", current: [fromEU], incoming: fromUS, at: now).versions.map(\.value) == ["us value"])

    let byReplica = PriorityStrategy<String>(regionPriorities: ["us": 10], replicaPriorities: ["eu-1": 20])
    resolver = ConflictResolver(strategy: byReplica, origin: resolverOrigin)
    #expect(resolver.reconcile(key: "k", current: [fromEU], incoming: fromUS, at: now).versions.map(\.value) == ["eu value"])

    resolver = ConflictResolver(strategy: PriorityStrategy<String>(), origin: resolverOrigin)
    #expect(resolver.reconcile(key: "k", current: [fromUS], incoming: fromEU, at: now).versions.map(\.value) == ["eu value"])
}

@Test func test_conflictResolver_customMergeCombinesEveryConcurrentVersion() {
    let union = CustomMergeStrategy<String>(name: "sorted-union") { versions in
        versions.map(\.value).sorted().joined(separator: "+")
    }
    var resolver = ConflictResolver(strategy: union, origin: resolverOrigin)
    let third = version("ap value", ["ap-1": 1], ap, at: 150)
    let siblings = [fromUS, third]
    let result = resolver.reconcile(key: "k", current: siblings, incoming: fromEU, at: now)
    #expect(result.versions.map(\.value) == ["ap value+eu value+us value"])
    #expect(result.versions.first?.clock == VectorClock(["eu-1": 2, "us-1": 2, "ap-1": 1]))
    #expect(resolver.auditTrail.first?.versions.count == 3)
    #expect(resolver.auditTrail.first?.strategy == "sorted-union")
}

@Test func test_conflictResolver_manualConflictsAreListedAndResolvedByACall() throws {
    var resolver = ConflictResolver(strategy: ManualStrategy<String>(), origin: resolverOrigin)
    let result = resolver.reconcile(key: "cart", current: [fromUS], incoming: fromEU, at: now)
    #expect(result.versions == [fromUS, fromEU])
    #expect(result.outcome == nil)
    let id = try #require(result.conflict)
    #expect(resolver.pendingConflicts.map(\.id) == [id])
    #expect(resolver.pendingConflicts.first?.versions == [fromUS, fromEU])

    let later = HLCTimestamp(physical: 9_500, replica: "eu-2")
    let chosen = try resolver.resolve(id, with: "operator value", at: later)
    #expect(chosen.clock == VectorClock(["eu-1": 2, "us-1": 2, "eu-2": 1]))
    #expect(chosen.clock.compare(to: fromEU.clock) == .after && chosen.clock.compare(to: fromUS.clock) == .after)
    #expect(resolver.pendingConflicts.isEmpty)
    #expect(throws: CRDTError.self) { try resolver.resolve(id, with: "again", at: later) }
}

@Test func test_conflictResolver_auditTrailRecordsVersionsOriginsClocksStrategyAndTime() throws {
    var resolver = ConflictResolver(strategy: ManualStrategy<String>(), origin: resolverOrigin)
    let id = try #require(resolver.reconcile(key: "cart", current: [fromUS], incoming: fromEU, at: now).conflict)
    let later = HLCTimestamp(physical: 9_500, replica: "eu-2")
    let chosen = try resolver.resolve(id, with: "operator value", at: later)

    let trail = resolver.drainAuditTrail()
    #expect(resolver.auditTrail.isEmpty)
    #expect(trail.count == 2)
    let detected = try #require(trail.first)
    #expect(detected.sequence == 1)
    #expect(detected.conflict == id)
    #expect(detected.key == "cart")
    #expect(detected.event == .detected)
    #expect(detected.strategy == "manual")
    #expect(detected.time == now)
    #expect(detected.versions.map(\.origin) == [us, eu])
    #expect(detected.versions.map(\.clock) == [fromUS.clock, fromEU.clock])
    #expect(detected.versions.map(\.value) == ["us value", "eu value"])
    let resolved = try #require(trail.last)
    #expect(resolved.sequence == 2)
    #expect(resolved.event == .resolved(.resolvedManually(chosen)))
    #expect(resolved.time == later)
    #expect(resolved.versions == detected.versions)
}

@Test func test_conflictResolver_laterWriteSupersedesAPendingManualConflict() throws {
    var resolver = ConflictResolver(strategy: ManualStrategy<String>(), origin: resolverOrigin)
    let pending = resolver.reconcile(key: "k", current: [fromUS], incoming: fromEU, at: now)
    let overwrite = version("overwrite", ["eu-1": 3, "us-1": 2], eu, at: 400)
    let result = resolver.reconcile(key: "k", current: pending.versions, incoming: overwrite, at: now)
    #expect(result.versions == [overwrite])
    #expect(resolver.pendingConflicts.isEmpty)
    #expect(resolver.auditTrail.last?.event == .resolved(.superseded(overwrite)))
}

@Test func test_conflictResolver_everyAutomaticResolutionIsAudited() {
    var resolver = ConflictResolver(strategy: LastWriterWinsStrategy<String>(), origin: resolverOrigin)
    let result = resolver.reconcile(key: "k", current: [fromUS], incoming: fromEU, at: now)
    #expect(resolver.auditTrail.map(\.event) == [.detected, .resolved(.winner(result.versions[0]))])
    #expect(resolver.auditTrail.allSatisfy { $0.strategy == "last-write-wins" && $0.versions == [fromUS, fromEU] })
}
