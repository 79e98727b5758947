import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecModel
import FedRecTraining

/// `fl-train-local`: every client of one shard trains; the shard's update is written.
public struct TrainLocalCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-train-local",
        abstract: "Train every client of a shard locally and write the shard's update.",
        usage: """
            fl-train-local [<options>] --model <model> --shard <shard>
              --output <output>
            """,
        discussion: """
            Each client starts from the global model, trains on its own data only, and \
            contributes its change (SGD) or least-squares statistics (ALS) for the item rows it \
            touched. The update is their sum with client count and weight, in sparse form. \
            User embeddings are private: they stay in the shard's state file (or are rebuilt \
            every round with --reconstruct) and never appear in the update. One process per \
            shard; shards can run in parallel (make -j, xargs -P) with no shared file.

            Examples:
              fl-train-local --model model-0003.safetensors \\
                  --shard ml100k/shards/shard-00000.tar \\
                  --state state/shard-00000.state.safetensors \\
                  -o update-0003-00000.safetensors
              fl-train-local --model m.safetensors --shard s.tar --reconstruct \\
                  --algorithm als -o u.safetensors
              fl-train-local --model m.safetensors --shard s.tar --reconstruct \\
                  --weighting uniform --clip 0.5 --sample-rate 0.1 \\
                  --sample-key-file run/sample-key -o u.safetensors
            """,
        version: fedrecVersion)

    @Option(help: "Global model checkpoint of this round.") var model: String
    @Option(help: "Shard archive (.tar, .tar.gz, .tar.zst; - for stdin).") var shard: String
    @Option(name: [.short, .long], help: "Update file to write (- for stdout).") var output: String
    @Option(help: "The shard's private state file: read if it exists, rewritten atomically.") var state: String?
    @Option(help: "Write the new private state here instead of over --state.") var stateOut: String?
    @OptionGroup(title: "Local training") var training: TrainingArguments
    @OptionGroup(title: "Privacy") var privacy: SamplingArguments
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func validate() throws {
        if !training.reconstruct && state == nil && stateOut == nil {
            throw ValidationError("private user parameters need a home: give --state FILE, or --reconstruct")
        }
    }

    public func run() throws {
        try reportingErrors("fl-train-local") {
            let statePath = training.reconstruct ? nil : state
            let stateOutPath = training.reconstruct ? nil : (stateOut ?? state)
            let base = try ModelView.basePath(of: model)
            // A state file rewritten over itself is the point of --state; anything else that
            // names one file twice would destroy an input.
            if let statePath, let stateOutPath, statePath != stateOutPath {
                try FileRoles(inputs: [model, base, shard, statePath], outputs: [output, stateOutPath]).check()
            } else {
                try FileRoles(inputs: [model, base, shard], outputs: [output], updatedInPlace: [stateOutPath]).check()
            }
            var options = training.options
            try privacy.apply(to: &options, quiet: format.quiet)
            let summary = try ShardTrainer.run(
                modelPath: model, shardPath: shard, stateIn: statePath,
                stateOut: stateOutPath, output: output, options: options,
                progress: Progress(quiet: format.quiet))
            if format.json && output != "-" {
                try emit(summary.json(update: output, sampled: options.sampleRate != nil).canonicalText)
            }
        }
    }
}
