import AegisRaft
import AegisStorage
import AegisTestKit
import Foundation
import Testing

/// A fresh, empty directory under /tmp, removed when released.
final class TemporaryDirectory {
    let path: String
    init(_ label: String = "aegis-storage-test") {
        path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func sub(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Test func test_memoryStorage_passesTheConformanceSuite() throws {
    try StorageConformance.runAll(make: { MemoryStorage() }, reopen: nil)
}

@Test func test_diskStorage_passesTheConformanceSuiteWithReopen() throws {
    let root = TemporaryDirectory()
    var counter = 0
    try StorageConformance.runAll(
        make: {
            counter += 1
            return try DiskStorage(directory: root.sub("s\(counter)"), options: DiskStorageOptions(segmentSize: 4096))
        },
        reopen: { storage in
            guard let disk = storage as? DiskStorage else { throw StorageError.invalidArgument("not a DiskStorage") }
            disk.close()
            return try DiskStorage(directory: disk.directory, options: DiskStorageOptions(segmentSize: 4096))
        })
}
