import AegisRaft
import AegisTestKit
import Testing

/// A configuration without pre-vote and check-quorum, for scripted scenarios that
/// need plain Raft.
func plainConfig(electionTimeout: Int = 10) -> RaftConfig {
    var c = RaftConfig(electionTimeout: electionTimeout, heartbeatInterval: 1)
    c.preVote = false
    c.checkQuorum = false
    return c
}

func to(_ ids: NodeID...) -> (RaftMessage) -> Bool { { ids.contains($0.to) } }
func from(_ ids: NodeID...) -> (RaftMessage) -> Bool { { ids.contains($0.from) } }

extension InteractionEnv {
    /// Elects `id` and replicates its first entry everywhere.
    func elect(_ id: NodeID) throws {
        try campaign(id)
        try stabilize()
    }

    func core(_ id: NodeID) throws -> RaftCore { try #require(self[id]) }

    /// The terms of a node's log entries from 1 to its last index.
    func logTerms(_ id: NodeID) throws -> [Term] {
        let log = try core(id).log
        let last = try log.lastIndex()
        guard last > 0 else { return [] }
        return try (1...last).map { try log.term(at: $0) }
    }
}

/// Storage holding entries with the given terms (indexes 1…n) and a hard state.
func storage(terms: [Term], voters: [NodeID], term: Term? = nil) throws -> MemoryStorage {
    let s = MemoryStorage(conf: ConfState(voters: Set(voters)))
    try s.append(terms.enumerated().map { LogEntry(index: LogIndex($0.offset + 1), term: $0.element) })
    try s.setHardState(RaftState(term: term ?? terms.last ?? 0))
    return s
}
