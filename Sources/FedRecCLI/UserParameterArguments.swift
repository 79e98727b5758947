import ArgumentParser
import FedRecCore

/// Where `fl-eval` and `fl-recommend` find users' private parameters.
public struct UserParameterArguments: ParsableArguments {
    @Option(help: "Directory of the shards' state files (SHARD-NAME.state.safetensors).")
    public var stateDir: String?

    @OptionGroup(title: "Rebuilding user parameters (with --reconstruct)") public var training: TrainingArguments

    public init() {}

    /// The source for `shards`: their state files, or reconstruction.
    public func source(for shards: [String]) throws -> UserParameterSource {
        if training.reconstruct {
            return UserParameterSource(mode: .reconstruct, states: [], training: training.options)
        }
        guard let stateDir else {
            throw FedRecError(.usage, "user parameters are private: give --state-dir DIR with the shards' state files, or --reconstruct")
        }
        return UserParameterSource(mode: .state, states: shards.map { UserState.conventionalPath(directory: stateDir, shard: $0) }, training: training.options)
    }
}
