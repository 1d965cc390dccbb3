import AegisKV
import NIOCore

// The active-active conflict commands (see the AegisKV DocC article, "Conflict
// resolution"):
//
//     AEGIS.SIBLINGS key                      [token, [[origin, stamp, value|nil] …], hidden]
//                                             (nil when the key keeps no versions)
//     AEGIS.SETCTX key value token            OK: writes value, replacing the versions
//                                             the token (from AEGIS.SIBLINGS) covers
//     AEGIS.CONFLICTS                         [[id, key, detected-at ms, versions] …]
//     AEGIS.RESOLVE key id VALUE v | PICK n   OK: resolves open manual conflict id of key
//     AEGIS.AUDIT [key [limit]]               [[id, time ms, key, rule, winner|nil,
//                                             detail, versions] …], newest first
//
// where versions are [[origin, "physical.logical", value|nil] …], and a stamp is the
// hybrid logical clock's physical milliseconds and logical counter.

/// A read of the conflict state (`AEGIS.SIBLINGS`, `AEGIS.CONFLICTS`, `AEGIS.AUDIT`).
enum RESPConflictQuery {
    case siblings(Key)
    case conflicts
    case audit(Key?, limit: Int)
}

extension RESPSession {
    /// The most audit entries `AEGIS.AUDIT` returns.
    static let maxAuditReply = 10_000

    /// Plans the conflict commands (`name` is one of them).
    func planConflictCommand(_ name: String, _ arguments: ArraySlice<ByteBuffer>) -> Step {
        let start = arguments.startIndex
        switch name {
        case "AEGIS.SIBLINGS":
            return .deferred(.conflicts(.siblings(key(arguments[start]))))
        case "AEGIS.CONFLICTS":
            return .deferred(.conflicts(.conflicts))
        case "AEGIS.AUDIT":
            guard arguments.count <= 2 else { return .reply(RESPError.wrongArity(name)) }
            var limit = 100
            if arguments.count == 2 {
                guard let parsed = integer(arguments[start + 1]), parsed >= 1, parsed <= Self.maxAuditReply else {
                    return .reply(.error("ERR AEGIS.AUDIT limit is 1...\(Self.maxAuditReply)"))
                }
                limit = Int(parsed)
            }
            return .deferred(.conflicts(.audit(arguments.first.map(key), limit: limit)))
        case "AEGIS.SETCTX":
            let token: ActiveActiveContextToken
            do {
                token = try ActiveActiveContextToken(parsing: String(buffer: arguments[start + 2]))
            } catch {
                return .reply(.error("ERR \(error)"))
            }
            return .write([.activeActiveConflict(.setWithContext(key: key(arguments[start]), value: bytes(arguments[start + 1]),
                                                                 token: token))], .ok)
        default:  // AEGIS.RESOLVE
            guard let id = integer(arguments[start + 1]), id > 0 else {
                return .reply(.error("ERR AEGIS.RESOLVE key id VALUE v | PICK n: the id is a positive integer"))
            }
            let choice: ActiveActiveResolution
            switch String(buffer: arguments[start + 2]).uppercased() {
            case "VALUE": choice = .value(bytes(arguments[start + 3]))
            case "PICK":
                guard let pick = integer(arguments[start + 3]), pick >= 0, pick < Int64(ActiveActiveBatch.maxProgressEntries) else {
                    return .reply(.error("ERR AEGIS.RESOLVE PICK takes a version index from AEGIS.CONFLICTS"))
                }
                choice = .pick(Int(pick))
            default: return .reply(RESPError.syntax)
            }
            return .write([.activeActiveConflict(.resolve(key: key(arguments[start]), id: UInt64(id), choice: choice))], .ok)
        }
    }

    /// Runs a conflict read.
    func runConflictQuery(_ query: RESPConflictQuery) async throws(BackendError) -> RESPValue {
        let backend = server.backend
        switch query {
        case .siblings(let key):
            let report = try await backend.activeActiveConflicts(key: key, limit: 0, stale: staleReads)
            guard let siblings = report.siblings else { return .null }
            return .array([.bulk(siblings.token.description), Self.versions(siblings.versions), .integer(Int64(siblings.hidden))])
        case .conflicts:
            let report = try await backend.activeActiveConflicts(key: nil, limit: 0, stale: staleReads)
            return .array(report.conflicts.map { conflict in
                .array([.integer(Int64(clamping: conflict.id)), .bulkString(conflict.key.bytes),
                        .integer(Int64(clamping: conflict.detectedAt)), Self.versions(conflict.versions)])
            })
        case .audit(let key, let limit):
            let report = try await backend.activeActiveConflicts(key: key, limit: limit, stale: staleReads)
            return .array(report.audit.map { entry in
                .array([.integer(Int64(clamping: entry.id)), .integer(Int64(clamping: entry.time)), .bulkString(entry.key.bytes),
                        .bulk(entry.rule), entry.winner.map(RESPValue.bulkString) ?? .null, .bulk(entry.detail),
                        Self.versions(entry.versions)])
            })
        }
    }

    static func versions(_ versions: [ActiveActiveVersion]) -> RESPValue {
        .array(versions.map { version in
            .array([.bulk(version.origin.rawValue), .bulk("\(version.stamp.physical).\(version.stamp.logical)"),
                    version.value.map(RESPValue.bulkString) ?? .null])
        })
    }
}
