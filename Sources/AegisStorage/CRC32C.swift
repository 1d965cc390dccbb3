/// CRC-32C (Castagnoli, reflected polynomial `0x82F63B78`), the checksum of every WAL
/// record and snapshot file.
///
/// A table-driven software implementation (slicing-by-8): portable, allocation-free,
/// and fast enough that checksumming is never the bottleneck next to `fdatasync`.
public enum CRC32C {
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
}
