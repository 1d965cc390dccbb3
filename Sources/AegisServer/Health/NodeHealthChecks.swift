import AegisCluster
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The checks every node registers: the process, whether it can serve, its disk and
/// WAL, its peers and its certificates.
///
/// | Check | Scope | Fails | Warns |
/// |---|---|---|---|
/// | `ping` | liveness | never (the process answers) | |
/// | `node` | readiness | the node stopped serving (storage failure, divergence) or has not started | |
/// | `leader` | readiness | no leader known | |
/// | `quorum` | readiness | fewer healthy voters than a quorum, in this node's failure detector | |
/// | `replay` | readiness | still replaying the log to the commit index known at start | |
/// | `apply-lag` | readiness | more committed entries unapplied than `maxReadyApplyLag` | |
/// | `disk` | dependency | the disk is full (writes refused) | free space below `minFreeDiskBytes` |
/// | `wal-fsync` | dependency | recent fsync average above `walFsyncFailure` | slowest recent fsync above `walFsyncWarning` |
/// | `peers` | dependency | no peer reachable | some peer starting, suspect or down |
/// | `tls-certificates` | dependency | a certificate expired | one expires within `certificateExpiryWarning` |
extension HealthRegistry {
    /// Registers the node's own checks (see the table above). `freeSpace` reports the
    /// free and total bytes of the file system holding a path (injected by tests).
    func registerNodeChecks(backend: any KVBackend, configuration: AdminServerConfiguration,
                            certificates: @escaping @Sendable () -> [ServedCertificate],
                            freeSpace: @escaping @Sendable (String) -> (free: UInt64, total: UInt64)? = fileSystemSpace) {
        let config = configuration
        let checks: [HealthCheck] = [
            HealthCheck(name: "ping", scope: .liveness, componentType: "system") { .pass() },
            HealthCheck(name: "node", scope: .readiness, componentType: "system") {
                let status = await backend.status()
                if let failure = status.failure { return .fail("the node stopped serving: \(failure)") }
                return status.running ? .pass() : .fail("the node is not running (starting or stopping)")
            },
            HealthCheck(name: "leader", scope: .readiness) {
                let status = await backend.status()
                return status.leader == nil ? .fail("no leader known (term \(status.term))") : .pass("leader \(status.leader?.id.rawValue ?? "")")
            },
            HealthCheck(name: "quorum", scope: .readiness) { Self.quorum(await backend.status()) },
            HealthCheck(name: "replay", scope: .readiness) {
                let status = await backend.status()
                return status.replaying
                    ? .fail("replaying the log: applied \(status.appliedIndex) of the entries committed when the node started")
                    : .pass()
            },
            HealthCheck(name: "apply-lag", scope: .readiness) {
                let status = await backend.status()
                let lag = status.applyLag
                let result: HealthCheckResult = lag > config.maxReadyApplyLag
                    ? .fail("\(lag) committed entries not applied (commit \(status.commitIndex), applied \(status.appliedIndex), threshold \(config.maxReadyApplyLag))")
                    : .pass()
                return result.observed(Double(lag), "entries")
            },
            HealthCheck(name: "disk", scope: .dependency, componentType: "datastore") {
                Self.disk(await backend.status(), configuration: config, freeSpace: freeSpace)
            },
            HealthCheck(name: "wal-fsync", scope: .dependency, componentType: "datastore") {
                Self.walFsync(await backend.status(), configuration: config)
            },
            HealthCheck(name: "peers", scope: .dependency) { Self.peers(await backend.status()) },
            HealthCheck(name: "tls-certificates", scope: .dependency) {
                Self.certificates(certificates(), warnBefore: config.certificateExpiryWarning)
            },
        ]
        for check in checks { try? register(check) }
    }

    static func quorum(_ status: BackendStatus) -> HealthCheckResult {
        guard let stats = status.cluster else { return .pass("this node keeps no cluster view") }
        let detail = "\(stats.healthyNodes) of \(stats.votingNodes) voters reachable, quorum \(stats.quorumSize), cluster \(stats.state.rawValue)"
        return (stats.hasQuorum ? HealthCheckResult.pass(detail) : .fail(detail)).observed(Double(stats.healthyNodes), "voters")
    }

    static func peers(_ status: BackendStatus) -> HealthCheckResult {
        let peers = status.members.filter { $0.id != status.nodeID && $0.health != .left }
        guard !peers.isEmpty else { return .pass("no peers") }
        let notHeard: Set<AegisCluster.NodeStatus> = [.starting, .suspect, .down]
        let unreachable = peers.filter { $0.health.map(notHeard.contains) ?? false }
        let names = unreachable.map { "\($0.id) \($0.health?.rawValue ?? "?")" }.joined(separator: ", ")
        let result: HealthCheckResult
        if unreachable.count == peers.count {
            result = .fail("no peer reachable: \(names)")
        } else if !unreachable.isEmpty {
            result = .warn("\(unreachable.count) of \(peers.count) peers not reachable: \(names)")
        } else {
            result = .pass("\(peers.count) peers reachable")
        }
        return result.observed(Double(peers.count - unreachable.count), "peers")
    }

    static func disk(_ status: BackendStatus, configuration: AdminServerConfiguration,
                     freeSpace: (String) -> (free: UInt64, total: UInt64)?) -> HealthCheckResult {
        if status.diskFull { return .fail("the disk is full: writes are refused until space is freed") }
        guard let directory = configuration.dataDirectory else { return .pass("no data directory configured") }
        guard let space = freeSpace(directory) else { return .warn("cannot read the free space of \(directory)") }
        let detail = "\(space.free) bytes free of \(space.total) in \(directory)"
        let result: HealthCheckResult = space.free < configuration.minFreeDiskBytes
            ? .warn("\(detail), below the threshold of \(configuration.minFreeDiskBytes) bytes")
            : .pass(detail)
        return result.observed(Double(space.free), "bytes")
    }

    static func walFsync(_ status: BackendStatus, configuration: AdminServerConfiguration) -> HealthCheckResult {
        guard let average = status.fsyncSeconds, let slowest = status.slowestRecentFsyncSeconds else {
            return .pass("no fsync yet")
        }
        let detail = String(format: "recent fsync average %.1f ms, slowest %.1f ms", average * 1000, slowest * 1000)
        let result: HealthCheckResult
        if average > seconds(configuration.walFsyncFailure) {
            result = .fail("\(detail): above \(configuration.walFsyncFailure); the disk cannot keep up")
        } else if slowest > seconds(configuration.walFsyncWarning) {
            result = .warn("\(detail): above \(configuration.walFsyncWarning)")
        } else {
            result = .pass(detail)
        }
        return result.observed(average, "s")
    }

    /// A failure when a certificate has expired, a warning when one expires within
    /// `warnBefore`; passes without certificates.
    static func certificates(_ certificates: [ServedCertificate], warnBefore: Duration, now: Date = Date()) -> HealthCheckResult {
        guard !certificates.isEmpty else { return .pass("no TLS") }
        var expired: [String] = []
        var expiring: [String] = []
        for certificate in certificates.sorted(by: { $0.notValidAfter < $1.notValidAfter }) {
            let left = certificate.notValidAfter.timeIntervalSince(now)
            let when = ISO8601DateFormatter().string(from: certificate.notValidAfter)
            if left <= 0 {
                expired.append("\(certificate.name) certificate expired at \(when)")
            } else if left < seconds(warnBefore) {
                expiring.append("\(certificate.name) certificate expires in \(Int(left / 86_400)) days (\(when)); renew it and send SIGHUP")
            }
        }
        if !expired.isEmpty { return .fail((expired + expiring).joined(separator: "; ")) }
        if !expiring.isEmpty { return .warn(expiring.joined(separator: "; ")) }
        return .pass("\(certificates.count) certificates valid")
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Free (for unprivileged users) and total bytes of the file system holding `path`.
    @Sendable static func fileSystemSpace(_ path: String) -> (free: UInt64, total: UInt64)? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        let block = UInt64(stats.f_frsize)
        let (free, overflowFree) = UInt64(stats.f_bavail).multipliedReportingOverflow(by: block)
        let (total, overflowTotal) = UInt64(stats.f_blocks).multipliedReportingOverflow(by: block)
        return (overflowFree ? .max : free, overflowTotal ? .max : total)
    }
}
