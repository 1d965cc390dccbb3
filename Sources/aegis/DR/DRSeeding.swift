import AegisKV
import AegisRaft
import AegisReplication
import AegisServer
import AegisStorage
import AegisStream
import Foundation
import Hummingbird
import NIOCore

// Re-seeding a standby from its primary's snapshot, when the primary compacted its log
// past the standby's cursor (its pull answers 410 Gone).
//
// `GET /v1/dr/seed?offset=O[&index=I][&max=B][&token=T]` (admin token), on the primary's
// leader: up to B bytes (default and at most 1 MiB) of the data of its snapshot at
// index I (without I: its newest snapshot) from offset O. The answer body is the lease
// token's text (`LeaseToken.text`), a newline, then the chunk as a `drSeedChunk` body
// (DRSeed.swift in AegisKV: source, epoch, snapshot index, total, offset, bytes). 410
// when the snapshot at I is gone (a newer one replaced it: start again without I), 503
// while the primary has no snapshot yet (it starts one: ask again), 409 on a standby,
// 421 on a follower.
//
// The standby's leader logs every chunk it receives in its own cluster as it comes (one
// chunk in memory at a time); the last one installs the snapshot and sets the link's
// cursor to its index in the same entry, and the pull resumes from there. While it is
// shipped the primary holds its log from the snapshot's index (`StreamHold`), and each
// request echoes the lease token as a pull does, so the primary's write lease holds.

/// The most snapshot bytes in one seed request and one logged chunk.
let seedChunkBytes = 1 << 20

extension DRCoordinator {
    /// What a seed request gets.
    enum SeedAnswer {
        case chunk([UInt8])
        case notLeader(NodeID?)
        case notSource(DRState)
        case gone(String)
        case failed(String)
    }

    /// Serves one range of this primary's snapshot data (source side).
    func serveSeed(index: UInt64?, offset: UInt64, maxBytes: Int, token: LeaseToken?) async -> SeedAnswer {
        guard let runtime else { return .failed("the node is starting") }
        let status = runtime.status
        guard status.role == .leader else { return .notLeader(status.leader) }
        let dr = status.dr
        guard dr.role != .standby else { return .notSource(dr) }
        if let token { lease.renew(echoing: token, leaseMillis: dr.leaseMillis) }
        let file: SnapshotDataFile?
        do {
            file = try index.map { try SnapshotDataFile.at(index: $0, in: dataDirectory) }
                ?? SnapshotDataFile.newest(in: dataDirectory)
        } catch {
            return .failed("\(error)")
        }
        guard let file else {
            if let index { return .gone("the snapshot at \(index) is gone: start again from the newest") }
            // A cluster that never compacted (a new primary after a failover) has none yet.
            do { try await runtime.requestSnapshot() } catch { return .failed("\(error)") }
            return .failed("this node had no snapshot; one is being taken: ask again")
        }
        hold(file.index)
        guard offset < UInt64(file.dataCount) else {
            return .failed("offset \(offset) is past the snapshot's \(file.dataCount) bytes")
        }
        let bytes: [UInt8]
        do {
            bytes = try file.read(offset: Int(offset), count: min(max(1, maxBytes), seedChunkBytes))
        } catch {
            // Removed while read: a newer snapshot replaced it.
            return .gone("the snapshot at \(file.index) could not be read (\(error)): start again from the newest")
        }
        let chunk = DRSeedChunk(source: clusterID, epoch: dr.epoch, snapshotIndex: file.index,
                                total: UInt64(file.dataCount), offset: offset, bytes: bytes)
        return .chunk(Array((lease.token().text + "\n").utf8) + chunk.encodedBody())
    }

    /// Re-seeds this standby from the primary at `address` (standby side): fetches each
    /// chunk of its snapshot and logs it; the last one installs it. Restarts from the
    /// first chunk after any failure.
    func seed(from address: String, runtime: NodeRuntime) async -> Duration {
        var index: UInt64?
        var offset: UInt64 = 0
        var token = linkStatus.token
        let started = ContinuousClock.now
        while !isStopping {
            let status = runtime.status
            guard status.role == .leader, status.dr.role == .standby else { return .milliseconds(100) }
            promise.willSend()
            let chunk: DRSeedChunk
            do {
                guard let answer = try await client.seedChunk(address: address, index: index, offset: offset,
                                                              token: token) else {
                    noteError("\(address) refused a seed chunk at \(offset) of the snapshot at \(index ?? 0)",
                              rotate: true)
                    return .milliseconds(500)
                }
                (chunk, token) = answer
            } catch {
                noteError("seed from \(address): \(error)", rotate: true)
                return .milliseconds(500)
            }
            guard chunk.offset == offset, index == nil || chunk.snapshotIndex == index else {
                noteError("\(address) answered a seed chunk at \(chunk.offset) of \(chunk.snapshotIndex), asked \(offset)")
                return .milliseconds(500)
            }
            let result: CommandResult
            do {
                result = try await runtime.execute(.drSeedChunk(chunk))
            } catch {
                noteError("logging a seed chunk: \(error)")
                return .milliseconds(200)
            }
            if let error = result.error {
                noteError("a seed chunk was refused: \(error)")
                return .milliseconds(500)
            }
            index = chunk.snapshotIndex
            offset = chunk.end
            if offset == chunk.total {
                updateLink {
                    $0.source = chunk.source
                    $0.applied = chunk.snapshotIndex
                    $0.token = token
                    $0.lastContactMillis = Self.wallMillis()
                    $0.lastError = nil
                    $0.seeds += 1
                    $0.lastSeedIndex = chunk.snapshotIndex
                }
                logger.notice("re-seeded from the primary's snapshot", metadata: [
                    "source": "\(chunk.source)", "index": "\(chunk.snapshotIndex)", "bytes": "\(chunk.total)",
                    "seconds": "\(ContinuousClock.now - started)"])
                return .zero
            }
        }
        return .milliseconds(100)
    }
}

extension DRClient {
    /// One chunk of the snapshot of the primary at `address` and the lease token that
    /// came with it; `nil` when the primary refused (not its leader, no such snapshot).
    func seedChunk(address: String, index: UInt64?, offset: UInt64,
                   token leaseToken: LeaseToken?) async throws -> (DRSeedChunk, LeaseToken?)? {
        let (host, port) = try parseAddress(address)
        var path = "/v1/dr/seed?offset=\(offset)&max=\(seedChunkBytes)"
        if let index { path += "&index=\(index)" }
        if let leaseToken { path += "&token=\(leaseToken.text)" }
        let response = try await AdminHTTPClient.send(method: "GET", host: host, port: port, path: path,
                                                      headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [],
                                                      body: nil, tls: tls, timeout: .seconds(30))
        guard response.status == 200 else { return nil }
        let body = [UInt8](response.body)
        // The answer's size is bounded by the admin client's response limit.
        guard let newline = body.prefix(64).firstIndex(of: UInt8(ascii: "\n")) else {
            throw ToolError("a seed answer without its lease token line")
        }
        let received = LeaseToken(text: String(decoding: body[..<newline], as: UTF8.self))
        do {
            return (try DRSeedChunk(decodingBody: Array(body[(newline + 1)...])), received)
        } catch {
            throw ToolError("a malformed seed chunk: \(error)")
        }
    }
}

/// `GET /v1/dr/seed` (the primary's snapshot data for a standby being re-seeded) and
/// `POST /v1/dr/rejoin?epoch=E&primary=…&primary-admin=…&source=ID&have=N` (failback:
/// DRRejoin.swift; answers a `RejoinReport`).
struct DRRecoveryAdminExtension: AdminExtension {
    let coordinator: DRCoordinator

    struct Failure: Encodable { var error: String }

    func register(on router: Router<BasicRequestContext>, authorize: @escaping @Sendable (Request) -> Response?) {
        let coordinator = self.coordinator
        router.get("/v1/dr/seed") { request, _ in
            if let denied = authorize(request) { return denied }
            let query = request.uri.queryParameters
            guard let offset = query["offset"].flatMap({ UInt64(String($0)) }) else {
                return AdminResponses.json(Failure(error: "offset=N is required"), status: .badRequest)
            }
            let index = query["index"].flatMap { UInt64(String($0)) }
            let maxBytes = query["max"].flatMap { Int(String($0)) } ?? seedChunkBytes
            let token = query["token"].flatMap { LeaseToken(text: String($0)) }
            switch await coordinator.serveSeed(index: index, offset: offset, maxBytes: maxBytes, token: token) {
            case .chunk(let bytes):
                return Response(status: .ok, headers: [.contentType: "application/octet-stream"],
                                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
            case .notLeader(let leader):
                return AdminResponses.json(Failure(error: "not the leader; the leader is \(leader?.rawValue ?? "unknown")"),
                                           status: .misdirectedRequest)
            case .notSource(let dr):
                return AdminResponses.json(Failure(error: "this cluster is \(dr.role) at epoch \(dr.epoch): it ships nothing"),
                                           status: .conflict)
            case .gone(let why):
                return AdminResponses.json(Failure(error: why), status: .gone)
            case .failed(let why):
                return AdminResponses.json(Failure(error: why), status: .serviceUnavailable)
            }
        }
        router.post("/v1/dr/rejoin") { request, _ in
            if let denied = authorize(request) { return denied }
            let query = request.uri.queryParameters
            let text = { (name: String) -> String in query[Substring(name)].map(String.init) ?? "" }
            guard let epoch = UInt64(text("epoch")), let have = UInt64(text("have")), !text("source").isEmpty else {
                return AdminResponses.json(Failure(error: "epoch=N, source=ID and have=N are required"), status: .badRequest)
            }
            guard text("primary").utf8.count <= DRTransition.maxPrimarySize,
                  text("primary-admin").utf8.count <= DRTransition.maxPrimarySize else {
                return AdminResponses.json(Failure(error: "an address list is too long"), status: .badRequest)
            }
            do {
                let report = try await coordinator.rejoin(epoch: epoch, primary: text("primary"),
                                                          primaryAdmin: text("primary-admin"), source: text("source"),
                                                          have: have)
                return AdminResponses.json(report)
            } catch {
                return AdminResponses.json(Failure(error: "\(error)"), status: .conflict)
            }
        }
    }
}
