import ArgumentParser
import FedRecCore
import FedRecData
import FedRecModel
import FedRecSupport
import FedRecTraining

extension NCFVariant: ExpressibleByArgument {}

/// `fl-init --model ncf`'s options: the network and, for NeuMF, its pretraining.
public struct NCFInitArguments: ParsableArguments {
    @Option(help: "NCF model (--model ncf): gmf, mlp or neumf (He et al. 2017). --dim is GMF's factors.")
    var ncfVariant: NCFVariant = .neumf
    @Option(help: ArgumentHelp("The MLP tower's hidden ReLU layers, comma-separated (default 64,32,16).", valueName: "H,H,…"))
    var layers: String?
    @Option(help: "The MLP's user and item embedding size (default 32; the tower's input is twice it).")
    var mlpDim: Int?
    @Option(help: "NeuMF: start from this trained GMF model (needs --pretrain-mlp).")
    var pretrainGmf: String?
    @Option(help: "NeuMF: start from this trained MLP model (needs --pretrain-gmf).")
    var pretrainMlp: String?
    @Option(help: "NeuMF pretraining: the GMF side's weight α in the prediction layer, 1 − α the MLP's.")
    var pretrainAlpha: Float = 0.5
    @Option(help: "NeuMF pretraining: the GMF run's state directory, merged with --pretrain-mlp-states into --pretrain-state-out.")
    var pretrainGmfStates: String?
    @Option(help: "NeuMF pretraining: the MLP run's state directory.")
    var pretrainMlpStates: String?
    @Option(help: "NeuMF pretraining: write the shards' merged user states here (SHARD-NAME.state.safetensors).")
    var pretrainStateOut: String?

    public init() {}

    /// Whether any of these options was given (they need --model ncf).
    var given: Bool {
        ncfVariant != .neumf || layers != nil || mlpDim != nil || pretrainGmf != nil || pretrainMlp != nil || pretrainAlpha != 0.5
            || pretrainGmfStates != nil || pretrainMlpStates != nil || pretrainStateOut != nil
    }

    var states: [String?] { [pretrainGmfStates, pretrainMlpStates, pretrainStateOut] }

    func hiddenLayers() throws -> [Int] {
        guard let layers else { return [64, 32, 16] }
        let parts = layers.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { throw FedRecError(.usage, "--layers \(layers): give widths like 64,32,16") }
        return parts.compactMap { $0 }
    }

    /// The round-0 ncf model of `manifest` (fresh, or NeuMF from pretrained GMF and MLP),
    /// and with the state options, the merged user states of every shard.
    func model(manifest: DatasetManifest, dataset: String, objective: Objective, dim: Int, scale: Float, seed: UInt64) throws -> NCFModel {
        guard objective == .bce || objective == .mse else {
            throw FedRecError(.usage, "an ncf model is trained with --objective bce (implicit, sampled negatives) or mse (ratings), not \(objective.rawValue)")
        }
        if pretrainGmf != nil || pretrainMlp != nil {
            guard let pretrainGmf, let pretrainMlp, ncfVariant == .neumf else {
                throw FedRecError(.usage, "pretraining needs --ncf-variant neumf with both --pretrain-gmf and --pretrain-mlp")
            }
            let gmf = try NCFModel.open(pretrainGmf).model, mlp = try NCFModel.open(pretrainMlp).model
            try ModelConfig(family: .ncf, objective: objective, dim: gmf.config.dim, items: manifest.items, datasetId: manifest.datasetId)
                .requireSame(gmf.config, file: pretrainGmf)
            let model = try NCFModel.pretrained(gmf: gmf, gmfFile: pretrainGmf, mlp: mlp, mlpFile: pretrainMlp, alpha: pretrainAlpha)
            if states.contains(where: { $0 != nil }) {
                guard let g = pretrainGmfStates, let m = pretrainMlpStates, let out = pretrainStateOut else {
                    throw FedRecError(.usage, "merging user states needs --pretrain-gmf-states, --pretrain-mlp-states and --pretrain-state-out")
                }
                try makeDirectories(out)
                for shard in manifest.shardPaths(in: dataset) {
                    let target = UserState.conventionalPath(directory: out, shard: shard)
                    try FileRoles(inputs: [UserState.conventionalPath(directory: g, shard: shard), UserState.conventionalPath(directory: m, shard: shard)],
                                  outputs: [target]).check()
                    try NCFShardTrainer.mergeStates(
                        gmfState: UserState.conventionalPath(directory: g, shard: shard), gmf: gmf,
                        mlpState: UserState.conventionalPath(directory: m, shard: shard), mlp: mlp, neumf: model, output: target)
                }
            }
            return model
        }
        guard !states.contains(where: { $0 != nil }) else { throw FedRecError(.usage, "the --pretrain-*-states options go with --pretrain-gmf and --pretrain-mlp") }
        let network = try NCFNetwork(variant: ncfVariant, gmfDim: dim, mlpDim: mlpDim ?? 32, layers: try hiddenLayers())
        let config = ModelConfig(family: .ncf, objective: objective, dim: network.userWidth, items: manifest.items, datasetId: manifest.datasetId)
        let middle = objective == .mse ? Float((manifest.ratingMin + manifest.ratingMax) / 2) : 0
        var model = NCFModel.initial(config: config, network: network, scale: scale, seed: seed, outputBias: middle)
        model.notes["rating_min"] = "\(manifest.ratingMin)"
        model.notes["rating_max"] = "\(manifest.ratingMax)"
        return model
    }
}
