import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport

/// Evaluates a graph filter (`GraphFilterModel`) on the shards' test data: each user with
/// test items is scored from its own training items (on the client, against the public
/// model) and ranked as `Evaluator` ranks an implicit model: full ranking over every item
/// the user has not trained on, and the sampled protocol over the user's stored negatives.
public enum GraphFilterEvaluator {
    /// Users scored together (each row of the eigenvectors is read once per batch).
    static let batch = 32

    /// - Parameters:
    ///   - filterWeight: α instead of the model's (`fl-eval --filter-weight`).
    ///   - eigenvectors: only the first k' eigenvectors (`fl-eval --eigenvectors`).
    ///   - baseline: popularity or a random order instead of the model, ranked as
    ///     `Evaluator` ranks them (the model then only names the dataset).
    public static func run(modelPath: String, shards: [String], k: Int, filterWeight: Float? = nil, eigenvectors: Int? = nil,
                           baseline: RankingBaseline = .model) throws -> EvaluationReport {
        let (model, _) = try GraphFilterModel.open(modelPath)
        let config = model.config
        let popularity = baseline == .popularity
            ? try trainingInteractionCounts(shards: shards, datasetId: config.datasetId, items: config.items).map { Float($0) } : []
        var report = try Evaluator.mergingShards(shards, round: model.round, objective: config.objective, k: k) { s in
            try evaluateShard(shards[s], model: model, k: k, filterWeight: filterWeight, eigenvectors: eigenvectors, baseline: baseline, popularity: popularity)
        }
        report.baseline = baseline
        guard report.ranking.users > 0 else { throw FedRecError(.emptyInput, file: shards.first, "no test data to evaluate") }
        return report
    }

    static func evaluateShard(_ shard: String, model: GraphFilterModel, k: Int, filterWeight: Float?, eigenvectors: Int?,
                              baseline: RankingBaseline, popularity: [Float]) throws -> EvaluationReport {
        let n = model.config.items
        var report = EvaluationReport(round: model.round, objective: model.config.objective, ranking: RankingMetrics(k: k), errors: RatingErrors())
        let reader = try ShardUserReader(path: shard, datasetId: model.config.datasetId, items: n)
        let scorer = GraphFilterScorer(model: model, filterWeight: filterWeight, eigenvectors: eigenvectors)
        var pending: [UserRecord] = []
        var scores: [Float] = []
        var excluded = [Bool](repeating: false, count: n)
        func flush() {
            guard !pending.isEmpty else { return }
            if baseline == .model {
                scorer.score(users: pending.map(\.train.distinctItems), into: &scores)
            } else {
                scores = Array(repeating: popularity, count: pending.count).flatMap { $0 }
            }
            scores.withUnsafeBufferPointer { all in
                for (b, record) in pending.enumerated() {
                    let row = UnsafeBufferPointer(rebasing: all[(b * n)..<((b + 1) * n)])
                    for item in record.train.items { excluded[Int(item)] = true }
                    excluded.withUnsafeBufferPointer { ex in
                        report.ranking.addFullRanking(scores: row, excluded: ex, relevant: record.test.items)
                        report.ranking.addSampled(scores: row, relevant: record.test.items, negatives: record.negatives)
                    }
                    for item in record.train.items { excluded[Int(item)] = false }
                }
            }
            pending.removeAll(keepingCapacity: true)
        }
        while let record = try reader.next() {
            guard !record.test.items.isEmpty else { continue }
            if baseline == .random {
                report.ranking.addRandomFullRanking(candidates: n - Set(record.train.items).count, relevant: record.test.items.count)
                report.ranking.addRandomSampled(negatives: record.negatives.count, relevant: record.test.items.count)
                continue
            }
            pending.append(record)
            if pending.count == batch { flush() }
        }
        flush()
        return report
    }
}
