// swift-tools-version:6.0
// libFuzzer targets for Aegis. A separate package so that `swift build` of the main
// package never builds them. The library targets below are symlinks to the main
// package's sources (whole modules for the pure ones; only the codec files for the
// NIO-dependent ones), so the fuzzers always test the code in the working tree.
// Build and run with `scripts/fuzz` (see README.md); the flags that make these
// fuzzers (-sanitize=fuzzer,address) are passed on the command line by the script.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    // The harnesses reach internal entry points (the segment scanner, the snapshot
    // file reader, the frame reader) with `@testable import`.
    .unsafeFlags(["-enable-testing"]),
]

func fuzzer(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies, path: "Targets/\(name)",
                      swiftSettings: strict)
}

let package = Package(
    name: "AegisFuzz",
    products: [
        .executable(name: "fuzz-resp", targets: ["fuzz-resp"]),
        .executable(name: "fuzz-frame", targets: ["fuzz-frame"]),
        .executable(name: "fuzz-raft", targets: ["fuzz-raft"]),
        .executable(name: "fuzz-wal", targets: ["fuzz-wal"]),
        .executable(name: "fuzz-snapshot", targets: ["fuzz-snapshot"]),
        .executable(name: "fuzz-kv", targets: ["fuzz-kv"]),
        .executable(name: "fuzz-stream", targets: ["fuzz-stream"]),
    ],
    dependencies: [
        // The version the main package resolves (Package.resolved).
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
    ],
    targets: [
        // `main` of every fuzzer: runs libFuzzer's driver.
        .target(name: "FuzzSupport", path: "Targets/FuzzSupport", swiftSettings: strict),
        // Symlinks to ../Sources/<module>.
        .target(name: "CAegisCRC32C"),
        .target(name: "AegisRaft", dependencies: ["CAegisCRC32C"], swiftSettings: strict),
        .target(name: "AegisCRDT", swiftSettings: strict),
        .target(name: "AegisKV", dependencies: ["AegisRaft", "AegisCRDT"], swiftSettings: strict),
        .target(name: "AegisStorage", dependencies: ["AegisRaft"], swiftSettings: strict),
        // Symlinks to single files: the RESP request decoder and value parser of
        // AegisServer, the wire codec of AegisTransport (NIOCore only, not the server).
        .target(name: "RESPDecoder", dependencies: [
            "AegisKV",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ], swiftSettings: strict),
        // The compression codecs of AegisBackup (symlinks to its Codecs files and its
        // error type), under the module name AegisStream imports, and AegisStream whole.
        .target(name: "AegisBackup", path: "Sources/AegisBackupCodecs", swiftSettings: strict),
        .target(name: "AegisStream", dependencies: [
            "AegisKV", "AegisCRDT", "AegisRaft", "AegisBackup", .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        .target(name: "TransportCodec", dependencies: [
            "AegisRaft", .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),

        fuzzer("fuzz-resp", ["RESPDecoder", .product(name: "NIOCore", package: "swift-nio")]),
        fuzzer("fuzz-frame", ["TransportCodec", "AegisRaft", .product(name: "NIOCore", package: "swift-nio")]),
        fuzzer("fuzz-raft", ["AegisRaft"]),
        fuzzer("fuzz-wal", ["AegisStorage", "AegisRaft"]),
        fuzzer("fuzz-snapshot", ["AegisStorage", "AegisRaft"]),
        fuzzer("fuzz-kv", ["AegisKV", "AegisRaft"]),
        fuzzer("fuzz-stream", ["AegisStream"]),
    ],
    swiftLanguageModes: [.v6]
)
