import FedRecCore

/// libFuzzer harness for the tar shard reader: `ShardReader(bytes:)` (libarchive, any
/// compression) entry by entry, then `ShardUserReader` over the same bytes user by user
/// (shard header JSON, per-user JSON and `.npy` members, item range checks against 1,000
/// items). Any error must be a `FedRecError`; a trap or sanitizer report is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzShard(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    attempt {
        let reader = try ShardReader(bytes: input, path: "fuzz.tar")
        while let entry = try reader.next() { _ = entry.bytes.count }
    }
    attempt {
        let users = try ShardUserReader(reader: ShardReader(bytes: input, path: "fuzz.tar"), items: 1000)
        while let user = try users.next() {
            precondition(user.train.items.allSatisfy { $0 >= 0 && $0 < 1000 })
        }
    }
    return 0
}

/// Runs `body`; a `FedRecError` is the expected refusal of bad input, anything else a bug.
func attempt(_ body: () throws -> Void) {
    do { try body() } catch is FedRecError {} catch { fatalError("not a FedRecError: \(error)") }
}
