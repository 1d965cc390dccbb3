import AegisKV
import AegisRaft
import AegisReplication
import AegisStream
import Foundation

// Snapshot catch-up of an active-active link (AegisKV's ActiveActiveCatchUp.swift has
// the rules and command 76). When a peer answers a pull with `410 Gone` (it compacted
// its log past this cluster's cursor), the pulling leader asks it for its whole
// active-active state a page at a time:
//
//     GET /v1/aa/catchup?peer=ID[&index=N&after=KEY]
//
// `index` and `after` resume a catch-up in progress (the snapshot index and the last
// key merged, as this cluster's log recorded them; `after` in base64url without
// padding). The source serves the page after that key at that index while its log
// still holds every entry after the index; otherwise (or without them) the first
// page of a new catch-up at its current applied index. The answer is one
// active-active frame (version 2) whose batch is the page (after-index 0, last index =
// the snapshot index), with two headers: `Aegis-AA-After` (the key the page starts
// after, base64url; absent for the first page) and `Aegis-AA-Complete` (1 on the last
// page, else 0). Pages hold at most `AACoordinator.catchUpPageStates` key states and
// about `settings.maxBatchBytes` bytes. The source holds its log from the snapshot
// index for the link while the catch-up runs (its compaction floor).

extension AACoordinator {
    enum PageAnswer {
        case page(frame: [UInt8], after: Key?, complete: Bool)
        case notLeader(NodeID?)
        case disabled
        case failed(String)
    }

    /// Serves one catch-up page to `peer` (source side).
    func servePage(index: UInt64?, after: Key?, peer: String) async -> PageAnswer {
        guard let runtime else { return .failed("the node is starting") }
        let status = runtime.status
        guard status.role == .leader else { return .notLeader(status.leader) }
        guard status.activeActive.enabled else { return .disabled }
        do {
            var read = try await runtime.activeActiveCatchUpPage(after: index == nil ? nil : after, source: clusterID,
                                                                 sourceTime: Self.wallMillis(), maxStates: catchUpPageStates,
                                                                 maxBytes: settings.maxBatchBytes)
            var snapshotIndex = read.page.snapshotIndex
            if let index, after != nil {
                if read.firstIndex <= index + 1 {
                    snapshotIndex = index  // resume: every change after `index` is still in the log
                } else {
                    read = try await runtime.activeActiveCatchUpPage(after: nil, source: clusterID, sourceTime: Self.wallMillis(),
                                                                     maxStates: catchUpPageStates, maxBytes: settings.maxBatchBytes)
                    snapshotIndex = read.page.snapshotIndex
                }
            }
            var page = read.page
            page.batch.lastIndex = snapshotIndex
            page.batch.sourceCommit = max(page.batch.sourceCommit, snapshotIndex)
            if peers.contains(where: { $0.id == peer }) { lock.withLock { held[peer] = snapshotIndex } }
            let frame = ActiveActiveFrame(batch: page.batch, sourceTime: Self.wallMillis())
            return .page(frame: try frame.encoded(compression: settings.compression), after: page.afterKey, complete: page.complete)
        } catch {
            return .failed("\(error)")
        }
    }

    /// On the leader, for a link whose source compacted past its cursor: pulls the
    /// next catch-up page from `address` and merges it through this cluster's log.
    func catchUpStep(_ peer: Peer, address: String, runtime: NodeRuntime) async -> Duration {
        let progress = runtime.status.activeActiveCatchUps[peer.id]
        let answer: DRClient.CatchUpPull
        do {
            answer = try await client.pullActiveActiveCatchUp(address: address, index: progress?.snapshotIndex,
                                                              after: progress?.lastKey, from: clusterID, limits: settings.limits)
        } catch {
            note(peer.id, error: "catch-up from \(address): \(error)", rotate: true)
            return .milliseconds(200)
        }
        guard case .page(let frame, let after, let complete, let bytes) = answer else {
            if case .refused(let code, let why) = answer {
                note(peer.id, error: "catch-up: \(address) answered \(code): \(why)", rotate: code == 421 || code == 503)
                return code == 421 ? .milliseconds(20) : .milliseconds(500)
            }
            return .milliseconds(500)
        }
        guard frame.batch.source == peer.id, frame.batch.afterIndex == 0 else {
            note(peer.id, error: "catch-up: \(peer.id) answered a page of \(frame.batch.source) after \(frame.batch.afterIndex)")
            return .milliseconds(500)
        }
        let page = ActiveActiveCatchUpPage(batch: frame.batch, afterKey: after, complete: complete)
        let result: CommandResult
        do {
            result = try await runtime.execute(.activeActiveCatchUp(page))
        } catch {
            note(peer.id, error: "merging a catch-up page: \(error)")
            return .milliseconds(100)
        }
        let now = Self.wallMillis()
        lock.withLock {
            var link = links[peer.id] ?? AALinkStatus()
            link.lastContactMillis = now
            link.frames += 1
            link.bytes += UInt64(bytes)
            link.sourceCommit = frame.batch.sourceCommit
            if let error = result.error {
                link.errors += 1
                link.lastError = "catch-up: \(error)"
            } else {
                link.catchUpPages += 1
                link.states += UInt64(result.keyCount)
                link.lastError = nil
                if complete {
                    link.catchingUp = false
                    link.applied = UInt64(clamping: result.integer)
                    link.examined = link.applied
                }
            }
            links[peer.id] = link
        }
        if complete && result.error == nil {
            logger.notice("aa: caught up from \(peer.id)'s state", metadata: ["index": "\(page.snapshotIndex)"])
        }
        return result.error == nil ? .zero : .milliseconds(200)
    }

    /// Marks `peer`'s link as catching up (its source compacted past the cursor).
    func startCatchUp(_ peer: String) {
        lock.withLock {
            var link = links[peer] ?? AALinkStatus()
            if !link.catchingUp { logger.notice("aa: \(peer) compacted past this cluster's cursor: catching up from its state") }
            link.catchingUp = true
            links[peer] = link
        }
    }

    /// `true` while `peer`'s link catches up (by this leader's view or the log's).
    func isCatchingUp(_ peer: String, status: NodeStatus) -> Bool {
        status.activeActiveCatchUps[peer] != nil || lock.withLock { links[peer]?.catchingUp ?? false }
    }
}

/// Keys in a query string: base64url without padding.
enum AAKeyText {
    static func encode(_ key: Key) -> String {
        Data(key.bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> Key? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map { Key([UInt8]($0)) }
    }
}

extension DRClient {
    enum CatchUpPull {
        case page(ActiveActiveFrame, after: Key?, complete: Bool, bytes: Int)
        case refused(status: Int, why: String)
    }

    /// Asks `address` (a peer's admin API) for a catch-up page.
    func pullActiveActiveCatchUp(address: String, index: UInt64?, after: Key?, from cluster: String,
                                 limits: StreamLimits) async throws -> CatchUpPull {
        let (host, port) = try parseAddress(address)
        let peer = cluster.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        var path = "/v1/aa/catchup?peer=\(peer)"
        if let index, let after { path += "&index=\(index)&after=\(AAKeyText.encode(after))" }
        let response = try await AdminHTTPClient.send(method: "GET", host: host, port: port, path: path,
                                                      headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [],
                                                      body: nil, tls: tls, timeout: .seconds(30))
        guard response.status == 200 else {
            return .refused(status: response.status, why: String(decoding: response.body.prefix(512), as: UTF8.self))
        }
        guard let complete = response.headers.first(name: "Aegis-AA-Complete"), complete == "0" || complete == "1" else {
            throw ToolError("the catch-up page has no valid Aegis-AA-Complete header")
        }
        var afterKey: Key?
        if let text = response.headers.first(name: "Aegis-AA-After") {
            guard let key = AAKeyText.decode(text) else { throw ToolError("the catch-up page's Aegis-AA-After is not base64url") }
            afterKey = key
        }
        let bytes = [UInt8](response.body)
        return .page(try ActiveActiveFrame(decoding: bytes, limits: limits), after: afterKey, complete: complete == "1",
                     bytes: bytes.count)
    }
}
