import Foundation
import Testing
@testable import AegisStorage

/// The simulated disk's promises: what a power loss keeps and what it may drop.
@Suite struct SimulatedFileSystemTests {
    private func makeFile(_ fs: SimulatedFileSystem, _ name: String = "f") throws -> Int32 {
        try fs.makeDirectory("/d")
        return try fs.open("/d/" + name, .createExclusive)
    }

    @Test func test_powerLoss_keepsSyncedDataAndName() throws {
        let fs = SimulatedFileSystem()
        let fd = try makeFile(fs)
        try fs.writeAll(fd, [1, 2, 3], at: 0, path: "/d/f")
        try fs.dataSync(fd, path: "/d/f")
        try fs.syncDirectory("/d")
        for seed in UInt64(0)..<20 {
            fs.powerLoss(seed: seed)
            #expect(try fs.readAll("/d/f") == [1, 2, 3])
        }
    }

    @Test func test_powerLoss_dropsOrTearsUnsyncedWrites() throws {
        var outcomes = Set<Int>()
        for seed in UInt64(0)..<64 {
            let fs = SimulatedFileSystem()
            let fd = try makeFile(fs)
            try fs.dataSync(fd, path: "/d/f")
            try fs.syncDirectory("/d")
            try fs.writeAll(fd, [UInt8](repeating: 7, count: 2048), at: 0, path: "/d/f")
            fs.powerLoss(seed: seed)
            let length = try fs.readAll("/d/f").count
            // Nothing, whole sectors of it, or all of it: never a cut inside a sector.
            #expect(length % SimulatedFileSystem.sectorSize == 0)
            outcomes.insert(length)
        }
        #expect(outcomes.contains(0) && outcomes.contains(2048) && outcomes.count > 2)
    }

    @Test func test_powerLoss_mayUndoUnsyncedCreation() throws {
        var vanished = 0
        for seed in UInt64(0)..<32 {
            let fs = SimulatedFileSystem()
            let fd = try makeFile(fs)
            try fs.writeAll(fd, [1], at: 0, path: "/d/f")
            try fs.dataSync(fd, path: "/d/f")
            fs.powerLoss(seed: seed)
            if !fs.exists("/d/f") { vanished += 1 }
        }
        #expect(vanished > 0 && vanished < 32)
    }

    @Test func test_powerLoss_failsOperationsAfterTheCut() throws {
        let fs = SimulatedFileSystem()
        let fd = try makeFile(fs)
        fs.cutPower(afterOperations: 2)
        try fs.writeAll(fd, [1], at: 0, path: "/d/f")
        #expect(throws: StorageError.self) { try fs.dataSync(fd, path: "/d/f") }
        #expect(fs.isPowerOff)
        fs.powerLoss(seed: 1)
        #expect(!fs.isPowerOff)
        #expect(throws: StorageError.self) { try fs.dataSync(fd, path: "/d/f") }  // the descriptor died with the power
    }

    @Test func test_damage_isDeterministicAndNamesTheFile() throws {
        func run() throws -> SimulatedFileSystem.Statistics {
            let fs = SimulatedFileSystem(configuration: .init(bitFlipRate: 1, readErrorRate: 1))
            let fd = try makeFile(fs)
            try fs.writeAll(fd, [UInt8](repeating: 1, count: 4096), at: 0, path: "/d/f")
            try fs.dataSync(fd, path: "/d/f")
            try fs.syncDirectory("/d")
            fs.powerLoss(seed: 42)
            #expect(throws: StorageError.self) { try fs.readAll("/d/f") }
            return fs.statistics
        }
        let first = try run()
        #expect(first == (try run()))
        #expect(first.damagedFiles == ["/d/f", "/d/f"] && first.bitFlips == 1 && first.readErrors == 1)
    }
}
