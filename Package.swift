// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]
// Test targets are compiled without optimization in every configuration: the README's
// test command builds in release mode (one build serves the tests and the binaries the
// CI slices run), and optimizing the test modules took ~490 s of compiler-process time in
// a sampled cold build (AegisKVTests alone 82 s with -O against 41 s with -Onone). The code
// under test is still optimized in release builds; only the tests' own code is not.
let tests: [SwiftSetting] = strict + [.unsafeFlags(["-Onone"])]

let package = Package(
    name: "Aegis",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "AegisRaft", targets: ["AegisRaft"]),
        .library(name: "AegisKV", targets: ["AegisKV"]),
        .library(name: "AegisCluster", targets: ["AegisCluster"]),
        .library(name: "AegisCRDT", targets: ["AegisCRDT"]),
        .library(name: "AegisStorage", targets: ["AegisStorage"]),
        .library(name: "AegisTestKit", targets: ["AegisTestKit"]),
        .library(name: "AegisTransport", targets: ["AegisTransport"]),
        .library(name: "AegisReplication", targets: ["AegisReplication"]),
        .library(name: "AegisTLS", targets: ["AegisTLS"]),
        .library(name: "AegisBackup", targets: ["AegisBackup"]),
        .library(name: "AegisRESP", targets: ["AegisRESP"]),
        .library(name: "AegisClient", targets: ["AegisClient"]),
        .library(name: "AegisStream", targets: ["AegisStream"]),
        .library(name: "AegisOperations", targets: ["AegisOperations"]),
        .executable(name: "aegis-sim", targets: ["aegis-sim"]),
        .executable(name: "aegis-bench", targets: ["aegis-bench"]),
        .executable(name: "aegis-killtest", targets: ["aegis-killtest"]),
        .executable(name: "aegis", targets: ["aegis"]),
        .executable(name: "aegis-check-history", targets: ["aegis-check-history"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // No default traits: ConfigurationSupport would build swift-configuration, which
        // nothing here uses (the admin API is configured by aegis's own settings).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // Pure modules: no I/O, no clocks.
        .target(name: "AegisRaft", dependencies: ["CAegisCRC32C"], swiftSettings: strict),
        // CRC-32C with the CPU's instruction (SSE4.2 / ARMv8 CRC), checked at run time.
        .target(name: "CAegisCRC32C"),
        .target(name: "AegisKV", dependencies: ["AegisRaft", "AegisCRDT"], swiftSettings: strict),
        .target(name: "AegisCluster", dependencies: ["AegisRaft"], swiftSettings: strict),
        .target(name: "AegisCRDT", swiftSettings: strict),
        // Durable storage.
        .target(name: "AegisStorage", dependencies: ["AegisRaft"], swiftSettings: strict),
        // Certificates: a cluster CA, node certificates (the node ID as the SAN), loading
        // and reloading (SIGHUP), expiry; TLS configurations for every port.
        .target(name: "AegisTLS", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // Wire codec, Transport protocol, in-memory and TCP (SwiftNIO) transports.
        .target(name: "AegisTransport", dependencies: [
            "AegisRaft", "AegisTLS",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // The RESP value type and its codec, shared by the server and the client.
        .target(name: "AegisRESP", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        // The Swift client: leader discovery, pooling, pipelining, TLS, exactly-once retries.
        .target(name: "AegisClient", dependencies: [
            "AegisRESP", "AegisHTTP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ], swiftSettings: strict),
        // RESP and HTTP admin servers, the backend protocol they call.
        .target(name: "AegisServer", dependencies: [
            "AegisRESP", "AegisKV", "AegisRaft", "AegisCluster", "AegisReplication", "AegisTLS", "AegisBackup",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // Backups, point-in-time recovery, compression codecs (loaded at run time), targets.
        .target(name: "AegisBackup", dependencies: [
            "AegisKV", "AegisCRDT", "AegisRaft", "AegisStorage", "AegisHTTP",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: strict),
        // A small HTTP/1.1 client (one request per connection, TLS, bounded answers): the
        // admin API's client and the S3 target. Built on NIO, which is here anyway.
        .target(name: "AegisHTTP", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: strict),
        // The change stream between clusters: frames, batches, the write lease (DR and
        // active-active). Compression through AegisBackup's codecs (one place for each).
        .target(name: "AegisStream", dependencies: [
            "AegisKV", "AegisCRDT", "AegisRaft", "AegisBackup",
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        // Operator procedures: DR runbooks (YAML format, validation, plan), drill records
        // and their history, the rolling-restart order. No I/O but the history file.
        .target(name: "AegisOperations", dependencies: [
            "AegisServer", "AegisReplication", "AegisTransport", "AegisHTTP",
            .product(name: "Yams", package: "Yams"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: strict),
        // Simulator, fault injection and checkers (tests and tools only).
        .target(name: "AegisTestKit", dependencies: [
            "AegisRaft", "AegisKV", "AegisStorage", "AegisReplication", "AegisTransport",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // The node runtime and the seed's ReplicationEngine.
        .target(name: "AegisReplication", dependencies: [
            "AegisRaft", "AegisKV", "AegisCRDT", "AegisCluster", "AegisStorage", "AegisTransport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),

        .executableTarget(
            name: "aegis-sim",
            dependencies: ["AegisTestKit", "AegisRaft", "AegisStorage",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        .executableTarget(
            name: "aegis-bench",
            dependencies: ["AegisRaft", "AegisKV", "AegisCRDT", "AegisStorage", "AegisTestKit", "AegisReplication", "AegisBackup",
                           "AegisStream",
                           "AegisTransport", .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        .executableTarget(
            name: "aegis",
            dependencies: ["AegisServer", "AegisKV", "AegisCRDT", "AegisRaft", "AegisReplication", "AegisStorage",
                           "AegisTransport", "AegisTLS", "AegisBackup", "AegisStream", "AegisOperations", "AegisHTTP",
                           .product(name: "Yams", package: "Yams"),
                           .product(name: "Metrics", package: "swift-metrics"),
                           .product(name: "Prometheus", package: "swift-prometheus"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                           .product(name: "NIOHTTP1", package: "swift-nio"),
                           .product(name: "NIOSSL", package: "swift-nio-ssl"),
                           .product(name: "Histogram", package: "hdrhistogram-swift"),
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // The linearizability verdict on a history recorded by scripts/aegis-jepsen.
        .executableTarget(
            name: "aegis-check-history",
            dependencies: ["AegisTestKit"],
            path: "Sources/aegis-jepsen",
            swiftSettings: strict),
        .executableTarget(
            name: "aegis-killtest",
            dependencies: ["AegisStorage", "AegisRaft"],
            swiftSettings: strict),

        .testTarget(name: "AegisReplicationTests", dependencies: [
            "AegisTestKit",
            "AegisReplication", "AegisRaft", "AegisKV", "AegisCRDT", "AegisCluster", "AegisStorage", "AegisTransport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: tests),
        .testTarget(name: "AegisRaftTests", dependencies: ["AegisRaft", "AegisTestKit"], swiftSettings: tests),
        .testTarget(name: "AegisTestKitTests", dependencies: ["AegisTestKit", "AegisRaft", "AegisStorage"], swiftSettings: tests),
        .testTarget(name: "AegisKVTests", dependencies: [
            "AegisKV", "AegisRaft", "AegisCRDT", .product(name: "PropertyBased", package: "swift-property-based"),
        ], swiftSettings: tests),
        .testTarget(name: "AegisClusterTests", dependencies: ["AegisCluster", "AegisRaft"], swiftSettings: tests),
        .testTarget(name: "AegisCRDTTests", dependencies: [
            "AegisCRDT", .product(name: "PropertyBased", package: "swift-property-based"),
        ], swiftSettings: tests),
        .testTarget(name: "AegisTransportTests", dependencies: [
            "AegisTestKit",
            "AegisTransport", "AegisRaft",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: tests),
        .testTarget(name: "AegisServerTests", dependencies: [
            "AegisTestKit",
            "AegisServer", "AegisKV", "AegisRaft", "AegisReplication", "AegisTLS", "AegisBackup",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: tests),
        .testTarget(name: "AegisTLSTests", dependencies: [
            "AegisTestKit",
            "AegisTLS", "AegisTransport", "AegisRaft",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: tests),
        .testTarget(name: "AegisClientTests", dependencies: [
            "AegisClient", "AegisRESP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: tests),
        .testTarget(name: "AegisBackupTests", dependencies: ["AegisBackup", "AegisKV", "AegisRaft", "AegisStorage"],
                    swiftSettings: tests),
        .testTarget(name: "AegisStreamTests", dependencies: ["AegisStream", "AegisKV", "AegisCRDT", "AegisRaft", "AegisBackup"],
                    swiftSettings: tests),
        .testTarget(name: "AegisOperationsTests", dependencies: ["AegisOperations", "AegisServer"], swiftSettings: tests),
        .testTarget(name: "AegisHTTPTests", dependencies: [
            "AegisHTTP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ], swiftSettings: tests),
        // Optimized like the code under test: its power-loss tests drive the simulated
        // disk from the test module's own loops (9.1 s instead of 1.6 s unoptimized,
        // against 7 s of compiler time saved).
        .testTarget(name: "AegisStorageTests", dependencies: ["AegisStorage", "AegisRaft", "AegisTestKit"], swiftSettings: strict),
        // The `aegis` program's own code (DR orchestration over real processes).
        .testTarget(name: "aegisTests", dependencies: ["aegis", "AegisOperations", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                    swiftSettings: tests),
    ],
    swiftLanguageModes: [.v6]
)
