import AegisOperations
import AegisServer
import Foundation
import Testing

@Suite struct DrillHistoryTests {
    static func record(_ n: UInt64, ok: Bool = true) -> DrillRecord {
        DrillRecord(startedAt: n * 1000, finishedAt: n * 1000 + 500, ok: ok, error: ok ? nil : "the copy did not start",
                    standbyCluster: "west", primaryCluster: "east", rtoSeconds: ok ? 1.25 : nil, rpoEntries: ok ? 3 : nil,
                    rpoSeconds: ok ? 0.2 : nil, keys: 10, phasesMillis: ["copy": 100, "restore": 200])
    }

    func temporaryPath() -> String {
        NSTemporaryDirectory() + "/aegis-drills-\(UUID().uuidString).jsonl"
    }

    @Test func test_append_keepsTheNewestRecordsUpToTheRetention() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let history = DrillHistory(path: path, retention: 3)
        #expect(try history.read().records.isEmpty)
        for n in 1 ... 5 { try history.append(Self.record(UInt64(n))) }
        let (records, skipped) = try history.read()
        #expect(records == [Self.record(3), Self.record(4), Self.record(5)])
        #expect(skipped == 0)
        // One JSON object per line, keys sorted (the documented format).
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("{\"finishedAt\":3500,\"keys\":10,\"ok\":true,"))
    }

    @Test func test_read_skipsLinesThatAreNotRecords() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let good = String(decoding: try Self.record(1).encoded(), as: UTF8.self)
        let bad = ["{\"ok\": true}", "not json", good.replacingOccurrences(of: "\"rtoSeconds\":1.25", with: "\"rtoSeconds\":-1"),
                   good.replacingOccurrences(of: "\"finishedAt\":1500", with: "\"finishedAt\":10")]
        try ([good] + bad + [good]).joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let (records, skipped) = try DrillHistory(path: path, retention: 10).read()
        #expect(records.count == 2)
        #expect(skipped == 4)
    }

    @Test func test_decode_refusesBadRecords() {
        #expect(throws: DrillHistoryError.self) { try DrillRecord.decode(Data(repeating: 32, count: DrillRecord.maxEncodedBytes + 1)) }
        #expect(throws: DrillHistoryError.self) { try DrillRecord.decode(Data("{}".utf8)) }
        var failedWithoutReason = Self.record(1, ok: false)
        failedWithoutReason.error = nil
        #expect(failedWithoutReason.problem != nil)
        var nan = Self.record(1)
        nan.rpoSeconds = .nan
        #expect(nan.problem != nil)
        var manyPhases = Self.record(1)
        manyPhases.phasesMillis = Dictionary(uniqueKeysWithValues: (0 ... DrillRecord.maxPhases).map { ("p\($0)", UInt64($0)) })
        #expect(manyPhases.problem != nil)
        #expect(Self.record(1).problem == nil)
    }

    @Test func test_health_failsAfterAFailedDrill_warnsWhenStale_passesWhenFresh() {
        let day: UInt64 = 86_400_000
        let fresh = DrillHistory.health([Self.record(1)], maxAge: .seconds(86_400), now: 1500 + day / 2, inDRPair: true)
        #expect(fresh.status == .pass)
        #expect(fresh.detail?.contains("RTO 1.250 s, RPO 3 entries / 0.200 s") == true)
        let stale = DrillHistory.health([Self.record(1)], maxAge: .seconds(86_400), now: 1500 + day + 1000, inDRPair: true)
        #expect(stale.status == .warn)
        let failed = DrillHistory.health([Self.record(1), Self.record(2, ok: false)], maxAge: .seconds(86_400),
                                         now: 3000, inDRPair: true)
        #expect(failed.status == .fail)
        #expect(failed.detail?.contains("the copy did not start") == true)
        // A success after a failure clears it.
        #expect(DrillHistory.health([Self.record(2, ok: false), Self.record(3)], maxAge: .seconds(86_400),
                                    now: 4000, inDRPair: true).status == .pass)
        #expect(DrillHistory.health([], maxAge: .seconds(1), now: 0, inDRPair: true).status == .warn)
        #expect(DrillHistory.health([], maxAge: .seconds(1), now: 0, inDRPair: false).status == .pass)
    }
}
