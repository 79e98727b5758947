import ArgumentParser
import FedRecCore
import FedRecModel
import FedRecSupport
import FedRecTraining

extension TrainLocalCommand {
    /// fl-train-local for an ncf model (`NCFShardTrainer`): SGD or Adam on every client,
    /// user vectors in the state file (or rebuilt with --reconstruct).
    func trainNCF() throws {
        if secure.secaggSession != nil || secure.secaggSilo || secure.ddpEpsilon != nil {
            throw FedRecError(.usage, "an ncf model does not take secure aggregation or distributed DP yet")
        }
        var options = training.options
        try privacy.apply(to: &options, quiet: format.quiet)
        let (statePath, stateOutPath) = stateFiles
        if let statePath, let stateOutPath, statePath != stateOutPath {
            try FileRoles(inputs: [model, shard, statePath], outputs: [output, stateOutPath]).check()
        } else {
            try FileRoles(inputs: [model, shard], outputs: [output], updatedInPlace: [stateOutPath]).check()
        }
        let summary = try NCFShardTrainer.run(modelPath: model, shardPath: shard, stateIn: statePath, stateOut: stateOutPath, output: output,
                                              options: options, progress: Progress(quiet: format.quiet))
        if format.json && output != "-" { try emit(summary.json(update: output, sampled: false).canonicalText) }
    }
}
