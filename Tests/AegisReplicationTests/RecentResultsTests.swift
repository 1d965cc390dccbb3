import AegisKV
import AegisRaft
@testable import AegisReplication
import Testing

/// The ring answers for every index of the last `capacity` recorded, and never for an
/// index with another index's result.
@Test func test_recentResults_keepsTheLastWindowOfIndices() {
    var recent = RecentResults()
    let capacity = UInt64(RecentResults.capacity)
    for index in LogIndex(1)...(3 * capacity + 17) where index % 5 != 0 {  // some indices are not commands
        recent.record(index, term: index / 100, result: CommandResult(index: index, revision: index * 2))
    }
    let last = 3 * capacity + 17
    for index in LogIndex(1)...last {
        let found = recent[index]
        if index % 5 != 0 && index + capacity > last {
            // Every command of the last window is answered.
            #expect(found?.term == index / 100 && found?.result.index == index && found?.result.revision == index * 2)
        } else if let found {
            // An older one may linger where no later command took its slot, but only
            // with its own result, and never from before the window before.
            #expect(index % 5 != 0 && found.result.index == index && index + 2 * capacity > last, "index \(index)")
        }
    }
    recent.removeAll()
    #expect(recent[last] == nil)
}
