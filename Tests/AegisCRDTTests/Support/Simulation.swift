import AegisCRDT
import PropertyBased
import Testing

/// A CRDT under simulation: how to make a random update, and the sequential
/// specification its converged state must match.
protocol ReplicatedModel {
    associatedtype State: StateBasedCRDT
    associatedtype Operation

    /// Applies a random update at `replica` to `state`; returns it and its delta.
    static func randomOperation(
        _ state: inout State, replica: ReplicaID, timestamp: HLCTimestamp, rng: inout SplitMix64
    ) throws -> (Operation, delta: State)

    /// Checks a converged state against the specification computed from the log.
    static func checkSpecification(_ state: State, log: [LoggedOperation<Operation>])
}

/// One update as the specification sees it.
struct LoggedOperation<Operation> {
    /// Position in the log (global order of issue).
    let id: Int
    let replica: Int
    let operation: Operation
    let timestamp: HLCTimestamp
    /// The updates whose effects were in the issuing replica's state when it issued
    /// this one (received by delta or by full-state sync, or its own).
    let observed: Set<Int>
}

extension Array {
    /// The operations that no later operation chosen by `related` observed.
    func unobserved<Operation>(
        where related: (Operation, Operation) -> Bool
    ) -> [LoggedOperation<Operation>] where Element == LoggedOperation<Operation> {
        filter { candidate in
            !contains { other in
                other.id != candidate.id && other.observed.contains(candidate.id)
                    && related(candidate.operation, other.operation)
            }
        }
    }
}

/// Replicas exchanging deltas and full states over a network that delays, reorders
/// and duplicates messages, driven by one seeded generator.
struct Simulation<Model: ReplicatedModel> {
    struct Message {
        let to: Int
        let state: Model.State
        let effects: Set<Int>
    }

    let replicas: [ReplicaID]
    private(set) var states: [Model.State]
    private var effects: [Set<Int>]
    private var clocks: [HybridLogicalClock]
    private var offsets: [UInt64]
    private var physicalTime: UInt64 = 1_000_000
    private var inFlight: [Message] = []
    private(set) var log: [LoggedOperation<Model.Operation>] = []
    private var rng: SplitMix64

    init(replicaCount: Int, seed: UInt64) {
        replicas = (0..<replicaCount).map { ReplicaID("r\($0)") }
        states = Array(repeating: Model.State(), count: replicaCount)
        effects = Array(repeating: [], count: replicaCount)
        clocks = replicas.map { HybridLogicalClock(replica: $0, skewPolicy: .flag) }
        var generator = SplitMix64(seed: seed)
        offsets = (0..<replicaCount).map { _ in UInt64.random(in: 0...200, using: &generator) }
        rng = generator
    }

    /// Runs `steps` random steps: updates, full-state syncs, deliveries.
    mutating func run(steps: Int) throws {
        for _ in 0..<steps { try step() }
    }

    /// Delivers everything still in flight, in random order (with duplicates).
    mutating func deliverAll() {
        while !inFlight.isEmpty { deliverOne() }
    }

    private mutating func step() throws {
        physicalTime += UInt64.random(in: 0...3, using: &rng)
        let roll = Int.random(in: 0..<100, using: &rng)
        if roll < 50 {
            try update(at: Int.random(in: 0..<replicas.count, using: &rng))
        } else if roll < 60 {
            let from = Int.random(in: 0..<replicas.count, using: &rng)
            let to = Int.random(in: 0..<replicas.count, using: &rng)
            if from != to { inFlight.append(Message(to: to, state: states[from], effects: effects[from])) }
        } else if !inFlight.isEmpty {
            deliverOne()
        }
    }

    private mutating func update(at index: Int) throws {
        // Wall clocks are skewed per replica and sometimes jump back.
        if rng.chance(5) { offsets[index] = offsets[index] / 2 }
        let timestamp = try clocks[index].now(physicalTime: physicalTime + offsets[index])
        let before = states[index]
        let (operation, delta) = try Model.randomOperation(
            &states[index], replica: replicas[index], timestamp: timestamp, rng: &rng)
        #expect(before.isIncluded(in: states[index]), "an update moved the state down")
        #expect(before.merged(with: delta) == states[index], "the delta does not reproduce the update")
        let id = log.count
        log.append(LoggedOperation(id: id, replica: index, operation: operation, timestamp: timestamp,
                                   observed: effects[index]))
        effects[index].insert(id)
        for to in replicas.indices where to != index {
            let copies = rng.chance(20) ? 2 : 1
            for _ in 0..<copies { inFlight.append(Message(to: to, state: delta, effects: [id])) }
        }
    }

    private mutating func deliverOne() {
        let position = Int.random(in: 0..<inFlight.count, using: &rng)
        let message = rng.chance(10) ? inFlight[position] : inFlight.remove(at: position)
        states[message.to].merge(message.state)
        effects[message.to].formUnion(message.effects)
    }
}

extension ReplicatedModel {
    /// Three replica states of one random run, for the join laws.
    static func sampleStates(seed: UInt64, steps: Int) throws -> (State, State, State) {
        var simulation = Simulation<Self>(replicaCount: 3, seed: seed)
        try simulation.run(steps: steps)
        return (simulation.states[0], simulation.states[1], simulation.states[2])
    }

    /// Runs a random scenario to quiescence and checks convergence and specification.
    static func checkConvergence(seed: UInt64, replicaCount: Int, steps: Int) throws {
        var simulation = Simulation<Self>(replicaCount: replicaCount, seed: seed)
        try simulation.run(steps: steps)
        simulation.deliverAll()
        let first = simulation.states[0]
        for (index, state) in simulation.states.enumerated() {
            #expect(state == first, "replica \(index) did not converge")
            #expect(state.encoded() == first.encoded(), "replica \(index) encodes differently")
        }
        checkSpecification(first, log: simulation.log)
    }
}

/// Checks the join-semilattice laws and the encoding on three states.
func checkJoinLaws<State: StateBasedCRDT>(_ a: State, _ b: State, _ c: State) throws {
    #expect(a.merged(with: b) == b.merged(with: a), "join is not commutative")
    #expect(a.merged(with: b).encoded() == b.merged(with: a).encoded(), "equal joins encode differently")
    #expect(a.merged(with: b).merged(with: c) == a.merged(with: b.merged(with: c)), "join is not associative")
    #expect(a.merged(with: a) == a, "join is not idempotent")
    #expect(a.isIncluded(in: a.merged(with: b)), "join is not an upper bound")
    #expect(try State(encoded: a.encoded()) == a, "decode(encode(a)) != a")
}

/// The number of generated cases for every law and convergence property.
let propertyCases = 1_000

/// Property: the join laws and inflation hold for states of random runs.
func joinLawsProperty<Model: ReplicatedModel>(_ model: Model.Type, sourceLocation: SourceLocation = #_sourceLocation) async {
    await propertyCheck(count: propertyCases, input: Gen.uint64(in: .min ... .max), Gen.int(in: 0...60),
                        perform: { seed, steps in
        let (a, b, c) = try Model.sampleStates(seed: seed, steps: steps)
        try checkJoinLaws(a, b, c)
    }, sourceLocation: sourceLocation)
}

/// Property: 3–5 replicas converge to the specification under a faulty network.
func convergenceProperty<Model: ReplicatedModel>(_ model: Model.Type, sourceLocation: SourceLocation = #_sourceLocation) async {
    await propertyCheck(count: propertyCases, input: Gen.uint64(in: .min ... .max), Gen.int(in: 3...5), Gen.int(in: 0...80),
                        perform: { seed, replicaCount, steps in
        try Model.checkConvergence(seed: seed, replicaCount: replicaCount, steps: steps)
    }, sourceLocation: sourceLocation)
}
