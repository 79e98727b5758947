import FedRecCore
import FuzzSupport

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// libFuzzer harness for the tables a user hands fl-partition, fl-encode and the search
/// commands besides the ratings: feature tables (`--user-features`, `--item-features`;
/// with a header and with `--*-feature-names`), item catalogues (`u.item`, `movies.csv`),
/// item texts (`tags.csv`), query logs, a dataset's `items.tsv`, and a shard's query
/// member. Each reads the input as a file (plain, gzip or zstd, as the commands do); the
/// file is deleted before the next input. Any error must be a `FedRecError`; a trap or
/// sanitizer report is a bug. What is read must be consistent with the table's rules.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTables(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    attempt {
        let (features, fields) = try FeatureFileReader.read(file: MappedFile(path: "fuzz.csv", contents: input), path: "fuzz.csv")
        precondition(!features.isEmpty && fields.allSatisfy { !$0.isEmpty && !$0.contains("=") && $0 != "-" })
    }
    attempt {
        let names = ["age", "-", "occupation"]
        let (features, fields) = try FeatureFileReader.read(file: MappedFile(path: "fuzz.csv", contents: input), path: "fuzz.csv", names: names)
        precondition(fields == names.filter { $0 != "-" } && !features.isEmpty)
    }
    attempt { _ = try ItemCatalogReader.read(file: MappedFile(path: "fuzz.csv", contents: input), path: "fuzz.csv") }
    attempt {
        let queries = try QueryLog.decode(Array(input), file: "fuzz.queries.jsonl", items: 100)
        precondition(queries.allSatisfy { $0.item >= 0 && $0.item < 100 })
    }
    // The path readers, on the input as a file (compressed inputs are detected by magic).
    let path = scratch
    defer { unlink(path) }
    guard writeFile(UnsafeRawBufferPointer(input), to: path) else { return 0 }
    attempt { _ = try ItemTextReader.read(path: path) }
    attempt { _ = try QueryLogReader.read(path: path) }
    attempt { _ = try DatasetTables.readItems(path) }
    attempt { _ = try FeatureFileReader.read(path: path) }
    attempt { _ = try ItemCatalogReader.read(path: path) }
    return 0
}

/// The harness's file: one per process.
let scratch = scratchPath("tables") + ".csv"
