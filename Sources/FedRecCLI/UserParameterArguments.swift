import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecFormats
import FedRecModel
import FedRecWire
import FedRecTraining
import FedRecEvaluation

/// Where `fl-eval` and `fl-recommend` find users' private parameters.
public struct UserParameterArguments: ParsableArguments {
    @Option(help: "Directory of the shards' state files (SHARD-NAME.state.safetensors).")
    public var stateDir: String?

    @OptionGroup(title: "Rebuilding user parameters (default: the settings the model records)") public var training: TrainingArguments

    public init() {}

    /// The training settings to rebuild users with: those the model records
    /// (`client_settings`, written by fl-aggregate from its clients' updates) for every
    /// user-side flag not given, the flags for the others. One warning line on stderr
    /// names the flags that differ from the record.
    public func settings(model: String, command: String) throws -> TrainingOptions {
        var explicit = training.explicitUserSide
        var options = training.options
        if stateDir != nil && !training.reconstruct {
            explicit.insert(.userParameters)
            options.userParameters = .state
        }
        // The header alone (the evaluation verifies the file); a model on stdin is read once, later.
        guard model != "-", let text = try SafeTensorsFile(path: model).metadata[UserSettingsMetadata.key] else { return options }
        let recorded = try UserSideSettings(metadata: text, file: model)
        let (resolved, differences) = try recorded.resolve(options, explicit: explicit, file: model)
        if !differences.isEmpty {
            func flags(_ value: (UserSideSettings.Difference) -> String?) -> String {
                differences.map { "\($0.field.flag) \(value($0) ?? "(as --l2)")" }.joined(separator: " ")
            }
            var stderr = StandardError()
            print("\(command): warning: \(model) was trained with \(flags(\.recorded)); using the given \(flags(\.given))", to: &stderr)
        }
        return resolved
    }

    /// The source for `shards`: their state files, or reconstruction, with `settings`.
    public func source(for shards: [String], settings: TrainingOptions) throws -> UserParameterSource {
        if settings.userParameters == .reconstruct {
            return UserParameterSource(mode: .reconstruct, states: [], training: settings)
        }
        guard let stateDir else {
            throw FedRecError(.usage, "user parameters are private: give --state-dir DIR with the shards' state files, or --reconstruct")
        }
        return UserParameterSource(mode: .state, states: shards.map { UserState.conventionalPath(directory: stateDir, shard: $0) }, training: settings)
    }
}
