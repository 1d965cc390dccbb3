import Testing
@testable import AegisStorage

@Test func test_crc32c_matchesTheStandardCheckValue() {
    #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    #expect(CRC32C.checksum([UInt8]()) == 0)
}

@Test func test_crc32c_incrementalEqualsOneShot() {
    let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
        let first = bytes.withUnsafeBytes { CRC32C.update(0xFFFF_FFFF, UnsafeRawBufferPointer(rebasing: $0[..<split])) }
        let whole = bytes.withUnsafeBytes { ~CRC32C.update(first, UnsafeRawBufferPointer(rebasing: $0[split...])) }
        #expect(whole == CRC32C.checksum(bytes))
    }
}
