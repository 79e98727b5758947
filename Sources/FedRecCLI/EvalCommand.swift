import ArgumentParser
import FedRecCore

/// `fl-eval`: model + shards (+ private state) → metrics.
public struct EvalCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-eval",
        abstract: "Evaluate a model on the shards' test data.",
        discussion: """
            Explicit (mse) models: RMSE and MAE over all test ratings (predictions clipped to the \
            rating scale). Implicit models (and mse with --ranking): HR@K, NDCG@K, Recall@K and MRR \
            with full ranking over every item the user has not trained on, plus HR@K and NDCG@K \
            under the sampled protocol (test item against the user's 99 stored negatives, as in \
            NCF). One line per evaluation, tagged with the model's round: TSV with a header, or \
            JSON with --json.

            Examples:
              fl-eval --model model-0010.safetensors --dataset ml100k --state-dir state
              fl-eval --model model-0010.safetensors --dataset ml100k --reconstruct --json >> metrics.jsonl
            """)

    @Option(help: "Model checkpoint.") var model: String
    @Option(help: "Dataset directory: evaluate on all its shards.") var dataset: String?
    @Argument(help: "Shard files (instead of --dataset).") var shards: [String] = []
    @Option(name: .customShort("k"), help: "Cut-off K of the ranking metrics.") var k = 10
    @Flag(help: "Also compute ranking metrics for an explicit (mse) model.") var ranking = false
    @Flag(help: "Rank by training popularity instead of the model (a baseline; the model only names the dataset).") var popularity = false
    @Option(help: "Also append the result as a JSON line to this file (e.g. metrics.jsonl).") var metricsLog: String?
    @OptionGroup(title: "User parameters") var users: UserParameterArguments
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func validate() throws {
        guard k >= 1 else { throw ValidationError("-k must be at least 1") }
        guard dataset != nil || !shards.isEmpty else { throw ValidationError("give --dataset DIR or shard files") }
    }

    public func run() throws {
        try reportingErrors("fl-eval") {
            let paths = try dataset.map { try shardPaths(dataset: $0) } ?? shards
            let users = popularity ? UserParameterSource(mode: .reconstruct, states: [], training: users.training.options) : try users.source(for: paths)
            let report = try Evaluator.run(modelPath: model, shards: paths, users: users, k: k,
                                           ranking: ranking ? true : nil, popularity: popularity)
            if let metricsLog { try appendLine(report.json.canonicalText, to: metricsLog, durable: true) }
            emit(format.json ? report.json.canonicalText : tsv(report.json))
        }
    }
}
