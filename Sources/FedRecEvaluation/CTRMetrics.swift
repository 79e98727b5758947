#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecData
import FedRecModel
import FedRecSupport
import FedRecTraining

/// Metrics of predicted click probabilities against 0/1 labels.
public struct CTRMetrics: Sendable, Equatable {
    public var examples = 0
    public var clicks = 0
    /// Area under the ROC curve: the probability that a random click scores above a
    /// random non-click, ties counting ½ (Mann–Whitney U over average ranks); NaN without
    /// both classes.
    public var auc = Double.nan
    /// Mean binary cross-entropy (natural log), probabilities clamped to [1e-7, 1 − 1e-7].
    public var logLoss = Double.nan
    /// Mean predicted probability.
    public var meanPredicted = Double.nan
    /// Observed click rate.
    public var observedRate = Double.nan

    /// Calibration: mean predicted over observed click rate (1 is calibrated).
    public var calibration: Double { meanPredicted / observedRate }

    public init() {}

    /// The metrics of `scores` (probabilities) against `labels` (0 or 1).
    public init(scores: [Float], labels: [Float]) {
        precondition(scores.count == labels.count)
        examples = scores.count
        guard examples > 0 else { return }
        var positives = 0.0, loss = 0.0, total = 0.0
        for (p, y) in zip(scores, labels) {
            let q = min(max(Double(p), 1e-7), 1 - 1e-7)
            loss -= y > 0.5 ? log(q) : log(1 - q)
            total += Double(p)
            if y > 0.5 { positives += 1 }
        }
        clicks = Int(positives)
        logLoss = loss / Double(examples)
        meanPredicted = total / Double(examples)
        observedRate = positives / Double(examples)
        let negatives = Double(examples) - positives
        guard positives > 0, negatives > 0 else { return }
        // Rank sum of the clicks, tied scores sharing their average rank.
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let averageRank = Double(i + j) / 2 + 1
            for t in i...j where labels[order[t]] > 0.5 { rankSum += averageRank }
            i = j + 1
        }
        auc = (rankSum - positives * (positives + 1) / 2) / (positives * negatives)
    }

    /// The metrics as JSON members.
    public var json: [String: JSONValue] {
        func number(_ x: Double) -> JSONValue { x.isFinite ? .number(x) : .null }
        return [
            "examples": .number(Double(examples)), "clicks": .number(Double(clicks)), "auc": number(auc), "log_loss": number(logLoss),
            "mean_predicted": number(meanPredicted), "observed_rate": number(observedRate), "calibration": number(calibration),
        ]
    }
}

/// What `fl-eval` reports for a CTR model (`lr`, `fm`) or its item-CTR baseline.
public struct CTRReport: Sendable {
    public var round: Int
    public var family: ModelFamily
    public var test: CTRMetrics
    /// The same metrics on the training examples (calibration's other half).
    public var train: CTRMetrics
    public var baseline: Bool

    public var json: JSONValue {
        var object = test.json
        object["round"] = .number(Double(round))
        object["model_type"] = .string(family.rawValue)
        object["protocol"] = "ctr"
        object["train_auc"] = train.auc.isFinite ? .number(train.auc) : .null
        object["train_log_loss"] = train.logLoss.isFinite ? .number(train.logLoss) : .null
        object["train_calibration"] = train.calibration.isFinite ? .number(train.calibration) : .null
        object["train_observed_rate"] = train.observedRate.isFinite ? .number(train.observedRate) : .null
        if baseline { object["baseline"] = "item-ctr" }
        return .object(object)
    }
}

/// Evaluates a CTR model on the shards' test examples (test interactions labelled by the
/// model's click threshold, and test impressions as non-clicks): AUC, log loss and
/// calibration, pooled over every test example, and the same on the training examples.
///
/// The baseline (`itemBaseline`) scores each item by its training click rate, smoothed
/// towards the overall rate μ: (clicks_i + m μ) / (shown_i + m), m = 10 (an m-estimate);
/// it needs the counts of every shard, so it is a centralised reference, not a federated model.
public enum CTREvaluator {
    public static let smoothing = 10.0

    public static func run(modelPath: String, shards: [String], itemBaseline: Bool = false) throws -> CTRReport {
        let (model, _) = try CTRModel.open(modelPath)
        let config = model.model.config
        let items = model.catalogueItems
        var shown = [Double](repeating: 0, count: items), clicked = [Double](repeating: 0, count: items)
        if itemBaseline {
            for path in shards {
                let reader = try ShardUserReader(path: path, datasetId: config.datasetId, items: items)
                while let record = try reader.next() {
                    for (item, rating) in zip(record.train.items, record.train.ratings) {
                        shown[Int(item)] += 1
                        if rating >= model.clickThreshold { clicked[Int(item)] += 1 }
                    }
                    for item in record.impressions { shown[Int(item)] += 1 }
                }
            }
        }
        let totalShown = shown.reduce(0, +)
        let mu = totalShown > 0 ? clicked.reduce(0, +) / totalShown : 0
        var scores: (train: [Float], test: [Float]) = ([], [])
        var labels: (train: [Float], test: [Float]) = ([], [])
        var examples = CTRExamples()
        var sums = [Float](repeating: 0, count: max(model.rank, 1))

        func score(_ examples: CTRExamples, items: [Int32], into out: inout [Float]) {
            if itemBaseline {
                for item in items { out.append(Float((clicked[Int(item)] + smoothing * mu) / (shown[Int(item)] + smoothing))) }
                return
            }
            examples.buckets.withUnsafeBufferPointer { all in
                sums.withUnsafeMutableBufferPointer { s in
                    for e in 0..<examples.count {
                        out.append(model.probability(UnsafeBufferPointer(rebasing: all[Int(examples.offset[e])..<Int(examples.offset[e + 1])]), sums: s))
                    }
                }
            }
        }

        for path in shards {
            let reader = try ShardUserReader(path: path, datasetId: config.datasetId, items: items)
            while let record = try reader.next() {
                for test in [false, true] {
                    examples.removeAll()
                    examples.append(record, model: model, test: test)
                    let shownItems = (test ? record.test.items : record.train.items) + (test ? record.testImpressions : record.impressions)
                    if test {
                        score(examples, items: shownItems, into: &scores.test)
                        labels.test += examples.labels
                    } else {
                        score(examples, items: shownItems, into: &scores.train)
                        labels.train += examples.labels
                    }
                }
            }
        }
        guard !labels.test.isEmpty else { throw FedRecError(.emptyInput, file: shards.first ?? modelPath, "the shards hold no test examples") }
        return CTRReport(round: model.model.round, family: config.family, test: CTRMetrics(scores: scores.test, labels: labels.test),
                         train: CTRMetrics(scores: scores.train, labels: labels.train), baseline: itemBaseline)
    }
}

/// Top-K items by predicted click probability for users of a CTR model (`fl-recommend`),
/// scored on the client's side from its own features; the user's own items (train and
/// test) are never recommended.
public enum CTRRecommender {
    /// - Parameter users: raw ids (nil: every user); ids no shard holds are skipped.
    public static func run(modelPath: String, dataset: DatasetDirectory, users: [String]?, k: Int) throws -> [Recommendation] {
        let (model, _) = try CTRModel.open(modelPath)
        let config = model.model.config
        guard dataset.manifest.datasetId == config.datasetId else {
            throw FedRecError(.mismatch, file: modelPath, "belongs to another dataset than \(dataset.path)")
        }
        let wanted = users.map(Set.init)
        var sums = [Float](repeating: 0, count: max(model.rank, 1))
        var active: [Int32] = []
        var scores = [Float](repeating: 0, count: model.catalogueItems)
        var out: [Recommendation] = []
        for path in dataset.shardPaths {
            let reader = try ShardUserReader(path: path, datasetId: config.datasetId, items: model.catalogueItems)
            while let record = try reader.next() {
                if let wanted, !wanted.contains(record.id) { continue }
                let user = model.userBuckets(id: record.id, features: record.features)
                for item in 0..<model.catalogueItems {
                    active.removeAll(keepingCapacity: true)
                    active += user
                    active += model.itemBuckets(item)
                    scores[item] = active.withUnsafeBufferPointer { a in sums.withUnsafeMutableBufferPointer { model.probability(a, sums: $0) } }
                }
                let own = Set(record.train.items + record.test.items)
                let top = (0..<model.catalogueItems).filter { !own.contains(Int32($0)) }
                    .sorted { (scores[$0], -$0) > (scores[$1], -$1) }.prefix(k)
                for (rank, item) in top.enumerated() {
                    out.append(Recommendation(user: record.id, rank: rank + 1, item: Int32(item), score: scores[item]))
                }
            }
        }
        return out
    }
}
