// Fuzz target: the key-value state machine's inputs from the log and from a leader's
// snapshot: the command decoder (`Command(decoding:)`), `StateMachine.apply`, and
// the snapshot reader (`KVSnapshotReader` via `restore(fromChunks:)`).
//
// The first input byte picks the mode: bit 0 clear, the rest is a list of log entries
// (`length u8, data`) applied in order to one state machine; bit 0 set, the rest is a
// snapshot stream fed in chunks of 1...16 bytes (the size from the mode byte), then,
// if it restores, the state machine's own snapshot must restore to the same state.
// A decoded command must re-encode to bytes that decode to the same command. Entry
// timestamps grow with the index (250 ms apart), so relative deadlines, lazy expiry
// and purges run; a second state machine applying the same entries must reach the
// same digest (applying is deterministic).
// Snapshots are compared as the concatenation of their chunks (`wholeSnapshot`).
internal import AegisKV
internal import AegisRaft

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let mode = data[0]
    let body = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let limits = StateMachine.Limits(maxKeySize: 64, maxValueSize: 256)
    var machine = StateMachine(limits: limits)
    if mode & 1 == 0 {
        var position = 0
        var index: LogIndex = 1
        var entries: [LogEntry] = []
        while position < body.count {
            let length = Int(body[position])
            position += 1
            let end = min(position + length, body.count)
            let bytes = Array(body[position..<end])
            position = end
            if let command = try? Command(decoding: bytes) {
                let again: Command
                do { again = try Command(decoding: command.encoded()) } catch {
                    fatalError("a decoded command does not decode after re-encoding: \(error); \(command)")
                }
                precondition(again == command, "command round trip: \(command) != \(again)")
            }
            let entry = LogEntry(index: index, term: 1, data: bytes, timestamp: index * 250)
            _ = machine.apply(entry)
            entries.append(entry)
            index += 1
        }
        var twin = StateMachine(limits: limits)
        for entry in entries { _ = twin.apply(entry) }
        precondition(wholeSnapshot(twin) == wholeSnapshot(machine), "applying the same entries twice diverged")
        // The state reached must survive a snapshot round trip.
        var copy = StateMachine(limits: limits)
        do { try copy.restore(fromChunks: machine.snapshotChunks(chunkSize: 7)) } catch {
            fatalError("the state machine's own snapshot does not restore: \(error)")
        }
        precondition(wholeSnapshot(copy) == wholeSnapshot(machine), "snapshot round trip changed the state")
    } else {
        let chunk = Int(mode >> 1 & 0xF) + 1
        var chunks: [[UInt8]] = []
        var position = 0
        while position < body.count {
            let end = min(position + chunk, body.count)
            chunks.append(Array(body[position..<end]))
            position = end
        }
        guard (try? machine.restore(fromChunks: chunks)) != nil else { return 0 }
        var copy = StateMachine(limits: limits)
        do { try copy.restore(fromChunks: machine.snapshotChunks(chunkSize: 5)) } catch {
            fatalError("a restored state machine's snapshot does not restore: \(error)")
        }
        precondition(wholeSnapshot(copy) == wholeSnapshot(machine), "snapshot round trip changed the state")
    }
    return 0
}

/// The state machine's snapshot as one array: what `snapshotData()` returns, but from
/// 4 KiB chunks. `snapshotData()` writes 1 MiB chunks, and reserving 1 MiB twice per
/// input (an mmap and its page faults under ASan) took most of the time of an input.
private func wholeSnapshot(_ machine: StateMachine) -> [UInt8] {
    var bytes: [UInt8] = []
    for chunk in machine.snapshotChunks(chunkSize: 4096) { bytes.append(contentsOf: chunk) }
    return bytes
}
