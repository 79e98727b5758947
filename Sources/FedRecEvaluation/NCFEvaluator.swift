import Dispatch
import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecTraining

/// Finds an ncf user's private vector: its shard's state file, or rebuilt from its
/// training data (`--reconstruct`) as training rebuilds it.
final class NCFUserProvider {
    let state: UserState?
    let trainer: NCFClientTrainer?
    let options: TrainingOptions
    let width: Int

    init(model: NCFModel, source: UserParameterSource, statePath: String?, shard: ShardOrigin, shardPath: String) throws {
        options = source.training
        width = model.network.userWidth
        if source.mode == .state {
            guard let statePath else { throw FedRecError(.usage, "user parameters come from state files: give --state-dir, or --reconstruct") }
            state = try UserState.load(statePath, config: model.config, shard: shard, shardPath: shardPath).state
            trainer = nil
        } else {
            state = nil
            trainer = NCFClientTrainer(model: model, options: source.training)
        }
    }

    func vector(for record: UserRecord) -> [Float]? {
        if let state {
            guard let row = state.row(of: record.user) else { return nil }
            return Array(state.embedding[(row * width)..<((row + 1) * width)])
        }
        guard let trainer else { return nil }
        return NCFShardTrainer.reconstruct(record, trainer: trainer, options: options)
    }
}

/// Evaluates an ncf model as `Evaluator` does an MF one: RMSE and MAE on the test
/// ratings of an `mse` model (predictions clipped to the rating scale), and ranking
/// metrics, full ranking over every item the user has not trained on and the sampled
/// protocol of the NCF paper (He et al. 2017, §4.1: the held-out item against the user's
/// 99 stored negatives, HR@K and NDCG@K). The popularity and random baselines rank as
/// `Evaluator`'s do.
public enum NCFEvaluator {
    public static func run(modelPath: String, shards: [String], users source: UserParameterSource, k: Int,
                           ranking: Bool? = nil, baseline: RankingBaseline = .model) throws -> EvaluationReport {
        let (model, _) = try NCFModel.open(modelPath)
        let config = model.config
        let rankingWanted = baseline != .model || (ranking ?? (config.objective != .mse))
        let popularity = baseline == .popularity
            ? try trainingInteractionCounts(shards: shards, datasetId: config.datasetId, items: config.items).map { Float($0) } : []
        var report = try Evaluator.mergingShards(shards, round: model.round, objective: config.objective, k: k) { s in
            try evaluateShard(shards[s], statePath: s < source.states.count ? source.states[s] : nil, model: model,
                              source: source, k: k, ranking: rankingWanted, baseline: baseline, popularity: popularity)
        }
        report.baseline = baseline
        guard report.errors.count > 0 || report.ranking.users > 0 else {
            throw FedRecError(.emptyInput, file: shards.first, "no test data to evaluate")
        }
        return report
    }

    static func evaluateShard(_ shard: String, statePath: String?, model: NCFModel, source: UserParameterSource, k: Int,
                              ranking rankingWanted: Bool, baseline: RankingBaseline, popularity: [Float]) throws -> EvaluationReport {
        let config = model.config
        var report = EvaluationReport(round: model.round, objective: config.objective, ranking: RankingMetrics(k: k), errors: RatingErrors())
        let low = Float(model.notes["rating_min"] ?? "") ?? -.infinity
        let high = Float(model.notes["rating_max"] ?? "") ?? .infinity
        let reader = try ShardUserReader(path: shard, datasetId: config.datasetId, items: config.items)
        let provider = baseline == .model ? try NCFUserProvider(model: model, source: source, statePath: statePath, shard: reader.origin, shardPath: shard) : nil
        let scorer = baseline == .model ? NCFScorer(model: model) : nil
        var scores = baseline == .popularity ? popularity : [Float](repeating: 0, count: config.items)
        var excluded = [Bool](repeating: false, count: config.items)
        while let record = try reader.next() {
            guard !record.test.items.isEmpty else { continue }
            if baseline == .random {
                report.ranking.addRandomFullRanking(candidates: config.items - Set(record.train.items).count, relevant: record.test.items.count)
                report.ranking.addRandomSampled(negatives: record.negatives.count, relevant: record.test.items.count)
                continue
            }
            if let provider, let scorer {
                guard let user = provider.vector(for: record) else {
                    report.usersWithoutParameters += 1
                    continue
                }
                scorer.score(user: user, into: &scores)
                if config.objective == .mse {
                    for (e, item) in record.test.items.enumerated() {
                        report.errors.add(predicted: min(max(scores[Int(item)], low), high), actual: record.test.ratings[e])
                    }
                }
            }
            guard rankingWanted else { continue }
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
}
