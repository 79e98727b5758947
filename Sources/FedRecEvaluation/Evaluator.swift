import Dispatch
import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecTraining

/// Where `fl-eval` and `fl-recommend` get users' private parameters from.
public struct UserParameterSource: Sendable {
    public var mode: TrainingOptions.UserParameters
    /// State files, one per shard, in the order the shards are given (nil: none).
    public var states: [String?]
    /// Training settings used to rebuild user parameters (λ, α, epochs, seed).
    public var training: TrainingOptions

    public init(mode: TrainingOptions.UserParameters, states: [String?], training: TrainingOptions) {
        self.mode = mode
        self.states = states
        self.training = training
    }
}

/// Rebuilds or looks up user parameters for one shard.
final class UserParameterProvider {
    let model: ModelView
    let solver: UserSolver
    let state: UserState?
    let training: TrainingOptions
    let mode: TrainingOptions.UserParameters
    private lazy var trainer = SGDClientTrainer(model: model, options: reconstructionOptions)

    private var reconstructionOptions: TrainingOptions {
        var options = training
        options.userParameters = .reconstruct
        options.epochs = 0
        return options
    }

    /// - Parameter shard: the shard read (and its path), whose state `statePath` must be.
    init(model: ModelView, mode: TrainingOptions.UserParameters, statePath: String?, training: TrainingOptions,
         shard: (origin: ShardOrigin, path: String)? = nil) throws {
        self.model = model
        self.mode = mode
        self.training = training
        solver = try UserSolver(model: model, l2: training.l2, l2Bias: training.l2Bias, alpha: training.alpha)
        if mode == .state {
            guard let statePath else { throw FedRecError(.usage, "user parameters come from state files: give --state for every shard, or --reconstruct") }
            state = try UserState.load(statePath, config: model.config, shard: shard?.origin, shardPath: shard?.path ?? "the shard").state
        } else {
            state = nil
        }
    }

    /// The user's embedding and bias, or nil when a state file lacks the user.
    func parameters(for record: UserRecord) throws -> (embedding: [Float], bias: Float)? {
        let d = model.config.dim
        if let state {
            guard let row = state.row(of: record.user) else { return nil }
            return (Array(state.embedding[(row * d)..<((row + 1) * d)]), state.bias[row])
        }
        switch model.config.objective {
        case .mse, .wals:
            return try solver.solve(record.train)
        case .filter:
            throw FedRecError(.shape, "an mf model cannot have the filter objective (ModelConfig refuses it)")
        case .bpr, .bce:
            let start = ClientUsers(embedding: training.initialEmbedding(user: record.user, dim: d), bias: [0])
            var stream = SeededGenerator(seed: training.seed ^ 0xE7A1, stream: UInt64(record.user))
            let result = trainer.train(users: [record], start: start, generator: &stream) { _, _ in }
            return (result.users.embedding, result.users.bias[0])
        }
    }
}

/// What an evaluation ranks and what counts as relevant.
public enum EvaluationProtocol: String, Sendable {
    /// Each user's test items against every item the user has not trained on (cold items
    /// of the dataset, if any, are no candidates: they are the cold protocol's).
    case standard
    /// Cold start: each user with interactions with cold items (`KEY.cold.npy`) ranks all
    /// the dataset's cold items; those interactions are the relevant ones.
    case cold
}

/// Who scores the items.
public enum RankingBaseline: String, Sendable {
    /// The model with the user's parameters.
    case model
    /// Training popularity (number of training interactions; ties toward the smaller index).
    case popularity
    /// A uniformly random order: expected metrics, computed exactly.
    case random
}

/// One evaluation of a model on the test data of some shards.
public struct EvaluationReport: Sendable {
    public var round: Int
    public var objective: Objective
    public var ranking: RankingMetrics
    public var errors: RatingErrors
    /// Test users skipped because no parameters could be found for them.
    public var usersWithoutParameters = 0
    public var evaluationProtocol: EvaluationProtocol = .standard
    public var baseline: RankingBaseline = .model

    /// The report as one JSON object (sorted keys).
    public var json: JSONValue {
        var object: [String: JSONValue] = ["round": .number(Double(round)), "objective": .string(objective.rawValue)]
        if errors.count > 0 {
            object["rmse"] = .number(errors.rmse)
            object["mae"] = .number(errors.mae)
            object["ratings"] = .number(Double(errors.count))
        }
        if ranking.users > 0 {
            let k = ranking.k
            object["users"] = .number(Double(ranking.users))
            object["hr@\(k)"] = .number(ranking.hitRate)
            object["ndcg@\(k)"] = .number(ranking.meanNDCG)
            object["recall@\(k)"] = .number(ranking.meanRecall)
            object["mrr"] = .number(ranking.mrr)
            if ranking.sampledUserCount > 0 {
                object["sampled_hr@\(k)"] = .number(ranking.sampledHitRate)
                object["sampled_ndcg@\(k)"] = .number(ranking.sampledMeanNDCG)
            }
        }
        if usersWithoutParameters > 0 { object["users_without_parameters"] = .number(Double(usersWithoutParameters)) }
        if evaluationProtocol != .standard { object["protocol"] = .string(evaluationProtocol.rawValue) }
        if baseline != .model { object["baseline"] = .string(baseline.rawValue) }
        return .object(object)
    }
}

/// Evaluates a model on shards' test data: RMSE/MAE for explicit models, and ranking
/// metrics with full ranking (all items the user has not trained on) and the sampled
/// protocol (test item versus the shard's stored negatives); or, with the cold protocol,
/// full ranking of the held-out cold items.
public enum Evaluator {
    /// - Parameters:
    ///   - popularity: rank every user's items by their number of training interactions
    ///     instead of by the model (the popularity baseline, to check a split and protocol
    ///     against published numbers). Same as `baseline: .popularity`.
    ///   - evaluationProtocol: `.cold` ranks the cold items (`coldItems`, from dataset.json).
    ///   - coldItems: the dataset's cold items; candidates of the cold protocol, excluded
    ///     from the standard one.
    ///   - baseline: the model, popularity or random order.
    public static func run(modelPath: String, shards: [String], users source: UserParameterSource, k: Int,
                           ranking: Bool? = nil, popularity: Bool = false, evaluationProtocol: EvaluationProtocol = .standard,
                           coldItems: [Int32] = [], baseline: RankingBaseline = .model) throws -> EvaluationReport {
        let model = try ModelView(path: modelPath)
        let config = model.config
        let baseline = popularity ? .popularity : baseline
        if evaluationProtocol == .cold && coldItems.isEmpty {
            throw FedRecError(.emptyInput, file: shards.first, "the dataset has no cold items (partition with fl-partition --cold-items)")
        }
        let rankingWanted = baseline != .model || evaluationProtocol == .cold || (ranking ?? (config.objective != .mse))
        // Per-item buffers only when items are ranked: rating errors cost what the test data
        // costs, not what the catalogue costs.
        var isCold = [Bool](repeating: false, count: rankingWanted ? config.items : 0)
        for item in coldItems {
            guard item >= 0 && Int(item) < config.items else {
                throw FedRecError(.shape, file: modelPath, "cold item \(item) is outside the model's \(config.items) items")
            }
            if rankingWanted { isCold[Int(item)] = true }
        }
        let counts = baseline == .popularity
            ? try trainingInteractionCounts(shards: shards, datasetId: config.datasetId, items: config.items).map { Float($0) }
            : []
        let scoresByPopularity = counts
        let coldMask = isCold
        var report = try mergingShards(shards, round: model.round, objective: config.objective, k: k) { s in
            try evaluateShard(
                shards[s], statePath: s < source.states.count ? source.states[s] : nil, model: model, source: source, k: k,
                ranking: rankingWanted, baseline: baseline, popularity: scoresByPopularity, evaluationProtocol: evaluationProtocol,
                isCold: coldMask)
        }
        report.evaluationProtocol = evaluationProtocol
        report.baseline = baseline
        try model.checkIntegrity()
        guard report.errors.count > 0 || report.ranking.users > 0 else {
            throw FedRecError(.emptyInput, file: shards.first, evaluationProtocol == .cold ? "no user has cold interactions" : "no test data to evaluate")
        }
        return report
    }

    /// Evaluates the shards concurrently, each into its own partial report, and merges the
    /// partials in shard order, so the result does not depend on scheduling.
    /// - Throws: the first shard's error, in shard order.
    static func mergingShards(_ shards: [String], round: Int, objective: Objective, k: Int,
                              _ evaluate: @Sendable (_ shard: Int) throws -> EvaluationReport) throws -> EvaluationReport {
        let partials = ConcurrentResults<Result<EvaluationReport, FedRecError>>(count: shards.count)
        DispatchQueue.concurrentPerform(iterations: shards.count) { s in
            do {
                partials[s] = .success(try evaluate(s))
            } catch let error as FedRecError {
                partials[s] = .failure(error)
            } catch {
                partials[s] = .failure(FedRecError(.io, file: shards[s], "\(error)"))
            }
        }
        var report = EvaluationReport(round: round, objective: objective, ranking: RankingMetrics(k: k), errors: RatingErrors())
        for s in 0..<shards.count {
            guard let partial = partials[s] else { continue }
            let shardReport = try partial.get()
            report.ranking.merge(shardReport.ranking)
            report.errors.merge(shardReport.errors)
            report.usersWithoutParameters += shardReport.usersWithoutParameters
        }
        return report
    }

    /// One shard's contribution to an evaluation.
    static func evaluateShard(_ shard: String, statePath: String?, model: ModelView, source: UserParameterSource, k: Int,
                              ranking rankingWanted: Bool, baseline: RankingBaseline, popularity: [Float],
                              evaluationProtocol: EvaluationProtocol, isCold: [Bool]) throws -> EvaluationReport {
        let config = model.config
        let d = config.dim
        let cold = evaluationProtocol == .cold
        var report = EvaluationReport(round: model.round, objective: config.objective, ranking: RankingMetrics(k: k), errors: RatingErrors())
        let low = Float(model.file.metadata["rating_min"] ?? "") ?? -.infinity
        let high = Float(model.file.metadata["rating_max"] ?? "") ?? .infinity
        var scores = baseline == .popularity ? popularity : [Float](repeating: 0, count: rankingWanted ? config.items : 0)
        // Items that are no candidates: the cold protocol ranks cold items only; the
        // standard one every warm item but the user's training items.
        var excluded = cold ? isCold.map { !$0 } : isCold
        let coldCount = isCold.reduce(0) { $0 + ($1 ? 1 : 0) }
        // Baselines rank without user parameters, so they need no provider (nor its Gram).
        let reader = try ShardUserReader(path: shard, datasetId: config.datasetId, items: config.items)
        let provider = baseline == .model
            ? try UserParameterProvider(model: model, mode: source.mode, statePath: statePath, training: source.training,
                                        shard: (reader.origin, shard)) : nil
        let dense = provider != nil && rankingWanted ? try model.items.dense() : nil
        while let record = try reader.next() {
            let relevant = cold ? record.cold.items : record.test.items
            guard !relevant.isEmpty else { continue }
            if let provider {
                guard let (p, bu) = try provider.parameters(for: record) else {
                    report.usersWithoutParameters += 1
                    continue
                }
                if config.objective == .mse && !cold {
                    for (e, item) in record.test.items.enumerated() {
                        var prediction = model.globalBias + bu + model.items.bias(Int(item))
                        let row = model.items.embedding(Int(item))
                        for j in 0..<d { prediction += p[j] * row[j] }
                        report.errors.add(predicted: min(max(prediction, low), high), actual: record.test.ratings[e])
                    }
                }
                guard rankingWanted else { continue }
                dense?.score(user: p, into: &scores)
            }
            if baseline == .random {
                let trainedWarm = cold ? 0 : Set(record.train.items).count
                report.ranking.addRandomFullRanking(candidates: cold ? coldCount : config.items - coldCount - trainedWarm,
                                                    relevant: relevant.count)
                if !cold { report.ranking.addRandomSampled(negatives: record.negatives.count, relevant: relevant.count) }
                continue
            }
            if !cold { for item in record.train.items { excluded[Int(item)] = true } }
            scores.withUnsafeBufferPointer { sc in
                excluded.withUnsafeBufferPointer { ex in
                    report.ranking.addFullRanking(scores: sc, excluded: ex, relevant: relevant)
                    if !cold { report.ranking.addSampled(scores: sc, relevant: relevant, negatives: record.negatives) }
                }
            }
            if !cold { for item in record.train.items { excluded[Int(item)] = isCold[Int(item)] } }
        }
        return report
    }

}
