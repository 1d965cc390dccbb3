@testable import AegisBackup
import Foundation
import Testing

@Suite struct BackupCompressionTests {
    func compress(_ codec: BackupCompression, _ input: [UInt8], pieces: Int = 3) throws -> [UInt8] {
        let compressor = try codec.makeCompressor(file: "test")
        var out: [UInt8] = []
        let step = max(1, input.count / pieces)
        var start = 0
        while start < input.count {
            let end = min(input.count, start + step)
            try compressor.compress(Array(input[start..<end]), final: false) { out += $0 }
            start = end
        }
        try compressor.compress([], final: true) { out += $0 }
        return out
    }

    func decompress(_ codec: BackupCompression, _ input: [UInt8], piece: Int = 7777) throws -> [UInt8] {
        let decompressor = try codec.makeDecompressor(file: "test")
        var out: [UInt8] = []
        var start = 0
        while start < input.count {
            let end = min(input.count, start + piece)
            try decompressor.decompress(Array(input[start..<end])) { out += $0 }
            start = end
        }
        try decompressor.finish()
        return out
    }

    @Test(arguments: BackupCompression.allCases)
    func test_codec_roundTripsInPiecesLargerThanItsBuffers(_ codec: BackupCompression) throws {
        let input = sampleBytes(3 << 20) + [UInt8](repeating: 7, count: 5 << 20)  // ratio > 1 MiB buffers
        let compressed = try compress(codec, input)
        if codec != .none { #expect(compressed.count < input.count) }
        #expect(try decompress(codec, compressed) == input)
    }

    @Test(arguments: [BackupCompression.gzip, .lz4, .zstd])
    func test_codec_truncatedStreamIsRefused(_ codec: BackupCompression) throws {
        let compressed = try compress(codec, sampleBytes(200_000))
        #expect(throws: BackupError.self) { try decompress(codec, Array(compressed.dropLast(9))) }
        var flipped = compressed
        flipped[flipped.count / 2] ^= 0xFF
        // A flipped byte is either refused by the codec or yields other bytes (caught by SHA-256).
        let result = try? decompress(codec, flipped)
        #expect(result != sampleBytes(200_000))
    }

    /// Whether the `gzip`, `lz4` and `zstd` tools are installed (.ci/run installs them; on a
    /// machine without them this test is skipped, and CI=true turns that into a failure).
    static var toolsAvailable: Bool {
        ProcessInfo.processInfo.environment["CI"] == "true"
            || ["gzip", "lz4", "zstd"].allSatisfy { (try? run("sh", ["-c", "command -v \($0)"]).status) == 0 }
    }

    /// The reference command-line tools read what we write, and we read what they write.
    @Test(.enabled(if: toolsAvailable, "the gzip, lz4 and zstd tools are not all installed (apt-get install lz4 zstd)"),
          arguments: [("gzip", BackupCompression.gzip), ("lz4", .lz4), ("zstd", .zstd)])
    func test_codec_interoperatesWithTheCommandLineTool(_ tool: String, _ codec: BackupCompression) throws {
        let scratch = ScratchDirectory()
        let input = sampleBytes(1_500_000)
        let path = scratch.sub("data" + codec.fileExtension)
        try Data(try compress(codec, input)).write(to: URL(fileURLWithPath: path))
        let decoded = try run(tool, ["-d", "-c", path])
        #expect(decoded.status == 0, "\(tool) -d failed; is the \(tool) command installed (.ci/run installs it)?")
        #expect([UInt8](decoded.output) == input)

        let plain = scratch.sub("plain")
        try Data(input).write(to: URL(fileURLWithPath: plain))
        let encoded = try run(tool, ["-c", plain])
        #expect(encoded.status == 0)
        #expect(try decompress(codec, [UInt8](encoded.output)) == input)
    }
}
