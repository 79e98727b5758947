import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecModel

/// `fl-compact`: a standalone copy of a model checkpoint.
public struct CompactCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-compact",
        abstract: "Write a model checkpoint with every row, needing no base file.",
        discussion: """
            fl-aggregate writes the next model of a large catalogue as an overlay: the rows \
            changed since a standalone base checkpoint, which the overlay names. fl-compact \
            resolves an overlay (or copies a standalone checkpoint) into one standalone file, \
            to archive it, hand it to another tool, or delete the run's earlier checkpoints. \
            Every row is verified on the way.

            Examples:
              fl-compact runs/a/model-0020.safetensors -o final.safetensors
              fl-compact runs/a/model-0020.safetensors -o - | python3 read_model.py
            """,
        version: fedrecVersion)

    @Argument(help: "The model checkpoint (standalone or overlay).") var model: String
    @Option(name: [.short, .long], help: "Output checkpoint (- for stdout).") var output: String
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func run() throws {
        try reportingErrors("fl-compact") {
            let view = try ModelView(path: model)
            try FileRoles(inputs: [model, view.base?.path], outputs: [output]).check()
            let written = try ModelRevision(start: view).write(to: output, layout: .standalone)
            if format.json && output != "-" {
                try emit(view.compactionSummary(output: output, identity: written.identity).canonicalText)
            }
        }
    }
}
