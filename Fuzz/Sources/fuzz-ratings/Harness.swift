import FedRecCore

/// libFuzzer harness for the ratings reader: `RatingsReader.read(bytes:)` on the input's
/// bytes, with the usual column names and with named columns (`u`, `i`, `r`, `t`). The
/// delimiter (tab, comma, `::`, `|`, `;`) is detected from the first line, so the seed
/// corpus holds a file of each. Any error must be a `FedRecError`; a trap or sanitizer
/// report is a bug. What is read must be consistent: one entry per event in each column,
/// indices within the id tables, finite ratings.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRatings(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(UnsafeBufferPointer(start: data, count: size))
    for columns in [RatingsColumns(), RatingsColumns(user: "u", item: "i", rating: "r", time: "t")] {
        attempt {
            var log = RatingsLog()
            _ = try RatingsReader.read(bytes: input, path: "fuzz.csv", columns: columns, into: &log)
            precondition(log.count > 0)
            precondition(log.item.count == log.count && log.rating.count == log.count && log.time.count == log.count)
            precondition(log.user.allSatisfy { $0 >= 0 && Int($0) < log.users.count })
            precondition(log.item.allSatisfy { $0 >= 0 && Int($0) < log.items.count })
            precondition(log.rating.allSatisfy(\.isFinite))
        }
    }
    return 0
}

/// Runs `body`; a `FedRecError` is the expected refusal of bad input, anything else a bug.
func attempt(_ body: () throws -> Void) {
    do { try body() } catch is FedRecError {} catch { fatalError("not a FedRecError: \(error)") }
}
