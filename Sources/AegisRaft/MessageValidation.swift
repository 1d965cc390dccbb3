// Every message is checked before the core acts on it (`RaftCore.step`): first on its
// own (`RaftMessage.validate()`), then against this node's state
// (`RaftCore.validateAgainstState(_:)`). A message that fails either check is refused
// with `RaftError.invalidMessage` and has changed nothing: not the term, the log, the
// commit index, the progress of any follower, nor the messages to send.
//
// The checks are exactly what an honest node can never violate, even when the network
// drops, duplicates, delays or reorders messages; anything that can legitimately
// happen (a stale answer, a duplicate chunk, an append from an older term) is left to
// the handlers, which ignore or answer it as Raft requires.

extension RaftMessage {
    /// The largest term or log index a message may carry: 2^62.
    ///
    /// Terms and indexes grow by one per election and per entry; at a billion a
    /// second, reaching 2^62 takes more than a hundred years, so no cluster ever
    /// meets the bound. Refusing anything above it means that `term + 1`, `index + 1`
    /// and `prevLogIndex + entries.count` on validated values can never overflow a
    /// `UInt64`, and that snapshot offsets and sizes always fit in an `Int`.
    public static let maxTermOrIndex: UInt64 = 1 << 62

    /// Checks what can be checked without the receiver's state: terms and indexes in
    /// range (`maxTermOrIndex`), identifiers that agree with the sender, entries of an
    /// append contiguous from `prevLogIndex + 1` with non-decreasing terms no greater
    /// than the message's term, a rejection hint at or below the rejected index,
    /// snapshot offsets and sizes that cannot overflow, and forwarded proposals that
    /// carry only commands.
    ///
    /// Throws `RaftError.invalidMessage` naming the first field at fault.
    public func validate() throws(RaftError) {
        try Self.inRange(term, "term")
        switch payload {
        case .vote(let m):
            try sentBy(m.candidateID, "vote.candidateID")
            try Self.inRange(m.lastLogIndex, "vote.lastLogIndex")
            try Self.check(m.lastLogTerm <= m.term, "vote.lastLogTerm \(m.lastLogTerm) is beyond the vote's term \(m.term)")
        case .voteResponse(let m):
            try sentBy(m.voterID, "voteResponse.voterID")
        case .appendEntries(let m):
            try sentBy(m.leaderID, "append.leaderID")
            try Self.inRange(m.prevLogIndex, "append.prevLogIndex")
            try Self.inRange(m.leaderCommit, "append.leaderCommit")
            try Self.check(m.prevLogTerm <= m.term, "append.prevLogTerm \(m.prevLogTerm) is beyond the append's term \(m.term)")
            try Self.check(m.prevLogIndex > 0 || m.prevLogTerm == 0,
                           "append.prevLogTerm is \(m.prevLogTerm) at index 0 (must be 0)")
            try Self.validateEntries(m.entries, after: m.prevLogIndex, prevTerm: m.prevLogTerm, term: m.term)
        case .appendEntriesResponse(let m):
            try sentBy(m.followerID, "appendResponse.followerID")
            try Self.inRange(m.matchIndex, "appendResponse.matchIndex")
            try Self.inRange(m.rejectedIndex, "appendResponse.rejectedIndex")
            if !m.success {
                // The follower's hint is found at or below the rejected index, in a term
                // at or below the follower's (`RaftCore.handleAppendEntries`).
                try Self.check(m.hintIndex <= m.rejectedIndex,
                               "appendResponse.hintIndex \(m.hintIndex) is beyond the rejected index \(m.rejectedIndex)")
                try Self.check(m.hintTerm <= m.term, "appendResponse.hintTerm \(m.hintTerm) is beyond the response's term \(m.term)")
            }
        case .heartbeat(let m):
            try sentBy(m.leaderID, "heartbeat.leaderID")
            try Self.inRange(m.commitIndex, "heartbeat.commitIndex")
        case .heartbeatResponse(let m):
            try sentBy(m.followerID, "heartbeatResponse.followerID")
            try Self.inRange(m.lastIndex, "heartbeatResponse.lastIndex")
            try Self.inRange(m.heartbeatCommit, "heartbeatResponse.heartbeatCommit")
        case .installSnapshot(let m):
            try sentBy(m.leaderID, "installSnapshot.leaderID")
            try Self.inRange(m.metadata.index, "installSnapshot.metadata.index")
            try Self.check(m.metadata.index > 0, "installSnapshot.metadata.index is 0 (an empty snapshot is never sent)")
            try Self.check(m.metadata.term <= m.term,
                           "installSnapshot.metadata.term \(m.metadata.term) is beyond the message's term \(m.term)")
            try Self.check(!m.metadata.confState.voters.isEmpty, "installSnapshot.metadata has no voters")
            try Self.inRange(m.offset, "installSnapshot.offset")
            try Self.check(UInt64(m.data.count) <= Self.maxTermOrIndex - m.offset,
                           "installSnapshot.offset \(m.offset) + \(m.data.count) bytes is out of range")
        case .installSnapshotResponse(let m):
            try sentBy(m.followerID, "snapshotResponse.followerID")
            try Self.inRange(m.snapshotIndex, "snapshotResponse.snapshotIndex")
            try Self.inRange(m.nextOffset, "snapshotResponse.nextOffset")
        case .timeoutNow, .readIndex:
            break
        case .readIndexResponse(_, _, let index):
            try Self.inRange(index, "readIndexResponse.index")
        case .forwardedProposal(_, let entries):
            // A follower forwards what `propose` made: commands. Configuration changes
            // go through `proposeConfChange` on the leader, which validates them.
            for e in entries where e.type != .command {
                throw .invalidMessage("forwardedProposal carries a \(e.type) entry (only commands may be forwarded)")
            }
        }
    }

    /// Entries of an append: contiguous from `prevIndex + 1`, terms from `prevTerm`
    /// up, never decreasing (a leader's log is ordered by term, Raft §5.3) and never
    /// beyond the leader's term.
    static func validateEntries(_ entries: [LogEntry], after prevIndex: LogIndex, prevTerm: Term,
                                term: Term) throws(RaftError) {
        guard !entries.isEmpty else { return }
        // prevIndex <= maxTermOrIndex, so neither side of this can overflow.
        try check(UInt64(entries.count) <= maxTermOrIndex - prevIndex,
                  "append of \(entries.count) entries after \(prevIndex) goes beyond index \(maxTermOrIndex)")
        var expected = prevIndex + 1
        var previousTerm = prevTerm
        for (k, e) in entries.enumerated() {
            guard e.index == expected else {
                throw .invalidMessage("append entry \(k) has index \(e.index), expected \(expected): entries must be "
                                      + "contiguous and follow prevLogIndex \(prevIndex)")
            }
            guard e.term >= 1, e.term >= previousTerm else {
                throw .invalidMessage("append entry \(e.index) has term \(e.term), below the term \(previousTerm) before it")
            }
            guard e.term <= term else {
                throw .invalidMessage("append entry \(e.index) has term \(e.term), beyond the append's term \(term)")
            }
            previousTerm = e.term
            expected += 1
        }
    }

    /// The identifier a payload names as its sender must be the message's sender.
    private func sentBy(_ named: NodeID, _ field: String) throws(RaftError) {
        if named != from { throw .invalidMessage("\(field) \(named) is not the sender \(from)") }
    }

    private static func inRange(_ value: UInt64, _ field: String) throws(RaftError) {
        if value > maxTermOrIndex { throw .invalidMessage("\(field) \(value) is beyond the maximum \(maxTermOrIndex)") }
    }

    private static func check(_ condition: Bool, _ why: @autoclosure () -> String) throws(RaftError) {
        if !condition { throw .invalidMessage(why()) }
    }
}

extension RaftCore {
    /// Checks a message against this node's state, after `RaftMessage.validate()`.
    /// Only what an honest sender can never produce is refused:
    /// - an append answer, to this leader in its term, whose match or rejected index
    ///   lies beyond the leader's last index (the leader never sent such an index);
    /// - a snapshot answer, to this leader in its term, beyond the snapshot it sends.
    ///
    /// A heartbeat whose commit index lies beyond this node's last index is *not*
    /// refused: an honest leader sends one to a node that lost acknowledged entries (a
    /// wiped disk). Refusing it would leave the node without a leader, campaigning; it
    /// is handled instead (`handleHeartbeat`: no commit, and the leader is told).
    func validateAgainstState(_ message: RaftMessage) throws(RaftError) {
        switch message.payload {
        case .appendEntriesResponse(let m) where role == .leader && m.term == term:
            let last = lastIndexOrZero
            if m.success {
                if m.matchIndex > last {
                    throw .invalidMessage("appendResponse.matchIndex \(m.matchIndex) from \(message.from) is beyond "
                                          + "the leader's last index \(last)")
                }
            } else if m.rejectedIndex > last {
                throw .invalidMessage("appendResponse.rejectedIndex \(m.rejectedIndex) from \(message.from) is beyond "
                                      + "the leader's last index \(last)")
            }
        case .installSnapshotResponse(let m) where role == .leader && m.term == term:
            guard let pr = tracker.progress[message.from], pr.state == .snapshot, pr.pendingSnapshot == m.snapshotIndex,
                  let snapshot = pr.snapshotInTransfer else { return }
            if m.nextOffset > UInt64(snapshot.data.count) {
                throw .invalidMessage("snapshotResponse.nextOffset \(m.nextOffset) from \(message.from) is beyond the "
                                      + "snapshot's \(snapshot.data.count) bytes")
            }
        default:
            break
        }
    }

    /// The last log index, or 0 if the storage cannot say (it then fails elsewhere).
    var lastIndexOrZero: LogIndex { (try? log.lastIndex()) ?? 0 }
}

extension UInt64 {
    /// `self + 1`, or `.max` at the top: for arithmetic on values that came from a
    /// message, where a trap would let a peer stop the node.
    @inline(__always) var saturatingSuccessor: UInt64 { self == .max ? .max : self + 1 }

    /// `self - 1`, or 0 at the bottom.
    @inline(__always) var saturatingPredecessor: UInt64 { self == 0 ? 0 : self - 1 }
}
