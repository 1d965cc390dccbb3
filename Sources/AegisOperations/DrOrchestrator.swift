public import AegisServer
public import Foundation

/// The seed's "Disaster Recovery" settings (`DrConfig`), Swift-cased: the two regions
/// (each a cluster, named in `DrOrchestrator`'s region map), the recovery objectives the
/// result is compared with, and automatic failover.
public struct DrConfig: Sendable, Hashable {
    public var primaryRegion: String
    public var drRegion: String
    /// The recovery time objective: a failover that takes longer reports `rtoMet == false`.
    public var rtoSeconds: Int
    /// The recovery point objective: a standby further behind (in seconds of writes)
    /// than this when it is promoted reports `rpoMet == false`.
    public var rpoSeconds: Int
    /// Whether `DrOrchestrator.monitor()` promotes the DR region by itself when the
    /// primary region is gone for `detectionSeconds`.
    public var enableAutoFailover: Bool
    /// How long the primary region must answer nothing before an automatic failover
    /// (default 10 s). A primary that answers, however slowly, within this time is alive.
    public var detectionSeconds: Double = 10
    /// How often the primary region is asked (default 0.5 s).
    public var probeIntervalSeconds: Double = 0.5

    /// Creates the settings.
    public init(primaryRegion: String, drRegion: String, rtoSeconds: Int, rpoSeconds: Int, enableAutoFailover: Bool,
         detectionSeconds: Double = 10, probeIntervalSeconds: Double = 0.5) {
        self.primaryRegion = primaryRegion
        self.drRegion = drRegion
        self.rtoSeconds = rtoSeconds
        self.rpoSeconds = rpoSeconds
        self.enableAutoFailover = enableAutoFailover
        self.detectionSeconds = detectionSeconds
        self.probeIntervalSeconds = probeIntervalSeconds
    }
}

/// What a DR failover did (the seed's `result.old_primary`, `new_primary`,
/// `rto_achieved_seconds`).
public struct DrFailoverResult: Sendable, Hashable {
    public var oldPrimary: String
    public var newPrimary: String
    /// From the start of the failover (or, automatic, from the primary's last answer) to
    /// the new primary's leader taking writes (`GET /primary` answers 200).
    public var rtoAchievedSeconds: Double
    /// The new primary's epoch (fencing token).
    public var epoch: UInt64
    /// How far the standby was behind when promoted, in seconds of the primary's writes,
    /// when it knew (what a failover may have lost: the RPO).
    public var lagSecondsAtPromotion: Double?
    public var rtoMet: Bool
    public var rpoMet: Bool?
}

/// The seed's `DrOrchestrator` over this implementation: the regions are a primary and
/// a standby cluster (`aegis serve --standby-of`), driven through their admin APIs the
/// way `aegis dr failover` does (promotion waits out the primary's write lease, then
/// the old primary is fenced if it answers).
///
/// ```swift
/// let config = DrConfig(primaryRegion: "us-east-1", drRegion: "us-west-2", rtoSeconds: 300,
///                       rpoSeconds: 60, enableAutoFailover: false)
/// let orchestrator = DrOrchestrator(config, regions: ["us-east-1": "10.0.0.1:7411,…", "us-west-2": "…"])
/// let result = try await orchestrator.executeFailover()
/// print("DR failover complete: \(result.oldPrimary) -> \(result.newPrimary) in \(result.rtoAchievedSeconds)s")
/// ```
public final class DrOrchestrator: Sendable {
    public let config: DrConfig
    /// Admin addresses (`host:port,…`) by region name.
    public let regions: [String: String]
    /// The admin token and TLS context of the regions' admin APIs.
    public let access: AdminAccess

    /// An orchestrator of the two regions of `config`, each named in `regions`.
    public init(_ config: DrConfig, regions: [String: String], access: AdminAccess = AdminAccess()) {
        self.config = config
        self.regions = regions
        self.access = access
    }

    private func addresses(_ region: String) throws -> String {
        guard let list = regions[region], !list.isEmpty else { throw AdminAPIError("no admin addresses for region \(region)") }
        return list
    }

    /// Promotes the DR region now and fences the primary region if it answers.
    public func executeFailover() async throws -> DrFailoverResult {
        try await failover(since: ContinuousClock.now)
    }

    private func failover(since started: ContinuousClock.Instant) async throws -> DrFailoverResult {
        let dr = try addresses(config.drRegion)
        let before = try await access.drDocument(dr)
        guard before.role == "standby" else {
            throw AdminAPIError("region \(config.drRegion) (\(before.clusterID)) is \(before.role), not a standby")
        }
        let (promoted, _) = try await access.post(dr, "/v1/dr/promote")
        if let primary = regions[config.primaryRegion] {
            let after = try await access.drDocument(dr)
            _ = try? await access.post(primary, "/v1/dr/fence?epoch=\(promoted.epoch)"
                + "&primary=\(percentEscaped(after.clientAddresses))&primary-admin=\(percentEscaped(dr))")
        }
        try await waitWritable(dr)
        let rto = Self.seconds(ContinuousClock.now - started)
        let lag = before.link.map(\.lagSeconds)
        return DrFailoverResult(oldPrimary: config.primaryRegion, newPrimary: config.drRegion, rtoAchievedSeconds: rto,
                                epoch: promoted.epoch, lagSecondsAtPromotion: lag,
                                rtoMet: rto <= Double(config.rtoSeconds),
                                rpoMet: lag.map { $0 <= Double(config.rpoSeconds) })
    }

    /// Waits until a node of `addresses` answers `GET /primary` with 200.
    private func waitWritable(_ addresses: String) async throws {
        let deadline = ContinuousClock.now + .seconds(max(config.rtoSeconds, 1))
        while ContinuousClock.now < deadline {
            for address in addresses.split(separator: ",").map(String.init) {
                if (try? await access.request("GET", "/primary", at: address, timeout: .seconds(2))) != nil { return }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw AdminAPIError("region \(config.drRegion) was promoted but takes no writes within \(config.rtoSeconds) s")
    }

    /// With `enableAutoFailover`: watches the primary region and, once it has answered
    /// nothing for `detectionSeconds`, fails over and returns the result; never while it
    /// answers (however slowly, within that time). Runs until then or until cancelled;
    /// without `enableAutoFailover` it returns `nil` at once.
    public func monitor() async throws -> DrFailoverResult? {
        guard config.enableAutoFailover else { return nil }
        let primary = try addresses(config.primaryRegion)
        let detection = Duration.milliseconds(Int64(config.detectionSeconds * 1000))
        var lastAnswer = ContinuousClock.now
        while !Task.isCancelled {
            if await answers(primary, within: detection) {
                lastAnswer = ContinuousClock.now
            } else if ContinuousClock.now - lastAnswer >= detection {
                return try await failover(since: lastAnswer)
            }
            try? await Task.sleep(for: .milliseconds(Int64(config.probeIntervalSeconds * 1000)))
        }
        return nil
    }

    /// Whether any node of `addresses` answers `GET /v1/dr` within `timeout` (any HTTP
    /// answer counts: the process is alive and serving).
    private func answers(_ addresses: String, within timeout: Duration) async -> Bool {
        for address in addresses.split(separator: ",").map(String.init) {
            do {
                _ = try await access.request("GET", "/v1/dr", at: address, timeout: timeout)
                return true
            } catch let error as AdminAPIError where error.status != nil {
                return true  // an HTTP answer, whatever its status: the node is alive and serving
            } catch {
                continue
            }
        }
        return false
    }

    /// A duration in seconds.
    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
