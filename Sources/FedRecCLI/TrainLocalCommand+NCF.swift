import ArgumentParser
import FedRecCore
import FedRecModel
import FedRecSupport
import FedRecTraining

extension TrainLocalCommand {
    /// fl-train-local for an ncf model (`NCFShardTrainer`): SGD or Adam on every client,
    /// user vectors in the state file (or rebuilt with --reconstruct). Client-level DP
    /// (--clip, --sample-rate) and cross-device secure aggregation (--secagg-session, with
    /// q8/q4) as for mf; distributed DP (--ddp-epsilon, --secagg-silo) is refused
    /// (`NCFShardTrainer.refuseDistributedDP`), as are --local-dp, --prox-mu and ALS.
    func trainNCF() throws {
        try NCFShardTrainer.refuseDistributedDP(secure.secaggSilo || secure.ddpEpsilon != nil)
        var options = training.options
        // With secure aggregation sampling is refused: no line about it first.
        try privacy.apply(to: &options, quiet: format.quiet || secure.secaggSession != nil)
        try NCFShardTrainer.checkSupported(options)
        let (statePath, stateOutPath) = stateFiles
        if let statePath, let stateOutPath, statePath != stateOutPath {
            try FileRoles(inputs: [model, shard, statePath], outputs: [output, stateOutPath]).check()
        } else {
            try FileRoles(inputs: [model, shard], outputs: [output], updatedInPlace: [stateOutPath]).check()
        }
        if let session = secure.secaggSession {
            return try maskEachClient(session: session, options: options, inputs: [model, shard, statePath])
        }
        let summary = try NCFShardTrainer.run(modelPath: model, shardPath: shard, stateIn: statePath, stateOut: stateOutPath, output: output,
                                              options: options, progress: Progress(quiet: format.quiet))
        if format.json && output != "-" { try emit(summary.json(update: output, sampled: options.sampleRate != nil).canonicalText) }
    }
}
