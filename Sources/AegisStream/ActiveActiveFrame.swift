public import AegisBackup
public import AegisKV

/// One frame of an active-active link: a peer cluster's batch of key states
/// (`ActiveActiveBatch`, AegisKV), in the change stream's frame layout with frame
/// version 2 (version 1 is the DR stream's `StreamFrame`, still read as before). The
/// header, compression, checksum and limits are the same (see the module's article).
public struct ActiveActiveFrame: Sendable, Hashable {
    /// The batch.
    public let batch: ActiveActiveBatch
    /// The source leader's wall clock (ms since 1970) when the frame was made.
    public let sourceTime: UInt64
    /// The batch's body (`ActiveActiveBatch.encodedBody()`), as it was sent.
    public let body: [UInt8]

    /// The frame version of active-active frames.
    public static let version: UInt8 = 2

    /// Creates a frame.
    public init(batch: ActiveActiveBatch, sourceTime: UInt64) {
        self.init(batch: batch, sourceTime: sourceTime, body: batch.encodedBody())
    }

    private init(batch: ActiveActiveBatch, sourceTime: UInt64, body: [UInt8]) {
        self.batch = batch
        self.sourceTime = sourceTime
        self.body = body
    }

    /// The command that merges the batch (`Command.activeActiveBatch(batch).encoded()`),
    /// made from the body the frame carried instead of encoding the batch again.
    public var mergeCommand: [UInt8] { ActiveActiveBatch.encodedCommand(body: body) }

    /// The frame's bytes, its batch compressed with `compression`.
    ///
    /// - Throws: `StreamError.codec` when the compression library fails or is missing.
    public func encoded(compression: BackupCompression) throws(StreamError) -> [UInt8] {
        try StreamFrame.seal(body, version: Self.version, compression: compression,
                             sourceTime: sourceTime, leaseToken: LeaseToken())
    }

    /// Decodes a frame, enforcing `limits` (`maxBatchEntries` bounds the key states).
    ///
    /// - Throws: `StreamError.malformed` or `.tooLarge`; nothing is kept.
    public init(decoding bytes: [UInt8], limits: StreamLimits) throws(StreamError) {
        let (body, sourceTime, _) = try StreamFrame.open(bytes, version: Self.version, limits: limits)
        let batch: ActiveActiveBatch
        do { batch = try ActiveActiveBatch(decodingBody: body) } catch { throw .malformed("the batch: \(error)") }
        guard batch.states.count <= limits.maxBatchEntries else {
            throw .tooLarge("the batch has \(batch.states.count) key states, over the limit of \(limits.maxBatchEntries)")
        }
        self.init(batch: batch, sourceTime: sourceTime, body: body)
    }
}
