public import AegisRaft
public import NIOCore

// The bodies of Raft payloads. Fields are written in declaration order, integers
// big-endian and fixed width, booleans as one byte (0 or 1).
extension ByteBuffer {
    /// Writes the body of a Raft payload (its kind is written by the frame).
    public mutating func writeRaftPayload(_ payload: RaftMessage.Payload) {
        switch payload {
        case .vote(let m): writeVoteRequest(m)
        case .voteResponse(let m): writeVoteResponse(m)
        case .appendEntries(let m): writeAppendEntries(m)
        case .appendEntriesResponse(let m): writeAppendEntriesResponse(m)
        case .heartbeat(let m): writeHeartbeat(m)
        case .heartbeatResponse(let m): writeHeartbeatResponse(m)
        case .installSnapshot(let m): writeInstallSnapshot(m)
        case .installSnapshotResponse(let m): writeInstallSnapshotResponse(m)
        case .timeoutNow(let term):
            writeInteger(term)
        case .readIndex(let term, let context):
            writeInteger(term)
            writeInteger(context)
        case .readIndexResponse(let term, let context, let index):
            writeInteger(term)
            writeInteger(context)
            writeInteger(index)
        case .forwardedProposal(let term, let entries):
            writeInteger(term)
            writeLogEntries(entries)
        }
    }

    /// Reads the body of a Raft payload of kind `type`. Returns `nil` when `type` is
    /// not a Raft kind; throws on malformed bytes.
    public mutating func readRaftPayload(type: MessageType) throws(CodecError) -> RaftMessage.Payload? {
        switch type {
        case .voteRequest: return .vote(try readVoteRequest())
        case .voteResponse: return .voteResponse(try readVoteResponse())
        case .appendEntries: return .appendEntries(try readAppendEntries())
        case .appendEntriesResponse: return .appendEntriesResponse(try readAppendEntriesResponse())
        case .heartbeat: return .heartbeat(try readHeartbeat())
        case .heartbeatResponse: return .heartbeatResponse(try readHeartbeatResponse())
        case .installSnapshot: return .installSnapshot(try readInstallSnapshot())
        case .installSnapshotResponse: return .installSnapshotResponse(try readInstallSnapshotResponse())
        case .timeoutNow:
            return .timeoutNow(term: try readUInt64("timeoutNow.term"))
        case .readIndex:
            let term = try readUInt64("readIndex.term")
            return .readIndex(term: term, context: try readUInt64("readIndex.context"))
        case .readIndexResponse:
            let term = try readUInt64("readIndexResponse.term")
            let context = try readUInt64("readIndexResponse.context")
            return .readIndexResponse(term: term, context: context, index: try readUInt64("readIndexResponse.index"))
        case .forwardedProposal:
            let term = try readUInt64("forwardedProposal.term")
            return .forwardedProposal(term: term, entries: try readLogEntries())
        case .clientRequest, .clientResponse, .peerStatus:
            return nil
        }
    }

    /// Writes a vote request.
    public mutating func writeVoteRequest(_ m: VoteRequest) {
        writeInteger(m.term)
        writeNodeID(m.candidateID)
        writeInteger(m.lastLogIndex)
        writeInteger(m.lastLogTerm)
        writeBool(m.preVote)
        writeBool(m.leadershipTransfer)
    }

    /// Reads a vote request.
    public mutating func readVoteRequest() throws(CodecError) -> VoteRequest {
        VoteRequest(
            term: try readUInt64("vote.term"),
            candidateID: try readNodeID("vote.candidateID"),
            lastLogIndex: try readUInt64("vote.lastLogIndex"),
            lastLogTerm: try readUInt64("vote.lastLogTerm"),
            preVote: try readBool("vote.preVote"),
            leadershipTransfer: try readBool("vote.leadershipTransfer"))
    }

    /// Writes a vote response.
    public mutating func writeVoteResponse(_ m: VoteResponse) {
        writeInteger(m.term)
        writeBool(m.voteGranted)
        writeNodeID(m.voterID)
        writeBool(m.preVote)
    }

    /// Reads a vote response.
    public mutating func readVoteResponse() throws(CodecError) -> VoteResponse {
        VoteResponse(
            term: try readUInt64("voteResponse.term"),
            voteGranted: try readBool("voteResponse.voteGranted"),
            voterID: try readNodeID("voteResponse.voterID"),
            preVote: try readBool("voteResponse.preVote"))
    }

    /// Writes an append request with its entries.
    public mutating func writeAppendEntries(_ m: AppendEntriesRequest) {
        writeInteger(m.term)
        writeNodeID(m.leaderID)
        writeInteger(m.prevLogIndex)
        writeInteger(m.prevLogTerm)
        writeInteger(m.leaderCommit)
        writeLogEntries(m.entries)
    }

    /// Reads an append request.
    public mutating func readAppendEntries() throws(CodecError) -> AppendEntriesRequest {
        let term = try readUInt64("append.term")
        let leaderID = try readNodeID("append.leaderID")
        let prevLogIndex = try readUInt64("append.prevLogIndex")
        let prevLogTerm = try readUInt64("append.prevLogTerm")
        let leaderCommit = try readUInt64("append.leaderCommit")
        let entries = try readLogEntries()
        return AppendEntriesRequest(term: term, leaderID: leaderID, prevLogIndex: prevLogIndex,
                                    prevLogTerm: prevLogTerm, entries: entries, leaderCommit: leaderCommit)
    }

    /// Writes an append response.
    public mutating func writeAppendEntriesResponse(_ m: AppendEntriesResponse) {
        writeInteger(m.term)
        writeBool(m.success)
        writeNodeID(m.followerID)
        writeInteger(m.matchIndex)
        writeInteger(m.rejectedIndex)
        writeInteger(m.hintIndex)
        writeInteger(m.hintTerm)
    }

    /// Reads an append response.
    public mutating func readAppendEntriesResponse() throws(CodecError) -> AppendEntriesResponse {
        AppendEntriesResponse(
            term: try readUInt64("appendResponse.term"),
            success: try readBool("appendResponse.success"),
            followerID: try readNodeID("appendResponse.followerID"),
            matchIndex: try readUInt64("appendResponse.matchIndex"),
            rejectedIndex: try readUInt64("appendResponse.rejectedIndex"),
            hintIndex: try readUInt64("appendResponse.hintIndex"),
            hintTerm: try readUInt64("appendResponse.hintTerm"))
    }

    /// Writes a heartbeat.
    public mutating func writeHeartbeat(_ m: HeartbeatRequest) {
        writeInteger(m.term)
        writeNodeID(m.leaderID)
        writeInteger(m.commitIndex)
        writeInteger(m.context)
    }

    /// Reads a heartbeat.
    public mutating func readHeartbeat() throws(CodecError) -> HeartbeatRequest {
        HeartbeatRequest(
            term: try readUInt64("heartbeat.term"),
            leaderID: try readNodeID("heartbeat.leaderID"),
            commitIndex: try readUInt64("heartbeat.commitIndex"),
            context: try readUInt64("heartbeat.context"))
    }

    /// Writes a heartbeat response.
    public mutating func writeHeartbeatResponse(_ m: HeartbeatResponse) {
        writeInteger(m.term)
        writeNodeID(m.followerID)
        writeInteger(m.context)
        writeBool(m.requestsAppend)
        writeInteger(m.lastIndex)
        writeInteger(m.heartbeatCommit)
    }

    /// Reads a heartbeat response.
    public mutating func readHeartbeatResponse() throws(CodecError) -> HeartbeatResponse {
        HeartbeatResponse(
            term: try readUInt64("heartbeatResponse.term"),
            followerID: try readNodeID("heartbeatResponse.followerID"),
            context: try readUInt64("heartbeatResponse.context"),
            requestsAppend: try readBool("heartbeatResponse.requestsAppend"),
            lastIndex: try readUInt64("heartbeatResponse.lastIndex"),
            heartbeatCommit: try readUInt64("heartbeatResponse.heartbeatCommit"))
    }

    /// Writes snapshot metadata: index, term, then the configuration.
    public mutating func writeSnapshotMetadata(_ m: SnapshotMetadata) {
        writeInteger(m.index)
        writeInteger(m.term)
        writeNodeSet(m.confState.voters)
        writeNodeSet(m.confState.outgoingVoters)
        writeNodeSet(m.confState.learners)
        writeNodeSet(m.confState.learnersNext)
        writeBool(m.confState.autoLeave)
    }

    /// Reads snapshot metadata.
    public mutating func readSnapshotMetadata() throws(CodecError) -> SnapshotMetadata {
        let index = try readUInt64("snapshot.index")
        let term = try readUInt64("snapshot.term")
        let confState = ConfState(
            voters: try readNodeSet("confState.voters"),
            outgoingVoters: try readNodeSet("confState.outgoingVoters"),
            learners: try readNodeSet("confState.learners"),
            learnersNext: try readNodeSet("confState.learnersNext"),
            autoLeave: try readBool("confState.autoLeave"))
        return SnapshotMetadata(index: index, term: term, confState: confState)
    }

    /// Writes a snapshot chunk.
    public mutating func writeInstallSnapshot(_ m: InstallSnapshotRequest) {
        writeInteger(m.term)
        writeNodeID(m.leaderID)
        writeSnapshotMetadata(m.metadata)
        writeInteger(m.offset)
        writeBool(m.done)
        writeLengthPrefixedBytes(m.data)
    }

    /// Reads a snapshot chunk.
    public mutating func readInstallSnapshot() throws(CodecError) -> InstallSnapshotRequest {
        let term = try readUInt64("installSnapshot.term")
        let leaderID = try readNodeID("installSnapshot.leaderID")
        let metadata = try readSnapshotMetadata()
        let offset = try readUInt64("installSnapshot.offset")
        let done = try readBool("installSnapshot.done")
        let data = try readLengthPrefixedBytes("installSnapshot.data")
        return InstallSnapshotRequest(term: term, leaderID: leaderID, metadata: metadata,
                                      offset: offset, data: data, done: done)
    }

    /// Writes a snapshot chunk's answer.
    public mutating func writeInstallSnapshotResponse(_ m: InstallSnapshotResponse) {
        writeInteger(m.term)
        writeNodeID(m.followerID)
        writeInteger(m.snapshotIndex)
        writeInteger(m.nextOffset)
        writeBool(m.done)
        writeBool(m.rejected)
    }

    /// Reads a snapshot chunk's answer.
    public mutating func readInstallSnapshotResponse() throws(CodecError) -> InstallSnapshotResponse {
        InstallSnapshotResponse(
            term: try readUInt64("snapshotResponse.term"),
            followerID: try readNodeID("snapshotResponse.followerID"),
            snapshotIndex: try readUInt64("snapshotResponse.snapshotIndex"),
            nextOffset: try readUInt64("snapshotResponse.nextOffset"),
            done: try readBool("snapshotResponse.done"),
            rejected: try readBool("snapshotResponse.rejected"))
    }
}
