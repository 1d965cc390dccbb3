/// One membership operation.
public enum ConfChangeType: UInt8, Sendable, Hashable {
    /// Adds a voter, or promotes a learner to voter.
    case addVoter = 0
    /// Adds a learner (non-voting member), or demotes a voter.
    case addLearner = 1
    /// Removes a member.
    case removeNode = 2
}

/// One membership operation on one node.
public struct ConfChangeSingle: Sendable, Hashable {
    /// The operation.
    public var type: ConfChangeType
    /// The node it applies to.
    public var node: NodeID

    /// Creates an operation.
    public init(_ type: ConfChangeType, _ node: NodeID) {
        self.type = type
        self.node = node
    }
}

/// A membership change, replicated as a `.configChange` log entry and applied when
/// that entry is applied.
///
/// A change that alters at most one voter is applied directly (the single-server
/// case, Raft thesis §4.1). Anything larger goes through joint consensus (Raft §6):
/// the cluster first runs under `C_old,new`, where decisions need a majority of both
/// voter sets, then leaves it with an empty change, which the leader proposes on its
/// own when `autoLeave` is set.
public struct ConfChange: Sendable, Hashable {
    /// The operations; empty to leave a joint configuration.
    public var changes: [ConfChangeSingle]
    /// Force joint consensus even for a single-voter change.
    public var forceJoint: Bool
    /// Leave the joint configuration automatically (the default).
    public var autoLeave: Bool
    /// Opaque application data carried with the change (for example node addresses).
    public var context: [UInt8]

    /// Creates a change.
    public init(_ changes: [ConfChangeSingle], forceJoint: Bool = false, autoLeave: Bool = true, context: [UInt8] = []) {
        self.changes = changes
        self.forceJoint = forceJoint
        self.autoLeave = autoLeave
        self.context = context
    }

    /// The change that leaves a joint configuration.
    public static let leaveJoint = ConfChange([])

    /// `true` if this change leaves a joint configuration.
    public var isLeaveJoint: Bool { changes.isEmpty }

    /// Computes the configuration that results from applying this change to `current`.
    public func applied(to current: ConfState) throws(RaftError) -> ConfState {
        var next = current
        if isLeaveJoint {
            guard current.isJoint else { throw .invalidConfigChange("not in a joint configuration") }
            next.learners.formUnion(next.learnersNext)
            next.learnersNext = []
            next.outgoingVoters = []
            next.autoLeave = false
            return next
        }
        if current.isJoint { throw .invalidConfigChange("a joint configuration must be left first") }
        // From an empty configuration (bootstrap) the voters are simply set.
        let joint = !current.voters.isEmpty && (forceJoint || votersChanged(from: current) > 1)
        if joint {
            next.outgoingVoters = current.voters
            next.autoLeave = autoLeave
        }
        for change in changes {
            let node = change.node
            switch change.type {
            case .addVoter:
                next.learners.remove(node)
                next.learnersNext.remove(node)
                next.voters.insert(node)
            case .addLearner:
                next.voters.remove(node)
                next.learners.remove(node)
                next.learnersNext.remove(node)
                // A voter of the outgoing half stays a voter until the joint config is left.
                if next.outgoingVoters.contains(node) { next.learnersNext.insert(node) } else { next.learners.insert(node) }
            case .removeNode:
                next.voters.remove(node)
                next.learners.remove(node)
                next.learnersNext.remove(node)
            }
        }
        if next.voters.isEmpty { throw .invalidConfigChange("the change removes every voter") }
        return next
    }

    /// How many voters the change adds or removes.
    private func votersChanged(from current: ConfState) -> Int {
        var voters = current.voters
        for change in changes {
            switch change.type {
            case .addVoter: voters.insert(change.node)
            case .addLearner, .removeNode: voters.remove(change.node)
            }
        }
        return voters.symmetricDifference(current.voters).count
    }

    // MARK: Encoding

    /// Encodes the change for a log entry: version 1, flags, count, then each change
    /// (type, id length, id UTF-8), then the context.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = [1, (forceJoint ? 1 : 0) | (autoLeave ? 2 : 0)]
        appendUInt32(UInt32(changes.count), to: &out)
        for change in changes {
            out.append(change.type.rawValue)
            let bytes = Array(change.node.rawValue.utf8)
            appendUInt32(UInt32(bytes.count), to: &out)
            out.append(contentsOf: bytes)
        }
        appendUInt32(UInt32(context.count), to: &out)
        out.append(contentsOf: context)
        return out
    }

    /// Decodes a change; throws on malformed bytes.
    public init(decoding bytes: [UInt8]) throws(RaftError) {
        var reader = ByteReader(bytes)
        guard let version = reader.byte(), version == 1 else { throw .invalidConfigChange("unknown encoding version") }
        guard let flags = reader.byte(), let count = reader.uint32(), count <= 10_000 else {
            throw .invalidConfigChange("truncated header")
        }
        var changes: [ConfChangeSingle] = []
        for _ in 0..<count {
            guard let raw = reader.byte(), let type = ConfChangeType(rawValue: raw) else {
                throw .invalidConfigChange("unknown change type")
            }
            guard let idBytes = reader.lengthPrefixed() else { throw .invalidConfigChange("truncated node id") }
            changes.append(ConfChangeSingle(type, NodeID(String(decoding: idBytes, as: UTF8.self))))
        }
        guard let context = reader.lengthPrefixed(), reader.isAtEnd else {
            throw .invalidConfigChange("truncated or trailing bytes")
        }
        self.init(changes, forceJoint: flags & 1 != 0, autoLeave: flags & 2 != 0, context: context)
    }
}

func appendUInt32(_ value: UInt32, to out: inout [UInt8]) {
    out.append(UInt8(truncatingIfNeeded: value >> 24))
    out.append(UInt8(truncatingIfNeeded: value >> 16))
    out.append(UInt8(truncatingIfNeeded: value >> 8))
    out.append(UInt8(truncatingIfNeeded: value))
}

/// A bounds-checked reader over bytes.
struct ByteReader {
    let bytes: [UInt8]
    var position = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var isAtEnd: Bool { position == bytes.count }
    mutating func byte() -> UInt8? {
        guard position < bytes.count else { return nil }
        defer { position += 1 }
        return bytes[position]
    }
    mutating func uint32() -> UInt32? {
        guard bytes.count - position >= 4 else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 { v = v << 8 | UInt32(bytes[position]); position += 1 }
        return v
    }
    mutating func lengthPrefixed() -> [UInt8]? {
        guard let n = uint32(), bytes.count - position >= Int(n) else { return nil }
        defer { position += Int(n) }
        return Array(bytes[position..<position + Int(n)])
    }
}

extension RaftCore {
    /// Writes the first entry of a new cluster's log into an empty storage: a
    /// configuration change adding `voters`, committed at index 1 in term 1. Every
    /// founding member is bootstrapped the same way; a node added later starts empty
    /// and learns the whole membership history, this entry included, from the log (or
    /// from a snapshot), so every node derives the same configuration.
    public static func bootstrap(_ storage: any RaftLogStorage, voters: [NodeID]) throws {
        guard try storage.lastIndex() == 0 else {
            throw RaftError.invalidConfig("bootstrap needs an empty log")
        }
        guard !voters.isEmpty else { throw RaftError.invalidConfig("bootstrap needs at least one voter") }
        let change = ConfChange(voters.sorted().map { ConfChangeSingle(.addVoter, $0) })
        try storage.append([LogEntry(index: 1, term: 1, type: .configChange, data: change.encoded())])
        try storage.setHardState(RaftState(term: 1, votedFor: nil, commitIndex: 1))
    }

    /// Proposes a membership change (leader only). Only one change may be pending:
    /// a second one is refused with `RaftError.configChangeInProgress` until the
    /// first is applied.
    @discardableResult
    public mutating func proposeConfChange(_ change: ConfChange) throws -> Proposal {
        if let divergenceRecord { throw RaftError.diverged(divergenceRecord) }
        guard role == .leader else { throw RaftError.notLeader(leader: leader) }
        if let target = leadTransferee {
            throw RaftError.proposalDropped(reason: "leadership is being transferred to \(target)")
        }
        if pendingConfIndex > log.applied { throw RaftError.configChangeInProgress }
        let current = tracker.confState
        _ = try change.applied(to: current)  // validate now, apply when committed
        let last = try log.lastIndex()
        for single in change.changes where single.type == .addVoter && current.learners.contains(single.node) {
            let match = tracker.progress[single.node]?.match ?? 0
            if match + config.maxPromotionLag < last {
                throw RaftError.invalidConfigChange(
                    "learner \(single.node) is not caught up (has \(match) of \(last) entries); promote it once it is")
            }
        }
        let index = try appendLeaderEntries([LogEntry(index: 0, term: 0, type: .configChange, data: change.encoded())])
        pendingConfIndex = index
        return .appended(index: index, term: term)
    }

    /// Applies the configuration changes among entries the shell just applied.
    mutating func afterApply(_ entries: [LogEntry]) {
        for entry in entries where entry.type == .configChange {
            guard let change = try? ConfChange(decoding: entry.data),
                  let next = try? change.applied(to: tracker.confState) else {
                // Validated by the leader before appending; an entry that no longer
                // applies (e.g. superseded by a snapshot's configuration) is skipped.
                continue
            }
            let last = (try? log.lastIndex()) ?? 0
            tracker.apply(conf: next, next: last + 1)
            if role == .leader {
                restartLeaseAfterMembershipChange()
                if !tracker.isVoter(id) && !next.isJoint {
                    // This leader was removed: step down once the change is applied.
                    becomeFollower(term: term, leader: nil)
                    continue
                }
                // Members were added or removed: the quorum changed, maybe the commit
                // too; new members need their first append either way.
                _ = maybeCommit()
                pendingBroadcast = true
                if next.isJoint && next.autoLeave && pendingConfIndex <= entry.index {
                    if let p = try? proposeConfChange(.leaveJoint), case .appended(let i, _) = p { pendingConfIndex = i }
                }
            }
        }
    }
}
