import ArgumentParser
import FedRecCore

/// `fl-inspect`: what a checkpoint, update, shard or dataset holds.
public struct InspectCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-inspect",
        abstract: "Show what a checkpoint, update, sum, state, shard or dataset holds.",
        discussion: """
            Prints kind, round, tensor shapes, metadata and counts, after verifying the file \
            (version, kind, checksum). A file that fails verification is an error.

            Examples:
              fl-inspect runs/a/model-0010.safetensors
              fl-inspect ml100k/shards/shard-00000.tar --json | jq .users
              fl-inspect ml100k
            """,
        version: fedrecVersion)

    @Argument(help: "Files or dataset directories.") var files: [String]
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func run() throws {
        try reportingErrors("fl-inspect") {
            // Reads only; writes nothing but stdout.
            try FileRoles(inputs: files, outputs: []).check()
            for file in files {
                let description = try FileInspector.describe(file)
                try emit(format.json ? description.canonicalText : description.prettyText)
            }
        }
    }
}
