import ArgumentParser
import FedRecCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecSupport
import FedRecData
import FedRecModel
import FedRecTraining
import FedRecAggregation

/// The fedrec release every command reports with `--version` (defined once here, so the
/// commands cannot disagree), with the file format version it writes.
public let fedrecVersion = "fedrec 0.1.0 (file format \(FedRecFormat.version))"

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

/// Writes `text` (and a newline unless it ends in one) to stdout, unbuffered and checked:
/// a failed write (a full disk, `> /dev/full`) is an error, not a lost result.
public func emit(_ text: String) throws {
    try writeStandardOutput(text.hasSuffix("\n") ? text : text + "\n")
}

/// Shard paths of a dataset directory, from its `dataset.json`.
func shardPaths(dataset directory: String) throws -> [String] {
    try DatasetManifest.load(directory).shardPaths(in: directory)
}

extension Objective: ExpressibleByArgument {}
extension TrainingOptions.Algorithm: ExpressibleByArgument {}
extension TrainingOptions.Optimizer: ExpressibleByArgument {}
extension TrainingOptions.Weighting: ExpressibleByArgument {}
extension ServerOptions.Optimizer: ExpressibleByArgument {}
extension ServerOptions.RowAverage: ExpressibleByArgument {}
extension CheckpointLayout: ExpressibleByArgument {}
extension Feedback: ExpressibleByArgument {}
extension ModelFamily: ExpressibleByArgument {}
