import ArgumentParser
import FedRecCore
import FedRecData
import FedRecEvaluation
import FedRecModel
import FedRecSupport
import FedRecTraining

/// `fl-init`'s settings of a graph filter (`--model gfcf`).
public struct GraphFilterInitArguments: ParsableArguments {
    public init() {}

    @Option(help: "gfcf: eigenvectors k of the ideal low-pass filter (at most the items).") var eigenvectors = 256
    @Option(help: "gfcf: weight α of the ideal low-pass filter beside the linear one.") var filterWeight: Float = 0.3
    @Option(help: "gfcf: extra vectors p of the eigen solver's block.") var oversampling = 64
    @Option(help: "gfcf: power iterations q of the eigen solver.") var powerIterations = 4

    /// Writes a fresh gfcf model for the dataset at `dataset` to `output`.
    func initialise(dataset: String, seed: UInt64, output: String, json: Bool) throws {
        guard eigenvectors >= 1, eigenvectors <= 4096 else { throw FedRecError(.usage, "--eigenvectors must be between 1 and 4096") }
        guard filterWeight.isFinite, filterWeight >= 0 else { throw FedRecError(.usage, "--filter-weight must be a finite number ≥ 0") }
        guard (0...4096).contains(oversampling), (0...100).contains(powerIterations) else {
            throw FedRecError(.usage, "--oversampling must be between 0 and 4096, --power-iterations between 0 and 100")
        }
        let manifest = try DatasetManifest.load(dataset)
        var settings = GraphFilterSettings()
        settings.filterWeight = filterWeight
        settings.oversampling = oversampling
        settings.powerIterations = powerIterations
        settings.seed = seed
        let model = GraphFilterModel.initial(datasetId: manifest.datasetId, items: manifest.items, eigenvectors: eigenvectors, settings: settings)
        let identity = try model.write(to: output)
        if json && output != "-" {
            try emit(JSONValue.object([
                "model": .string(output), "identity": .string(identity), "model_type": .string(ModelFamily.gfcf.rawValue),
                "eigenvectors": .number(Double(model.eigenvectorCount)), "items": .number(Double(manifest.items)),
            ]).canonicalText)
        }
    }
}

/// `fl-eval`'s scoring choices for a graph filter, instead of the model's.
public struct GraphFilterEvalArguments: ParsableArguments {
    public init() {}

    @Option(help: "gfcf: weight α of the ideal low-pass filter (default: the model's).") var filterWeight: Float?
    @Option(help: "gfcf: use only the first K' of the model's eigenvectors.") var eigenvectors: Int?

    var given: Bool { filterWeight != nil || eigenvectors != nil }

    func check() throws {
        if let filterWeight, !(filterWeight.isFinite && filterWeight >= 0) { throw FedRecError(.usage, "--filter-weight must be a finite number ≥ 0") }
        if let eigenvectors, eigenvectors < 0 { throw FedRecError(.usage, "--eigenvectors must be ≥ 0") }
    }
}

/// `fl-train-local` for a gfcf model: the shard's co-occurrence statistics; no state.
func trainGraphFilterShard(model: String, shard: String, output: String, options: TrainingOptions, format: OutputFormatOptions) throws {
    try FileRoles(inputs: [model, shard], outputs: [output]).check()
    let summary = try GraphFilterShardTrainer.run(modelPath: model, shardPath: shard, output: output, options: options, progress: Progress(quiet: format.quiet))
    if format.json && output != "-" {
        try emit(summary.json(update: output, sampled: false).canonicalText)
    }
}
