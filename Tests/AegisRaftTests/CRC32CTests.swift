import Testing
@testable import AegisRaft

@Test func test_crc32c_matchesTheStandardCheckValue() {
    #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    #expect(CRC32C.checksum([UInt8]()) == 0)
    var streamed = CRC32C()
    for byte in "123456789".utf8 { streamed.update([byte]) }
    #expect(streamed.value == 0xE306_9283)
}

@Test func test_crc32c_incrementalEqualsOneShot() {
    let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
        let first = bytes.withUnsafeBytes { CRC32C.update(0xFFFF_FFFF, UnsafeRawBufferPointer(rebasing: $0[..<split])) }
        let whole = bytes.withUnsafeBytes { ~CRC32C.update(first, UnsafeRawBufferPointer(rebasing: $0[split...])) }
        #expect(whole == CRC32C.checksum(bytes))
    }
}

/// The CPU's instruction (when this machine has it) and the lookup tables agree at every
/// length and alignment: a file checksummed on one machine verifies on any other.
@Test func test_crc32c_hardwareAndSoftwareAgree() {
    var generator = SplitMix64(seed: 7)
    let bytes = (0..<4099).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    bytes.withUnsafeBytes { raw in
        for start in 0..<9 {
            for end in [start, start + 1, start + 7, start + 8, start + 63, start + 64, start + 1000, raw.count] {
                let slice = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                #expect(CRC32C.update(0x1234_5678, slice) == CRC32C.softwareUpdate(0x1234_5678, slice),
                        "bytes \(start)..<\(end), hardware: \(CRC32C.usesHardware)")
            }
        }
    }
}
