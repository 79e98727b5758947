import ArgumentParser
import FedRecCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a command's work, turning a `FedRecError` into one line on stderr
/// (`fl-xxx: file: problem`) and the exit code of its failure class. Every command runs
/// its work in here, so every command also removes its temporary files when SIGINT,
/// SIGTERM or SIGHUP ends it (`TemporaryFiles.removeOnSignals`).
public func reportingErrors(_ command: String, _ body: () throws -> Void) throws {
    TemporaryFiles.removeOnSignals()
    do {
        try body()
    } catch let error as FedRecError {
        var stderr = StandardError()
        print("\(command): \(error)", to: &stderr)
        throw ExitCode(error.failure.rawValue)
    }
}

/// Options every command that prints results shares.
public struct OutputFormatOptions: ParsableArguments {
    @Flag(name: .long, help: "Write JSON lines (sorted keys) instead of TSV.")
    public var json = false

    @Flag(name: [.short, .long], help: "No progress line on stderr, even on a terminal.")
    public var quiet = false

    public init() {}
}

/// Writes `text` to stdout.
public func emit(_ text: String) {
    print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
}

/// A JSON object as a table: a header line of keys and one line of values, `round` first
/// and the other keys sorted. TSV, or with `aligned` (stdout is a terminal) columns padded
/// to a common width with two spaces between them.
func tsv(_ object: JSONValue, aligned: Bool = isatty(STDOUT_FILENO) == 1) -> String {
    guard case .object(let members) = object else { return object.canonicalText }
    let keys = members.keys.sorted { ($0 == "round" ? 0 : 1, $0) < ($1 == "round" ? 0 : 1, $1) }
    let values = keys.map { key -> String in
        switch members[key]! {
        case .string(let s): return s
        case .number(let d): return d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : String(format6(d))
        default: return members[key]!.canonicalText
        }
    }
    guard aligned else { return keys.joined(separator: "\t") + "\n" + values.joined(separator: "\t") }
    let widths = zip(keys, values).map { max($0.count, $1.count) }
    func line(_ fields: [String]) -> String {
        zip(fields, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined(separator: "  ").trimmingTrailingSpaces
    }
    return line(keys) + "\n" + line(values)
}

extension String {
    fileprivate var trimmingTrailingSpaces: String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// A number with up to six significant decimals, for tables people read.
public func format6(_ d: Double) -> String {
    guard d.isFinite else { return "nan" }
    let scaled = (d * 1_000_000).rounded() / 1_000_000
    return "\(scaled)"
}

/// The conventional state file of a shard: `DIR/shard-00000.state.safetensors`.
func stateFile(directory: String, shard: String) -> String {
    var name = shard.split(separator: "/").last.map(String.init) ?? shard
    for suffix in [".tar.gz", ".tgz", ".tar.zst", ".tzst", ".tar"] where name.hasSuffix(suffix) {
        name.removeLast(suffix.count)
        break
    }
    return directory + "/" + name + ".state.safetensors"
}

/// Shard paths of a dataset directory, from its `dataset.json`.
func shardPaths(dataset directory: String) throws -> [String] {
    let manifest = try DatasetManifest.load(directory)
    return manifest.shards.map { directory + "/" + $0.file }
}

extension Objective: ExpressibleByArgument {}
extension TrainingOptions.Algorithm: ExpressibleByArgument {}
extension TrainingOptions.Optimizer: ExpressibleByArgument {}
extension TrainingOptions.Weighting: ExpressibleByArgument {}
extension ServerOptions.Optimizer: ExpressibleByArgument {}
extension ServerOptions.RowAverage: ExpressibleByArgument {}
extension CheckpointLayout: ExpressibleByArgument {}
