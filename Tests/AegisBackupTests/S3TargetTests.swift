@testable import AegisBackup
import AegisKV
import AegisRaft
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// A `moto_server` (PyPI `moto[server]`) on 127.0.0.1, started for one test.
final class MotoServer: @unchecked Sendable {
    let process = Process()
    let port: Int
    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Whether `moto_server` is installed (.ci/run installs it; on a machine without it the
    /// S3 tests are skipped, and CI=true turns that into a failure).
    static var available: Bool {
        (try? run("sh", ["-c", "command -v moto_server"]).status) == 0 || ProcessInfo.processInfo.environment["CI"] == "true"
    }

    init() throws {
        port = Int.random(in: 20_000...40_000)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["moto_server", "-H", "127.0.0.1", "-p", "\(port)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()

        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if (try? run("python3", ["-c", "import urllib.request; urllib.request.urlopen('\(endpoint)/moto-api/', timeout=1)"]))?
                .status == 0 { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        kill(process.processIdentifier, SIGKILL)
        throw BackupError.target(operation: "start", name: "moto_server", detail: "not answering on \(endpoint)")
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Runs a boto3 snippet against the server; returns its standard output.
    func boto3(_ code: String) throws -> String {
        let script = """
            import boto3, sys
            s3 = boto3.client("s3", endpoint_url="\(endpoint)", region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
            \(code)
            """
        let result = try run("python3", ["-c", script])
        guard result.status == 0 else { throw BackupError.target(operation: "boto3", name: "moto", detail: "exit \(result.status)") }
        return String(decoding: result.output, as: UTF8.self)
    }
}

@Suite(.enabled(if: MotoServer.available, "moto_server is not installed (pip install 'moto[server]' boto3)"))
struct S3TargetTests {
    func target(_ moto: MotoServer, partSize: Int = 5 << 20) async throws -> S3Target {
        let target = S3Target(endpoint: moto.endpoint, bucket: "aegis-backups", prefix: "cluster-a", accessKey: "test",
                              secretKey: "test", partSize: partSize)
        try await target.createBucket()
        return target
    }

    @Test func test_s3_backupChainRestoresAndIsReadByAnIndependentClient() async throws {
        let moto = try MotoServer()
        let s3 = try await target(moto)
        let scratch = ScratchDirectory()
        let node = try FakeNode(directory: scratch.sub("node"))
        // Incompressible values: the state file is over 5 MiB, so it goes as a multipart upload.
        try node.writeRandom(keys: 6000, valueBytes: 1200)
        let repo = BackupRepository(target: s3, settings: BackupSettings(compression: .zstd))
        let full = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(300)
        let incr = try await repo.createBackup(.incremental, from: try CommittedHistory.read(dataDirectory: node.directory))
        try node.write(50)
        var archiver = WALArchiver(repository: repo, dataDirectory: node.directory)
        try await archiver.archiveOnce()
        #expect(try await repo.verify(incr.id).digest == incr.digest)
        let report = try await repo.restore(to: .latest, options: RestoreOptions(dataDirectory: scratch.sub("restored")))
        #expect(report.reached.index == node.index)
        #expect(report.digest == node.machine.digestHex())

        // boto3 lists what we wrote and downloads the full backup's state file; the zstd
        // tool decompresses it to the bytes whose SHA-256 is the backup's digest.
        let listed = try moto.boto3("""
            for o in s3.list_objects_v2(Bucket="aegis-backups", Prefix="cluster-a/")["Contents"]: print(o["Key"], o["Size"])
            """)
        let stateKey = "cluster-a/backups/\(full.id)/\(full.files[0].name)"
        #expect(listed.contains("\(stateKey) \(full.files[0].size)"), "\(listed)")
        #expect(listed.contains("cluster-a/backups/\(incr.id)/manifest.json"))
        #expect(listed.contains("cluster-a/archive/"))
        let downloaded = scratch.sub("state.zst")
        _ = try moto.boto3(#"s3.download_file("aegis-backups", "\#(stateKey)", "\#(downloaded)")"#)
        let decoded = try run("zstd", ["-d", "-c", downloaded])
        #expect(decoded.status == 0)
        var machine = StateMachine()
        try machine.restore(fromChunks: [[UInt8](decoded.output)])
        #expect(machine.digestHex() == full.digest)
        #expect(full.files[0].size > 5 << 20, "the state file should be large enough for a multipart upload")
    }

    @Test func test_s3_damagedObjectIsRefusedOnDownload() async throws {
        let moto = try MotoServer()
        let s3 = try await target(moto)
        let scratch = ScratchDirectory()
        let node = try FakeNode(directory: scratch.sub("node"))
        try node.write(100)
        let repo = BackupRepository(target: s3, settings: BackupSettings(compression: .lz4))
        let full = try await repo.createBackup(.full, from: try CommittedHistory.read(dataDirectory: node.directory))
        // Replace the state object with other bytes through boto3.
        let key = "cluster-a/backups/\(full.id)/\(full.files[0].name)"
        _ = try moto.boto3(#"s3.put_object(Bucket="aegis-backups", Key="\#(key)", Body=b"not the state")"#)
        do {
            _ = try await repo.verify(full.id)
            Issue.record("a replaced object was accepted")
        } catch {
            guard case .checksumMismatch(let file, _, _) = error else { Issue.record("\(error)"); return }
            #expect(file.contains(full.files[0].name))
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.sub("restored")))
    }
}

@Suite struct S3SignerTests {
    /// The "GET Object" example of the AWS Signature Version 4 documentation for S3.
    @Test func test_signer_matchesTheAWSExample() {
        let signer = S3Signer(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                              region: "us-east-1")
        let headers = signer.sign(method: "GET", path: "/test.txt", query: [],
                                  headers: ["host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9"],
                                  payloadSHA256: S3Signer.emptySHA256, date: Date(timeIntervalSince1970: 1_369_353_600))
        let auth = headers.first { $0.0 == "Authorization" }?.1 ?? ""
        #expect(auth == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }
}
