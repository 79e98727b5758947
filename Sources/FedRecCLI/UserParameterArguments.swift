import ArgumentParser
import FedRecCore

/// Where `fl-eval` and `fl-recommend` find users' private parameters.
struct UserParameterArguments: ParsableArguments {
    @Option(help: "Directory of the shards' state files (SHARD-NAME.state.safetensors).")
    var stateDir: String?

    @OptionGroup(title: "Rebuilding user parameters (with --reconstruct)") var training: TrainingArguments

    /// The source for `shards`: their state files, or reconstruction.
    func source(for shards: [String]) throws -> UserParameterSource {
        if training.reconstruct {
            return UserParameterSource(mode: .reconstruct, states: [], training: training.options)
        }
        guard let stateDir else {
            throw FedRecError(.usage, "user parameters are private: give --state-dir DIR with the shards' state files, or --reconstruct")
        }
        return UserParameterSource(mode: .state, states: shards.map { stateFile(directory: stateDir, shard: $0) }, training: training.options)
    }
}
