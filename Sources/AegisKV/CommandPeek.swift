extension CommandType {
    /// `true` for the commands of cross-cluster replication (stream batches, DR
    /// transitions and seeds, active-active settings, batches and catch-up pages): they
    /// change the state but are not client writes (see `Command.isReplicationControl`).
    public var isReplicationControl: Bool {
        switch self {
        case .streamBatch, .setDRState, .drSeedChunk, .drRejoin, .setActiveActive, .activeActiveBatch, .activeActiveCatchUp,
             .setActiveActiveStrategies, .activeActiveTopology:
            return true
        default:
            return false
        }
    }
}

extension Command {
    /// The type of an encoded command, read from its version and type bytes without
    /// decoding the rest (`nil` when they are not a known type of a known version), so
    /// that a reader skipping a kind of entry (a shipper skipping merged batches of
    /// megabytes) does not decode it.
    public static func peekType(_ bytes: [UInt8]) -> CommandType? {
        guard bytes.count >= 2, bytes[0] >= 1, bytes[0] <= encodingVersion, let type = CommandType(rawValue: bytes[1]),
              type.encodingVersion <= bytes[0] else { return nil }
        return type
    }
}
