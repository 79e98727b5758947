import Dispatch

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

    init(model: ModelView, mode: TrainingOptions.UserParameters, statePath: String?, training: TrainingOptions) throws {
        self.model = model
        self.mode = mode
        self.training = training
        solver = UserSolver(model: model, l2: training.l2, l2Bias: training.l2Bias, alpha: training.alpha)
        if mode == .state {
            guard let statePath else { throw FedRecError(.usage, "user parameters come from state files: give --state for every shard, or --reconstruct") }
            state = try UserState.load(statePath, config: model.config).state
        } else {
            state = nil
        }
    }

    /// The user's embedding and bias, or nil when a state file lacks the user.
    func parameters(for record: UserRecord) -> (embedding: [Float], bias: Float)? {
        let d = model.config.dim
        if let state {
            guard let row = state.row(of: record.user) else { return nil }
            return (Array(state.embedding[(row * d)..<((row + 1) * d)]), state.bias[row])
        }
        switch model.config.objective {
        case .mse, .wals:
            return solver.solve(record.train)
        case .bpr, .bce:
            var generator = SeededGenerator(seed: training.seed, stream: 0xC0FF_EE00 &+ UInt64(record.user))
            let start = ClientUsers(embedding: (0..<d).map { _ in Float(generator.nextGaussian()) * training.initScale }, bias: [0])
            var stream = SeededGenerator(seed: training.seed ^ 0xE7A1, stream: UInt64(record.user))
            let result = trainer.train(users: [record], start: start, generator: &stream) { _, _ in }
            return (result.users.embedding, result.users.bias[0])
        }
    }
}

/// One evaluation of a model on the test data of some shards.
public struct EvaluationReport: Sendable {
    public var round: Int
    public var objective: Objective
    public var ranking: RankingMetrics
    public var errors: RatingErrors
    /// Test users skipped because no parameters could be found for them.
    public var usersWithoutParameters = 0

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
        return .object(object)
    }
}

/// Evaluates a model on shards' test data: RMSE/MAE for explicit models, and ranking
/// metrics with full ranking (all items the user has not trained on) and the sampled
/// protocol (test item versus the shard's stored negatives).
public enum Evaluator {
    /// - Parameter popularity: rank every user's items by their number of training
    ///   interactions instead of by the model (the popularity baseline, to check a split
    ///   and protocol against published numbers).
    public static func run(modelPath: String, shards: [String], users source: UserParameterSource, k: Int,
                           ranking: Bool? = nil, popularity: Bool = false) throws -> EvaluationReport {
        let model = try ModelView(path: modelPath)
        let config = model.config
        let rankingWanted = popularity || (ranking ?? (config.objective != .mse))
        var counts = [Float](repeating: 0, count: config.items)
        if popularity {
            for shard in shards {
                let reader = try ShardUserReader(path: shard, datasetId: config.datasetId, items: config.items)
                while let record = try reader.next() { for item in record.train.items { counts[Int(item)] += 1 } }
            }
        }
        // Shards are evaluated concurrently, each into its own partial report; partials are
        // merged in shard order, so the result does not depend on scheduling.
        let partials = ConcurrentResults<Result<EvaluationReport, FedRecError>>(count: shards.count)
        let scoresByPopularity = counts
        DispatchQueue.concurrentPerform(iterations: shards.count) { s in
            do {
                partials[s] = .success(try evaluateShard(
                    shards[s], statePath: s < source.states.count ? source.states[s] : nil, model: model, source: source, k: k,
                    ranking: rankingWanted, popularity: popularity ? scoresByPopularity : nil))
            } catch let error as FedRecError {
                partials[s] = .failure(error)
            } catch {
                partials[s] = .failure(FedRecError(.io, file: shards[s], "\(error)"))
            }
        }
        var report = EvaluationReport(round: model.round, objective: config.objective, ranking: RankingMetrics(k: k), errors: RatingErrors())
        for s in 0..<shards.count {
            guard let partial = partials[s] else { continue }
            let shardReport = try partial.get()
            report.ranking.merge(shardReport.ranking)
            report.errors.merge(shardReport.errors)
            report.usersWithoutParameters += shardReport.usersWithoutParameters
        }
        guard report.errors.count > 0 || report.ranking.users > 0 else {
            throw FedRecError(.emptyInput, file: shards.first, "no test data to evaluate")
        }
        return report
    }

    /// One shard's contribution to an evaluation.
    static func evaluateShard(_ shard: String, statePath: String?, model: ModelView, source: UserParameterSource, k: Int,
                              ranking rankingWanted: Bool, popularity: [Float]?) throws -> EvaluationReport {
        let config = model.config
        let d = config.dim
        var report = EvaluationReport(round: model.round, objective: config.objective, ranking: RankingMetrics(k: k), errors: RatingErrors())
        let low = Float(model.file.metadata["rating_min"] ?? "") ?? -.infinity
        let high = Float(model.file.metadata["rating_max"] ?? "") ?? .infinity
        var scores = popularity ?? [Float](repeating: 0, count: config.items)
        var excluded = [Bool](repeating: false, count: config.items)
        let provider = try UserParameterProvider(model: model, mode: popularity == nil ? source.mode : .reconstruct, statePath: statePath, training: source.training)
        let reader = try ShardUserReader(path: shard, datasetId: config.datasetId, items: config.items)
        while let record = try reader.next() {
            guard !record.test.isEmpty else { continue }
            if popularity == nil {
                guard let (p, bu) = provider.parameters(for: record) else {
                    report.usersWithoutParameters += 1
                    continue
                }
                if config.objective == .mse {
                    for (e, item) in record.test.items.enumerated() {
                        var prediction = model.globalBias + bu + model.itemBias[Int(item)]
                        for j in 0..<d { prediction += p[j] * model.itemEmbedding[Int(item) * d + j] }
                        report.errors.add(predicted: min(max(prediction, low), high), actual: record.test.ratings[e])
                    }
                }
                guard rankingWanted else { continue }
                score(model: model, user: p, into: &scores)
            }
            for item in record.train.items { excluded[Int(item)] = true }
            scores.withUnsafeBufferPointer { sc in
                excluded.withUnsafeBufferPointer { ex in
                    report.ranking.addFullRanking(scores: sc, excluded: ex, relevant: record.test.items)
                    report.ranking.addSampled(scores: sc, relevant: record.test.items, negatives: record.negatives)
                }
            }
            for item in record.train.items { excluded[Int(item)] = false }
        }
        return report
    }

    /// Ranking scores of every item for a user: b_i + p_u·q_i (terms equal for all items
    /// are left out).
    /// - Complexity: O(items · d).
    public static func score(model: ModelView, user p: [Float], into scores: inout [Float]) {
        let d = model.config.dim
        let q = model.itemEmbedding
        guard let rows = q.baseAddress else { return }
        scores.withUnsafeMutableBufferPointer { out in
            p.withUnsafeBufferPointer { p in
                for i in 0..<model.config.items {
                    out[i] = model.itemBias[i] + VectorKernels.dot(p.baseAddress!, rows + i * d, n: d)
                }
            }
        }
    }
}
