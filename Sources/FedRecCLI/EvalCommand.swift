import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecData
import FedRecEvaluation
import FedRecModel

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

            Cold start (--cold, a dataset partitioned with --cold-items): every user with \
            interactions with cold items ranks all the dataset's cold items, those interactions \
            being relevant; HR@K and NDCG@K (and Recall@K, MRR), tagged protocol "cold". Without \
            --cold, cold items are no candidates. --random gives the exact expected metrics of a \
            uniformly random order. --popularity ranks by training interactions; cold items have \
            none, so in cold mode every score is 0 and the order is by item index.

            CTR models (lr, fm): AUC, log loss and calibration (mean predicted over observed \
            click rate) over every test example (test events, a click when rated at least the \
            model's threshold, and test impressions), and the same on training examples \
            (train_*). --popularity scores each item by its smoothed training click rate.

            Examples:
              fl-eval --model model-0010.safetensors --dataset ml100k --state-dir state
              fl-eval --model model-0010.safetensors --dataset ml100k --reconstruct \\
                  --json >> metrics.jsonl
              fl-eval --model model-0020.safetensors --dataset ml100k-cold --cold \\
                  --reconstruct --alpha 5 --l2 5
              fl-eval --model model-0000.safetensors --dataset ml100k-cold --cold --random

            An ncf model (fl-init --model ncf) is evaluated the same way: its users' vectors \
            from --state-dir (or rebuilt with --reconstruct); the sampled protocol is the NCF \
            paper's (the held-out item against 99 sampled negatives).

            A gfcf model (fl-init --model gfcf) scores each user from its own training \
            items, ranked as an implicit model (full ranking and the sampled protocol); \
            --filter-weight and --eigenvectors score with another α or fewer eigenvectors \
            than the model's (tuning without refitting).
              fl-eval --model model-0001.safetensors --dataset gowalla -k 20 --json

            A text-lora model (fl-init --model text-lora) is scored on search: each test \
            query of the shards' query logs (fl-partition --queries) ranks the whole \
            catalogue by cosine between the query and the item texts, both embedded with \
            the adapted encoder; HR@K, NDCG@K and MRR of the query's item (round 0: the \
            frozen encoder).
              fl-eval --model model-0003.safetensors --dataset mls-search --json

            A next-item adapter (fl-init --task next-item) ranks, for each user, every item \
            the user has not trained on by cosine between the titles of the user's latest \
            training items and the item texts; --blend adds β times the standardised scores \
            of a collaborative model (β 0: text alone), one line a β; --cold ranks the \
            cold items from the same titles.
              fl-eval --model text-0003.safetensors --dataset ml100k \
                  --blend ials-0020.safetensors --beta 0,0.5,1,2 --reconstruct
            """,
        version: fedrecVersion)

    @Option(help: "Model checkpoint.") var model: String
    @Option(help: "Dataset directory: evaluate on all its shards.") var dataset: String?
    @Argument(help: "Shard files (instead of --dataset).") var shards: [String] = []
    @Option(name: .customShort("k"), help: "Cut-off K of the ranking metrics.") var k = 10
    @Flag(help: "Also compute ranking metrics for an explicit (mse) model.") var ranking = false
    @Flag(help: "Rank by training popularity instead of the model (a baseline; the model only names the dataset).") var popularity = false
    @Flag(help: "Cold-start protocol: rank the dataset's cold items against users' cold interactions (needs --dataset).") var cold = false
    @Flag(help: "Exact expected metrics of a uniformly random ranking (a baseline; the model only names the dataset).") var random = false
    @Option(help: "Also append the result as a JSON line to this file (e.g. metrics.jsonl).") var metricsLog: String?
    @OptionGroup(title: "User parameters") var users: UserParameterArguments
    @OptionGroup(title: "text-lora") var text: TextLoRATrainArguments
    @OptionGroup(title: "Graph filter (gfcf)") var graphFilter: GraphFilterEvalArguments
    @Flag(help: "text-lora: rank the training queries instead of the test ones (the fit).") var trainingQueries = false
    @Option(help: "text-lora next-item: blend with this mf, ncf or gfcf model's scores (needs --dataset; its user parameters as for fl-eval of it).")
    var blend: String?
    @Option(help: "text-lora next-item with --blend: the weights β of the standardised model scores, comma-separated; one line each.")
    var beta = "1"
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func validate() throws {
        guard k >= 1 else { throw ValidationError("-k must be at least 1") }
        guard dataset != nil || !shards.isEmpty else { throw ValidationError("give --dataset DIR or shard files") }
        if cold && dataset == nil { throw ValidationError("--cold needs --dataset (its dataset.json lists the cold items)") }
        if random && popularity { throw ValidationError("--random and --popularity are two baselines: give one") }
    }

    public func run() throws {
        try reportingErrors("fl-eval") {
            let paths = try dataset.map { try shardPaths(dataset: $0) } ?? shards
            try FileRoles(inputs: [model, dataset, users.stateDir, text.items, text.baseModel, blend] + paths, outputs: [metricsLog]).check()
            // A model that cannot be read goes down the MF path, which says what is wrong.
            let family = (try? ModelFamily.of(model: model)) ?? .mf
            switch family {
            case .textLoRA:
                guard !popularity, !random else {
                    throw FedRecError(.usage, file: model, "is a text-lora model; --popularity and --random are for mf models")
                }
                let items = text.items ?? dataset.map { $0 + "/items.tsv" }
                let betas = try beta.split(separator: ",").map { field -> Float in
                    guard let value = Float(String(field.filter { !$0.isWhitespace })), value.isFinite, value >= 0 else {
                        throw FedRecError(.usage, "--beta takes non-negative numbers separated by commas, not \(beta)")
                    }
                    return value
                }
                var blendUsers: UserParameterSource?
                if let blend {
                    guard dataset != nil else { throw FedRecError(.usage, "--blend needs --dataset DIR (the blend's users are the dataset's)") }
                    guard !betas.isEmpty else { throw FedRecError(.usage, "--beta needs at least one weight") }
                    blendUsers = try users.source(for: paths, settings: try users.settings(model: blend, command: "fl-eval"))
                }
                let coldItems = try dataset.map { try DatasetManifest.load($0).coldItems } ?? []
                let request = TextLoRAEvalRequest(
                    model: model, shards: paths, items: items, baseModel: text.baseModel, k: k, training: trainingQueries, coldItems: coldItems, cold: cold,
                    blend: blend, dataset: dataset, blendUsers: blendUsers, betas: betas, threads: text.threads, metricsLog: metricsLog,
                    json: format.json)
                return try TextFamilyLink.require("fl-eval").evaluate(request)
            case .lr, .fm:
                guard !cold, !random, !ranking else { throw FedRecError(.usage, "--cold, --random and --ranking are for mf models; lr and fm are evaluated by AUC, log loss and calibration") }
                return try evaluateCTR(model: model, shards: paths, itemBaseline: popularity, metricsLog: metricsLog, format: format)
            case .gfcf:
                guard !cold else { throw FedRecError(.usage, "--cold ranks cold items through MF's item text projection; a gfcf model has none") }
                try graphFilter.check()
                let report = try GraphFilterEvaluator.run(modelPath: model, shards: paths, k: k, filterWeight: graphFilter.filterWeight,
                                                          eigenvectors: graphFilter.eigenvectors, baseline: popularity ? .popularity : (random ? .random : .model))
                return try emitEvaluation(report.json, metricsLog: metricsLog, format: format)
            case .mf, .ncf: break
            }
            if graphFilter.given { throw FedRecError(.usage, "--filter-weight and --eigenvectors are for gfcf models") }
            let coldItems = try dataset.map { try DatasetManifest.load($0).coldItems } ?? []
            let baseline: RankingBaseline = popularity ? .popularity : (random ? .random : .model)
            let users = baseline != .model ? UserParameterSource(mode: .reconstruct, states: [], training: users.training.options)
                : try users.source(for: paths, settings: try users.settings(model: model, command: "fl-eval"))
            let report = family == .ncf
                ? try evaluateNCF(paths: paths, users: users, baseline: baseline)
                : try Evaluator.run(modelPath: model, shards: paths, users: users, k: k,
                                           ranking: ranking ? true : nil, evaluationProtocol: cold ? .cold : .standard,
                                           coldItems: coldItems, baseline: baseline)
            try emitEvaluation(report.json, metricsLog: metricsLog, format: format)
        }
    }

    /// fl-eval for an ncf model (`NCFEvaluator`); the cold protocol is MF's.
    func evaluateNCF(paths: [String], users: UserParameterSource, baseline: RankingBaseline) throws -> EvaluationReport {
        if cold { throw FedRecError(.usage, "--cold ranks cold items through MF's item text projection; an ncf model has none") }
        return try NCFEvaluator.run(modelPath: model, shards: paths, users: users, k: k, ranking: ranking ? true : nil, baseline: baseline)
    }
}
