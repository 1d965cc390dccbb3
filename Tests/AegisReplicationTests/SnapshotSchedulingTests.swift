@testable import AegisReplication
import AegisRaft
import Foundation
import NIOConcurrencyHelpers
import Testing

/// Where and when snapshots run: staggered per member, on a thread of their own.
@Suite struct SnapshotSchedulingTests {
    @Test func test_stagger_isFixedPerNode_andSpreadsAClustersMembers() {
        for ids in [["n1", "n2", "n3"], ["node1", "node2", "node3"]] {
            let factors = ids.map { NodeLoop.snapshotStagger(NodeID($0)) }
            #expect(Set(factors).count == 3, "members \(ids) would take their snapshots at the same index: \(factors)")
            #expect(factors.allSatisfy { $0 >= 0.625 && $0 <= 1 })
            #expect(factors == ids.map { NodeLoop.snapshotStagger(NodeID($0)) })
        }
    }

    @Test func test_backgroundWorker_runsJobsInOrder_onItsOwnThread() async {
        let worker = BackgroundWorker(name: "aegis-test-worker", niceIncrement: 5)
        let seen = NIOLockedValueBox<[(index: Int, thread: UInt)]>([])
        let caller = UInt(pthread_self())
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            for index in 0..<50 {
                worker.run {
                    seen.withLockedValue { $0.append((index, UInt(pthread_self()))) }
                    if index == 49 { done.resume() }
                }
            }
        }
        let jobs = seen.withLockedValue { $0 }
        #expect(jobs.map(\.index) == Array(0..<50))
        #expect(Set(jobs.map(\.thread)).count == 1)
        #expect(jobs.first?.thread != caller)
    }
}
