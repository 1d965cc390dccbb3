internal import CAegisCRC32C

/// CRC-32C (Castagnoli, reflected polynomial `0x82F63B78`): the checksum of every WAL
/// record, snapshot file and key-value snapshot. One implementation for all of them.
///
/// The CPU's CRC-32C instruction when it has one (x86-64 SSE4.2, ARMv8 CRC; checked
/// once at run time, `CAegisCRC32C`), about ten times faster than the portable
/// table-driven fallback (slicing-by-8). Both give the same values (tested), so files
/// written on one machine verify on any other. Restoring a multi-gigabyte snapshot
/// checksums every byte twice (the file and the key-value format), which is where the
/// difference shows.
///
/// Two ways to use it: the static `checksum`/`update` functions over a pre-inverted
/// running value, or a value fed chunk by chunk (`update(_:)`, then `value`).
public struct CRC32C: Sendable, Hashable {
    /// The eight 256-entry lookup tables, flattened: table `t` starts at `t * 256`.
    private static let tables: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 8 * 256)
        for n in 0..<256 {
            var crc = UInt32(n)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            table[n] = crc
        }
        for n in 0..<256 {
            var crc = table[n]
            for t in 1..<8 {
                crc = table[Int(crc & 0xFF)] ^ (crc >> 8)
                table[t * 256 + n] = crc
            }
        }
        return table
    }()

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        ~update(0xFFFF_FFFF, bytes)
    }

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// Continues a running (pre-inverted) CRC over more bytes. Start with `0xFFFFFFFF`
    /// and invert (`~`) the final value.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard usesHardware, let base = bytes.baseAddress else { return softwareUpdate(crc, bytes) }
        return aegis_crc32c_update_hardware(crc, base, bytes.count)
    }

    /// Whether `update` uses the CPU's instruction.
    public static let usesHardware = aegis_crc32c_hardware_available() != 0

    /// `update` with the lookup tables, on any CPU.
    static func softwareUpdate(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = crc
        let count = bytes.count
        var i = 0
        tables.withUnsafeBufferPointer { t in
            while count - i >= 8 {
                let lo = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8
                    | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
                let hi = UInt32(bytes[i + 4]) | UInt32(bytes[i + 5]) << 8
                    | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 24
                let x = crc ^ lo
                crc = t[7 * 256 + Int(x & 0xFF)] ^ t[6 * 256 + Int((x >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((x >> 16) & 0xFF)] ^ t[4 * 256 + Int(x >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < count {
                crc = t[Int((crc ^ UInt32(bytes[i])) & 0xFF)] ^ (crc >> 8)
                i += 1
            }
        }
        return crc
    }

    private var state: UInt32 = 0xFFFF_FFFF

    /// Starts a checksum.
    public init() {}

    /// Feeds bytes.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { state = Self.update(state, bytes) }

    /// Feeds bytes.
    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The checksum of everything fed so far.
    public var value: UInt32 { ~state }
}
