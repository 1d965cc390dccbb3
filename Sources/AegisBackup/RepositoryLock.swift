import Foundation

/// A lock object in the repository (`locks/<kind>-<random>.json`) that keeps a prune
/// from deleting what a restore is reading, and two prunes from racing.
///
/// Acquiring writes the lock object first, then lists the others: a restore backs off
/// when a prune holds the repository, a prune backs off when a restore or another prune
/// does. Two that start together both see each other and both back off (never both
/// proceed), which works on object stores without conditional writes. A lock older
/// than `staleAfterMillis` (a crashed process) is ignored.
public struct RepositoryLock: Sendable {
    /// What holds the lock.
    public enum Kind: String, Sendable {
        case restore, prune
    }

    /// Locks older than this are ignored: 6 hours.
    public static let staleAfterMillis: UInt64 = 6 * 3600 * 1000

    static let folder = "locks"
    let name: String
    let target: any BackupTarget

    struct Content: Codable {
        var kind: String
        var createdAt: UInt64
        var host: String
        var pid: Int32
    }

    /// Takes a lock of `kind` on `repository`.
    public static func acquire(_ kind: Kind, repository: BackupRepository) async throws(BackupError) -> RepositoryLock {
        let target = repository.target
        let name = folder + "/" + kind.rawValue + "-" + String(UInt64.random(in: 0...UInt64.max), radix: 16) + ".json"
        let content = Content(kind: kind.rawValue, createdAt: repository.now(), host: ProcessInfo.processInfo.hostName,
                              pid: ProcessInfo.processInfo.processIdentifier)
        guard let bytes = try? JSONEncoder().encode(content) else { throw .invalidArgument("cannot encode a lock") }
        try await target.write(name, Array(bytes))
        let lock = RepositoryLock(name: name, target: target)
        for other in try await target.list(prefix: folder + "/") where other != name {
            let base = (other as NSString).lastPathComponent
            let conflicting = kind == .prune ? true : base.hasPrefix(Kind.prune.rawValue + "-")
            guard conflicting else { continue }
            guard let data = try? await target.readAll(other),
                  let held = try? JSONDecoder().decode(Content.self, from: Data(data)) else { continue }
            if repository.now() > held.createdAt, repository.now() - held.createdAt > staleAfterMillis { continue }
            await lock.release()
            throw .locked("a \(held.kind) (pid \(held.pid) on \(held.host)) holds \(target.location) since "
                + "\(held.createdAt) ms; retry when it is done (lock object \(other))")
        }
        return lock
    }

    /// Removes the lock object.
    public func release() async {
        try? await target.delete(name)
    }
}
