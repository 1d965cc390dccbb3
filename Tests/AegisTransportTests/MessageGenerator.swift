import AegisRaft
import AegisTransport

/// Draws random messages of every kind from a seeded generator, so a failure replays.
struct MessageGenerator {
    var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func u64() -> UInt64 {
        // Mix small values (the common case) with extremes.
        switch int(0...3) {
        case 0: return 0
        case 1: return UInt64.max
        case 2: return UInt64(int(0...1000))
        default: return rng.next()
        }
    }
    mutating func u16() -> UInt16 { UInt16(truncatingIfNeeded: rng.next()) }
    mutating func bool() -> Bool { rng.next() & 1 == 1 }
    mutating func bytes(max: Int = 64) -> [UInt8] { (0..<int(0...max)).map { _ in UInt8.random(in: 0...255, using: &rng) } }

    mutating func string(max: Int = 12) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-_.é日本🙂")
        return String((0..<int(0...max)).map { _ in alphabet[int(0...alphabet.count - 1)] })
    }

    mutating func node() -> NodeID { NodeID(string()) }
    mutating func nodes() -> Set<NodeID> { Set((0..<int(0...5)).map { _ in node() }) }

    mutating func entry() -> LogEntry {
        LogEntry(index: u64(), term: u64(), type: EntryType.allCases[int(0...2)], data: bytes(), timestamp: u64())
    }
    mutating func entries() -> [LogEntry] { (0..<int(0...6)).map { _ in entry() } }

    mutating func confState() -> ConfState {
        ConfState(voters: nodes(), outgoingVoters: nodes(), learners: nodes(), learnersNext: nodes(), autoLeave: bool())
    }

    mutating func raftPayload(_ type: MessageType) -> RaftMessage.Payload? {
        switch type {
        case .voteRequest:
            return .vote(VoteRequest(term: u64(), candidateID: node(), lastLogIndex: u64(), lastLogTerm: u64(),
                                     preVote: bool(), leadershipTransfer: bool()))
        case .voteResponse:
            return .voteResponse(VoteResponse(term: u64(), voteGranted: bool(), voterID: node(), preVote: bool()))
        case .appendEntries:
            return .appendEntries(AppendEntriesRequest(term: u64(), leaderID: node(), prevLogIndex: u64(), prevLogTerm: u64(),
                                                       entries: entries(), leaderCommit: u64()))
        case .appendEntriesResponse:
            return .appendEntriesResponse(AppendEntriesResponse(
                term: u64(), success: bool(), followerID: node(), matchIndex: u64(), rejectedIndex: u64(),
                hintIndex: u64(), hintTerm: u64()))
        case .heartbeat:
            return .heartbeat(HeartbeatRequest(term: u64(), leaderID: node(), commitIndex: u64(), context: u64()))
        case .heartbeatResponse:
            return .heartbeatResponse(HeartbeatResponse(term: u64(), followerID: node(), context: u64()))
        case .installSnapshot:
            return .installSnapshot(InstallSnapshotRequest(
                term: u64(), leaderID: node(), metadata: SnapshotMetadata(index: u64(), term: u64(), confState: confState()),
                offset: u64(), data: bytes(max: 300), done: bool()))
        case .installSnapshotResponse:
            return .installSnapshotResponse(InstallSnapshotResponse(
                term: u64(), followerID: node(), snapshotIndex: u64(), nextOffset: u64(), done: bool(), rejected: bool()))
        case .timeoutNow: return .timeoutNow(term: u64())
        case .readIndex: return .readIndex(term: u64(), context: u64())
        case .readIndexResponse: return .readIndexResponse(term: u64(), context: u64(), index: u64())
        case .forwardedProposal: return .forwardedProposal(term: u64(), entries: entries())
        case .clientRequest, .clientResponse, .peerStatus: return nil
        }
    }

    mutating func payload(_ type: MessageType) -> MessagePayload {
        if let raft = raftPayload(type) { return .raft(raft) }
        if type == .peerStatus {
            let commit = u64()
            var progress: [NodeID: LogIndex] = [:]
            for _ in 0 ..< int(0...4) { progress[node()] = u64() }
            return .peerStatus(PeerStatusReport(term: u64(), commitIndex: commit, appliedIndex: commit / 2,
                                                lastIndex: u64(), progress: progress))
        }
        if type == .clientRequest {
            return .clientRequest(ClientRequest(requestID: u64(), kind: bool() ? .read : .write, command: bytes()))
        }
        if bool() {
            return .clientResponse(ClientResponse(requestID: u64(), outcome: .success(index: u64(), value: bytes())))
        }
        let failure = ClientFailure(code: ClientFailure.Code(rawValue: u16()), message: string(max: 40),
                                    leaderHint: bool() ? node() : nil)
        return .clientResponse(ClientResponse(requestID: u64(), outcome: .failure(failure)))
    }

    mutating func message(_ type: MessageType? = nil) -> Message {
        let kind = type ?? MessageType.allCases[int(0...MessageType.allCases.count - 1)]
        return Message(from: node(), to: node(), payload: payload(kind))
    }
}
