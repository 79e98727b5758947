import ArgumentParser
import FedRecCore
import FedRecSupport

/// `fl-inspect`: what a checkpoint, update, shard or dataset holds.
public struct InspectCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-inspect",
        abstract: "Show what a checkpoint, update, sum, state, shard or dataset holds.",
        discussion: """
            Prints kind, round, tensor shapes, metadata and counts, after verifying the file \
            (version, kind, checksum). A file that fails verification is an error.

            A file named *.jsonl (a metrics log, a ledger) is read as JSON lines: \
            {"kind": "json_lines", "lines": [...]}. --field prints one field of the \
            description, one value a line (strings as they are, numbers and the rest as \
            JSON), for scripts: keys joined by '.', and name[] for every element of a list.

            Examples:
              fl-inspect runs/a/model-0010.safetensors
              fl-inspect ml100k/shards/shard-00000.tar --json | jq .users
              fl-inspect ml100k
              fl-inspect ml100k --field 'shards[].file'
              fl-inspect runs/a/metrics.jsonl --field 'lines[].round'
              fl-inspect noised-0003.safetensors --field metadata.dp_expected_clients
            """,
        version: fedrecVersion)

    @Argument(help: "Files or dataset directories.") var files: [String]
    @Option(help: "Print only this field, one value a line (e.g. shards[].file, metadata.round).") var field: String?
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func run() throws {
        try reportingErrors("fl-inspect") {
            // Reads only; writes nothing but stdout.
            try FileRoles(inputs: files, outputs: []).check()
            for file in files {
                let description = try FileInspector.describe(file)
                if let field {
                    for value in try inFile(file, { try FileInspector.values(at: field, in: description) }) {
                        try emit(FileInspector.text(of: value))
                    }
                } else {
                    try emit(format.json ? description.canonicalText : description.prettyText)
                }
            }
        }
    }
}
