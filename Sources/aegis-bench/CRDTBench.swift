import AegisCRDT
import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `aegis-bench crdt`: merges per second and encoded size of each AegisCRDT type at
/// realistic sizes. Prints its setup first; with `--json`, one JSON object per scenario.
struct CRDTBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crdt",
        abstract: "Merge throughput and encoded size of vector clocks and CRDTs.")

    @Flag(help: "Print one JSON object per scenario instead of a table.")
    var json = false

    @Option(help: "Scale every scenario's iteration count by this factor.")
    var scale: Double = 1.0

    func run() throws {
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let scenarios = try CRDTScenarios.all()
        if json {
            print(#"{"bench":"crdt","setup":{"cores":\#(cores),"build":"\#(buildMode)","scenarios":\#(scenarios.count)}}"#)
        } else {
            print("aegis-bench crdt — machine cores: \(cores), build: \(buildMode), scenarios: \(scenarios.count)")
            print("each scenario merges two diverged replica states (or a delta into a state) repeatedly")
            print(pad("scenario", 26) + pad("size", 26) + pad("iterations", 12) + pad("merges/s", 14) + "encoded bytes")
        }
        for scenario in scenarios {
            let iterations = max(1, Int(Double(scenario.iterations) * scale))
            let result = scenario.measure(iterations)
            if json {
                print(#"{"bench":"crdt","scenario":"\#(scenario.name)","type":"\#(scenario.type)","size":"\#(scenario.size)","iterations":\#(iterations),"seconds":\#(format(result.seconds, 4)),"merges_per_sec":\#(Int(result.perSecond)),"encoded_bytes":\#(scenario.encodedBytes),"cores":\#(cores)}"#)
            } else {
                print(pad(scenario.name, 26) + pad(scenario.size, 26) + pad("\(iterations)", 12)
                      + pad("\(Int(result.perSecond))", 14) + "\(scenario.encodedBytes)")
            }
        }
    }

}

/// One measured merge.
struct CRDTScenario {
    let name: String
    let type: String
    let size: String
    let iterations: Int
    let encodedBytes: Int
    /// Performs one merge and returns something derived from the result, so the merge
    /// cannot be optimised away.
    let merge: () -> Int

    func measure(_ iterations: Int) -> (seconds: Double, perSecond: Double) {
        var sink = 0
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for _ in 0..<iterations { sink &+= merge() }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        if sink == Int.min { print("unreachable sink \(sink)") }
        return (seconds, Double(iterations) / max(seconds, 1e-9))
    }
}

/// Builds the scenarios: two replicas that share most of their state and diverged by a
/// few concurrent updates each, as after a short partition.
enum CRDTScenarios {
    static let replicas = (0..<16).map { ReplicaID("node-\($0)") }

    static func all() throws -> [CRDTScenario] {
        var generator = BenchRandom(seed: 42)
        return [
            try vectorClock(&generator), try gCounter(&generator), try pnCounter(&generator),
            try lwwRegister(), try mvRegister(), try orSet(elements: 10_000), try orSetDelta(elements: 10_000),
            try orMap(keys: 1_000),
        ]
    }

    static func scenario<State: StateBasedCRDT>(
        _ name: String, _ size: String, iterations: Int, _ left: State, _ right: State, measure: @escaping (State) -> Int
    ) -> CRDTScenario {
        let joined = left.merged(with: right)
        return CRDTScenario(name: name, type: "\(State.self)", size: size, iterations: iterations,
                            encodedBytes: joined.encoded().count) {
            var state = left
            state.merge(right)
            return measure(state)
        }
    }

    static func vectorClock(_ generator: inout BenchRandom) throws -> CRDTScenario {
        var left = VectorClock()
        var right = VectorClock()
        for replica in replicas {
            for _ in 0..<(1 + generator.next(below: 1_000)) { try left.increment(replica) }
            for _ in 0..<(1 + generator.next(below: 1_000)) { try right.increment(replica) }
        }
        return scenario("vector-clock", "16 nodes", iterations: 200_000, left, right) { $0.entries.count }
    }

    static func gCounter(_ generator: inout BenchRandom) throws -> CRDTScenario {
        var left = GCounter()
        var right = GCounter()
        for replica in replicas {
            try left.increment(by: UInt64(1 + generator.next(below: 10_000)), at: replica)
            try right.increment(by: UInt64(1 + generator.next(below: 10_000)), at: replica)
        }
        return scenario("g-counter", "16 replicas", iterations: 200_000, left, right) { Int($0.value & 0xFF) }
    }

    static func pnCounter(_ generator: inout BenchRandom) throws -> CRDTScenario {
        var left = PNCounter()
        var right = PNCounter()
        for replica in replicas {
            try left.add(Int64(generator.next(below: 20_000)) - 10_000, at: replica)
            try right.add(Int64(generator.next(below: 20_000)) - 10_000, at: replica)
            try right.add(Int64(generator.next(below: 20_000)) - 10_000, at: replica)
        }
        return scenario("pn-counter", "16 replicas", iterations: 100_000, left, right) { Int($0.value & 0xFF) }
    }

    static func lwwRegister() throws -> CRDTScenario {
        let value = String(repeating: "v", count: 64)
        let left = LWWRegister(value, at: HLCTimestamp(physical: 1_700_000_000_000, logical: 3, replica: replicas[0]))
        let right = LWWRegister(value + "!", at: HLCTimestamp(physical: 1_700_000_000_001, logical: 0, replica: replicas[1]))
        return scenario("lww-register", "64-byte value", iterations: 500_000, left, right) { $0.value?.utf8.count ?? 0 }
    }

    static func mvRegister() throws -> CRDTScenario {
        var base = MVRegister<String>()
        let value = String(repeating: "v", count: 64)
        try base.write(value, at: replicas[0], timestamp: HLCTimestamp(physical: 1, replica: replicas[0]))
        var left = base
        var right = base
        try left.write(value + "L", at: replicas[1], timestamp: HLCTimestamp(physical: 2, replica: replicas[1]))
        try right.write(value + "R", at: replicas[2], timestamp: HLCTimestamp(physical: 2, replica: replicas[2]))
        var third = base
        try third.write(value + "T", at: replicas[3], timestamp: HLCTimestamp(physical: 3, replica: replicas[3]))
        right.merge(third)
        return scenario("mv-register", "3 siblings, 64-byte values", iterations: 100_000, left, right) { $0.siblings.count }
    }

    /// Two replicas of a set of `elements` that each made 100 further adds and 100
    /// removes concurrently.
    static func divergedORSets(elements: Int) throws -> (ORSet<String>, ORSet<String>) {
        var shared = ORSet<String>()
        for index in 0..<elements { try shared.insert("element-\(index)", at: replicas[index % replicas.count]) }
        var left = shared
        var right = shared
        for index in 0..<100 {
            try left.insert("left-\(index)", at: replicas[0])
            left.remove("element-\(index)")
            try right.insert("right-\(index)", at: replicas[1])
            right.remove("element-\(elements - 1 - index)")
        }
        return (left, right)
    }

    static func orSet(elements: Int) throws -> CRDTScenario {
        let (left, right) = try divergedORSets(elements: elements)
        return scenario("or-set", "\(elements) elements, 16 replicas", iterations: 100, left, right) { $0.count }
    }

    static func orSetDelta(elements: Int) throws -> CRDTScenario {
        var (left, _) = try divergedORSets(elements: elements)
        var other = left
        let delta = try other.insert("one-more", at: replicas[5])
        left.merge(ORSet())
        return scenario("or-set-delta", "1-add delta into \(elements)", iterations: 100, left, delta) { $0.count }
    }

    static func orMap(keys: Int) throws -> CRDTScenario {
        var shared = ORMap<String, PNCounter>()
        for index in 0..<keys {
            for replica in replicas.prefix(4) {
                try shared.update("key-\(index)", at: replica) { counter throws(CRDTError) in
                    try counter.add(Int64(index % 7) - 3, at: replica)
                }
            }
        }
        var left = shared
        var right = shared
        for index in 0..<50 {
            try left.update("key-\(index)", at: replicas[0]) { counter throws(CRDTError) in try counter.increment(at: replicas[0]) }
            try right.update("key-\(index * 3)", at: replicas[1]) { counter throws(CRDTError) in try counter.decrement(at: replicas[1]) }
            right.remove("key-\(keys - 1 - index)")
        }
        return scenario("or-map", "\(keys) keys of PN-counters", iterations: 100, left, right) { $0.count }
    }
}

/// A small deterministic generator so every run builds the same states.
struct BenchRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next(below bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(bound))
    }
}

private func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}

private func format(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return "\(rounded)"
}
