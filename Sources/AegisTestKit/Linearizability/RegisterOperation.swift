/// Identifies one operation of a history (its position when recorded by `History`).
public struct OperationID: Sendable, Hashable, Comparable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    /// The identifier's value.
    public var rawValue: Int

    /// Wraps a value.
    public init(_ rawValue: Int) { self.rawValue = rawValue }

    /// Wraps a literal.
    public init(integerLiteral value: Int) { rawValue = value }

    public static func < (lhs: OperationID, rhs: OperationID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "#\(rawValue)" }
}

/// One client operation on a keyed register, as observed from outside the system:
/// when it was invoked, when (and whether) it completed, and what it returned.
///
/// Register values are `UInt64?`: `nil` means the key is absent (never written, or
/// written with `nil`). The shape is flat and stable so that real-process testers can
/// record it as JSON lines (see `HistoryJSONLines`).
///
/// Which fields matter depends on `kind` and `status`:
///
/// | kind | inputs | outputs (only when `status == .ok`) |
/// | --- | --- | --- |
/// | `.read` | — | `output`: the value read |
/// | `.write` | `value`: the value written | — |
/// | `.compareAndSet` | `expected`, `value` (the new value) | `swapped`: whether the comparison matched |
public struct RegisterOperation: Sendable, Hashable {
    /// What an operation does.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// Returns the register's value.
        case read
        /// Sets the register to `value`.
        case write
        /// Sets the register to `value` if it holds `expected`.
        case compareAndSet = "cas"
    }

    /// How an operation ended.
    public enum Status: String, Sendable, Hashable, CaseIterable {
        /// It completed and took effect exactly once, with the recorded output.
        case ok
        /// It definitely did not take effect (the checker ignores it).
        case fail
        /// Its outcome is unknown (a timeout, a crash, or never completed): it may take
        /// effect at any time after its invocation, or never.
        case info
    }

    /// The operation's identifier, used in reports.
    public var id: OperationID
    /// The process or client that issued it.
    public var client: UInt64
    /// The register it addresses.
    public var key: UInt64
    /// What it does.
    public var kind: Kind
    /// For `.write`: the value written. For `.compareAndSet`: the new value.
    public var value: UInt64?
    /// For `.compareAndSet`: the value the register must hold for the swap.
    public var expected: UInt64?
    /// For an ok `.read`: the value it returned (`nil`: the key was absent).
    public var output: UInt64?
    /// For an ok `.compareAndSet`: `true` if the comparison matched and `value` was
    /// written, `false` if the register held another value (nothing was written).
    public var swapped: Bool
    /// When it was invoked (monotonic nanoseconds or logical steps).
    public var invokeTime: UInt64
    /// When it completed; `nil` if it never did. Must be set (and not before
    /// `invokeTime`) when `status` is `.ok`; the checker ignores it for `.info`.
    public var completeTime: UInt64?
    /// How it ended.
    public var status: Status

    /// Creates an operation from all of its fields.
    public init(
        id: OperationID, client: UInt64, key: UInt64, kind: Kind,
        value: UInt64? = nil, expected: UInt64? = nil, output: UInt64? = nil, swapped: Bool = true,
        invokeTime: UInt64, completeTime: UInt64?, status: Status
    ) {
        self.id = id
        self.client = client
        self.key = key
        self.kind = kind
        self.value = value
        self.expected = expected
        self.output = output
        self.swapped = swapped
        self.invokeTime = invokeTime
        self.completeTime = completeTime
        self.status = status
    }
}

extension RegisterOperation: CustomStringConvertible {
    /// A one-line summary, for example `#4 c2 k7 cas(1→2)=true ok [10, 25]`.
    public var description: String {
        let call: String
        switch kind {
        case .read: call = status == .ok ? "read=\(show(output))" : "read"
        case .write: call = "write(\(show(value)))"
        case .compareAndSet:
            call = "cas(\(show(expected))→\(show(value)))" + (status == .ok ? "=\(swapped)" : "")
        }
        let end = status == .info ? "∞" : completeTime.map { "\($0)" } ?? "?"
        return "\(id) c\(client) k\(key) \(call) \(status.rawValue) [\(invokeTime), \(end)]"
    }
}

/// Formats a register value: the number, or `nil` for an absent key.
func show(_ value: UInt64?) -> String { value.map { "\($0)" } ?? "nil" }
