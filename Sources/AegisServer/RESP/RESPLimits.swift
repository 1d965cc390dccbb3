public import AegisKV
import NIOConcurrencyHelpers

/// Limits that bound the memory a RESP server spends on its clients. Every limit has
/// a default suited to a production node; tests set small ones.
///
/// What happens at each limit:
/// - **Connections** (`maxClients`): one more connection gets
///   `-ERR max number of clients reached` and is closed, as in Redis.
/// - **Arguments** (`maxValueSize`, `maxRequestBytes`): a command whose bulk-string
///   header announces an argument over `maxValueSize`, or whose arguments add up to more
///   than `maxRequestBytes`, is refused when that header is read, before the rest of
///   it arrives and before anything is proposed: it is answered `-ERR value too large …`
///   or `-ERR request too large …` in its place among the replies, its remaining bytes
///   are skipped as they arrive (never stored), and the connection stays in sync.
/// - **Malformed input** and the protocol limits (`maxBulkLength`, `maxArrayLength`,
///   `maxInlineLength`): `-ERR Protocol error: …` after the replies to the commands
///   before it, then the connection is closed.
/// - **Pipelining** (`maxPendingCommands`, `maxPendingBytes`): a connection with that
///   many commands (or bytes of commands) received but not yet answered is not read
///   from until replies go out — back-pressure through TCP, nothing is buffered.
/// - **Replies** (`outputBufferSoftLimit`, `outputBufferSoftSeconds`,
///   `outputBufferHardLimit`, like Redis's `client-output-buffer-limit`): replies the
///   client has not read yet are counted. Above the soft limit the connection stops
///   running commands until the client reads; if it stays above the soft limit for
///   `outputBufferSoftSeconds`, or ever goes above the hard limit, it is closed.
/// - **Unfinished commands** (`maxPartialRequestBytesTotal`): the bytes held for
///   commands partly received are counted across all connections; a connection whose
///   unfinished command would take the total over the cap gets
///   `-ERR Protocol error: …` and is closed.
/// - **Keyspace replies** (`maxKeysReply`, `maxScanCount`): `KEYS` matching more keys
///   than `maxKeysReply` is refused with an error naming the limit (use `SCAN`); a
///   `SCAN … COUNT` above `maxScanCount` examines `maxScanCount` keys.
/// - **Transactions** (`maxTransactionCommands`, `maxTransactionBytes`): a `MULTI`
///   that queues more commands (or more bytes of arguments) is refused with an error
///   at the command that goes over, and its `EXEC` is refused (`EXECABORT`); `WATCH`
///   keeps at most `maxTransactionCommands` keys.
/// - **Watches** (`maxWatches`, `watchReadBytes`): `AEGIS.WATCH` beyond `maxWatches`
///   on the node is refused; each watch reads at most `watchReadBytes` of log at a
///   time and waits for its client to read before it reads more.
public struct RESPLimits: Sendable, Hashable {
    /// The most client connections open at once; one more is refused with
    /// `-ERR max number of clients reached` and closed. Default 10,000 (Redis's
    /// `maxclients`).
    public var maxClients: Int
    /// The most channels plus patterns one connection may subscribe to
    /// (`SUBSCRIBE`, `PSUBSCRIBE`); more are refused with an error. Default 10,000.
    public var maxSubscriptionsPerClient = 10_000
    /// The longest argument (bulk string) accepted, in bytes; a longer one is refused
    /// as soon as its header arrives with `-ERR value too large …`, and skipped. Keep it
    /// at the state machine's `StateMachine.Limits.maxValueSize` (a larger value could
    /// only be refused after it was logged). Default 1 MiB, the state machine's default.
    public var maxValueSize: Int
    /// The most bytes one command may carry, counting each argument as its length plus
    /// 10 bytes, so that a command within the limit encodes to a log entry of at most
    /// this many bytes (the runtime makes sure such an entry fits in a peer frame). A
    /// larger command is refused with `-ERR request too large …` as soon as the header
    /// that takes it over the limit arrives, and skipped. Default 32 MiB.
    public var maxRequestBytes: Int
    /// The longest bulk string the protocol accepts at all (Redis's
    /// `proto-max-bulk-len`): a longer header is a protocol error that closes the
    /// connection instead of being skipped. Default 512 MiB, as in Redis.
    public var maxBulkLength: Int
    /// The most arguments in one command (a protocol error above). Default 1,048,576.
    public var maxArrayLength: Int
    /// The longest inline command line (commands sent as plain text), in bytes (a
    /// protocol error above). Default 64 KiB, as in Redis.
    public var maxInlineLength: Int
    /// The most commands received on a connection but not yet answered: at the limit
    /// the server stops reading the connection until replies go out. Default 16,384.
    public var maxPendingCommands: Int
    /// The most bytes of commands received on a connection but not yet answered: at
    /// the limit the server stops reading the connection until replies go out.
    /// Default 64 MiB.
    public var maxPendingBytes: Int
    /// Bytes of replies the client has not read above which the connection stops
    /// running commands until the client reads (0 disables the soft limit). Default
    /// 32 MiB.
    public var outputBufferSoftLimit: Int
    /// How long a connection may stay above `outputBufferSoftLimit` before it is
    /// closed. Default 60 seconds.
    public var outputBufferSoftSeconds: Int
    /// Bytes of replies the client has not read at which the connection is closed at
    /// once (one reply, such as an `MGET` of many large values, can go over it).
    /// Default 256 MiB.
    public var outputBufferHardLimit: Int
    /// The most bytes all connections together may hold for commands they have only
    /// partly received; a connection whose unfinished command would go over it is
    /// closed with a protocol error. Default 256 MiB.
    public var maxPartialRequestBytesTotal: Int
    /// The most keys a `KEYS` reply holds; more matches are an error. Default 100,000.
    public var maxKeysReply: Int = 100_000
    /// The most keys one `SCAN` examines (a larger `COUNT` is lowered). Default 10,000.
    public var maxScanCount: Int = 10_000
    /// The most commands one `MULTI` may queue (and keys one connection may `WATCH`).
    /// Default 10,000.
    public var maxTransactionCommands: Int = 10_000
    /// The most bytes of arguments one `MULTI` may queue (counted as
    /// `maxRequestBytes` counts them): the transaction is one log entry, so keep it at
    /// most the node's maximum entry size. Default 16 MiB.
    public var maxTransactionBytes: Int = 16 << 20
    /// The most `AEGIS.WATCH` watches running on a node at once (one per connection);
    /// one more is refused with an error naming the limit. Default 1,000.
    public var maxWatches: Int = 1_000
    /// The most bytes of log one watch reads at a time (it pushes that batch's events
    /// and waits until the client read them before it reads more), so the watches of a
    /// node hold at most `maxWatches` × this. Default 256 KiB.
    public var watchReadBytes: Int = 256 << 10

    /// Creates limits; see each property for its default.
    public init(maxClients: Int = 10_000, maxValueSize: Int = StateMachine.Limits().maxValueSize,
                maxRequestBytes: Int = 32 << 20, maxBulkLength: Int = 512 << 20, maxArrayLength: Int = 1 << 20,
                maxInlineLength: Int = 64 << 10, maxPendingCommands: Int = 16_384, maxPendingBytes: Int = 64 << 20,
                outputBufferSoftLimit: Int = 32 << 20, outputBufferSoftSeconds: Int = 60,
                outputBufferHardLimit: Int = 256 << 20, maxPartialRequestBytesTotal: Int = 256 << 20) {
        self.maxClients = maxClients
        self.maxValueSize = maxValueSize
        self.maxRequestBytes = maxRequestBytes
        self.maxBulkLength = maxBulkLength
        self.maxArrayLength = maxArrayLength
        self.maxInlineLength = maxInlineLength
        self.maxPendingCommands = maxPendingCommands
        self.maxPendingBytes = maxPendingBytes
        self.outputBufferSoftLimit = outputBufferSoftLimit
        self.outputBufferSoftSeconds = outputBufferSoftSeconds
        self.outputBufferHardLimit = outputBufferHardLimit
        self.maxPartialRequestBytesTotal = maxPartialRequestBytesTotal
    }

    /// The bytes an argument of `length` bytes counts toward `maxRequestBytes`: its
    /// length plus the most a log entry's encoding adds per field (a 10-byte varint).
    static func requestBytes(forArgumentOf length: Int) -> Int { length + 10 }
}

/// The bytes held for partly received commands across all connections of a server,
/// bounded by `RESPLimits.maxPartialRequestBytesTotal`.
public final class RESPPartialRequestBudget: Sendable {
    /// The cap.
    public let limit: Int
    private let held = NIOLockedValueBox(0)

    /// Creates a budget of `limit` bytes.
    public init(limit: Int) { self.limit = limit }

    /// The bytes held now.
    public var heldBytes: Int { held.withLockedValue { $0 } }

    /// Changes a holder's reservation from `old` to `new` bytes. Growing fails
    /// (changing nothing) when the total would go over the limit; shrinking always
    /// succeeds.
    func update(from old: Int, to new: Int) -> Bool {
        held.withLockedValue { total in
            if new > old && total + (new - old) > limit { return false }
            total += new - old
            return true
        }
    }
}
