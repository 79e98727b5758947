import ArgumentParser
import FedRecCore
import FedRecData
import FedRecEvaluation
import FedRecModel
import FedRecSupport
import FedRecTraining

/// `fl-init`'s settings of the CTR models (`--model lr|fm`).
public struct CTRInitArguments: ParsableArguments {
    public init() {}

    @Option(help: "lr, fm: hash features into 2^BITS buckets (FNV-1a 32-bit).") var hashBits = 18
    @Option(help: "lr, fm: a rating at least this is a click (default: 4; 1 for a 0/1 click log).") var clickThreshold: Float = 4
    @Flag(help: "lr, fm: the user's id is a feature too (its bucket's delta leaves the client).") var userId = false

    /// Writes a fresh `family` model for the dataset at `dataset` to `output`.
    func initialise(family: ModelFamily, dataset: String, dim: Int, scale: Float, seed: UInt64, output: String, json: Bool) throws {
        guard (1...30).contains(hashBits) else { throw FedRecError(.usage, "--hash-bits must be between 1 and 30") }
        guard clickThreshold.isFinite else { throw FedRecError(.usage, "--click-threshold must be a finite number") }
        let manifest = try DatasetManifest.load(dataset)
        let directory = dataset.hasSuffix(".json") ? parentDirectory(dataset) : dataset
        let features = try ItemFeatureTable.read(directory: directory, manifest: manifest)
        let model = CTRModel.initial(family: family, datasetId: manifest.datasetId, itemFeatures: features, hashBits: hashBits,
                                     rank: dim, scale: scale, seed: seed, clickThreshold: clickThreshold, userIdFeature: userId)
        let identity = try model.write(to: output)
        if json && output != "-" {
            try emit(JSONValue.object([
                "model": .string(output), "identity": .string(identity), "model_type": .string(family.rawValue),
                "buckets": .number(Double(model.config.items)), "rank": .number(Double(family == .fm ? dim : 0)),
                "items": .number(Double(manifest.items)),
            ]).canonicalText)
        }
    }
}

func parentDirectory(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return String(path[..<slash])
}

/// `fl-train-local` for a CTR model: the shard's update; no private state.
func trainCTRShard(model: String, shard: String, output: String, options: TrainingOptions, format: OutputFormatOptions) throws {
    try FileRoles(inputs: [model, shard], outputs: [output]).check()
    let summary = try CTRShardTrainer.run(modelPath: model, shardPath: shard, output: output, options: options, progress: Progress(quiet: format.quiet))
    if format.json && output != "-" {
        try emit(summary.json(update: output, sampled: false).canonicalText)
    }
}

/// `fl-eval` for a CTR model: AUC, log loss and calibration on the test examples.
func evaluateCTR(model: String, shards: [String], itemBaseline: Bool, metricsLog: String?, format: OutputFormatOptions) throws {
    let report = try CTREvaluator.run(modelPath: model, shards: shards, itemBaseline: itemBaseline)
    try emitEvaluation(report.json, metricsLog: metricsLog, format: format)
}

/// fl-eval's output of an evaluation: one JSON line appended to `metricsLog` (durably),
/// then the line (`--json`) or its table on stdout.
func emitEvaluation(_ json: JSONValue, metricsLog: String?, format: OutputFormatOptions) throws {
    if let metricsLog { try appendLine(json.canonicalText, to: metricsLog, durable: true) }
    try emit(format.json ? json.canonicalText : json.table(aligned: standardOutputIsTerminal))
}
