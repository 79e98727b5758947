import FedRecCore
import FedRecData
import FedRecEvaluation
import FedRecFormats
import FedRecModel
import FedRecSupport

/// Next-item quality of a text-lora checkpoint of task `next-item`: each user with test
/// items ranks every item it has not trained on (cold items are no candidates) by the
/// scores of `NextItemTextScorer` (the cosine of its latest training titles to each item's
/// text), full ranking, its test items relevant: HR@K, NDCG@K, Recall@K and MRR, means
/// over users.
///
/// Blended with a collaborative model (an mf, ncf or gfcf checkpoint's scores s_u of the
/// same users), item i scores cos(q_u, t_i) + β·z_i, z = s_u standardised over the
/// catalogue (`PersonalizedSearch.combine`): β = 0 is the text model alone, a large β the
/// collaborative model with text breaking its ties. Several β are scored in one pass.
public enum LoRANextItemEvaluator {
    /// A collaborative model to blend with, and the weights to try.
    public struct Blend: Sendable {
        public var modelPath: String
        public var dataset: DatasetDirectory
        /// Where the model's user parameters come from (state files or rebuilt).
        public var source: UserParameterSource
        public var betas: [Float]

        public init(modelPath: String, dataset: DatasetDirectory, source: UserParameterSource, betas: [Float]) {
            self.modelPath = modelPath
            self.dataset = dataset
            self.source = source
            self.betas = betas
        }
    }

    public struct Report: Sendable {
        public var round: Int
        public var metrics: RankingMetrics
        /// The cold-start protocol's figures.
        public var cold = false
        /// The blend's model and β (nil: the text model alone).
        public var blend: String?
        public var beta: Float?

        /// One JSON line: `protocol` "next-item" (or "cold"), `users`, `hr@K`, `ndcg@K`, `recall@K`,
        /// `mrr`, `round`, and `blend` and `beta` when blended.
        public var json: JSONValue {
            let k = metrics.k
            var object: [String: JSONValue] = [
                "protocol": .string(cold ? "cold" : "next-item"), "round": .number(Double(round)), "users": .number(Double(metrics.users)),
                "hr@\(k)": .number(metrics.hitRate), "ndcg@\(k)": .number(metrics.meanNDCG), "recall@\(k)": .number(metrics.meanRecall),
                "mrr": .number(metrics.mrr),
            ]
            if let blend, let beta {
                object["blend"] = .string(blend)
                object["beta"] = .number(Double(beta))
            }
            return .object(object)
        }
    }

    /// - Parameters:
    ///   - coldItems: the dataset's cold items: no candidates, or with `cold` the only ones.
    ///   - cold: the cold-start protocol (as `fl-eval --cold` for mf): every user with
    ///     interactions with cold items ranks all cold items from its latest training
    ///     titles, those interactions relevant (`protocol` `cold`).
    ///   - blend: score the blends instead of the text model alone (one report a β).
    /// - Throws: `.usage` naming the model when it is a search adapter; `.emptyInput` when
    ///   no user has both training and test items; the shards', model's and blend's errors.
    public static func run(
        modelPath: String, shards: [String], itemsPath: String, modelDirectory: String, k: Int, coldItems: [Int32] = [], cold: Bool = false, blend: Blend? = nil,
        threads: Int? = nil, batchSize: Int = 64
    ) throws -> [Report] {
        // The shards are read before the catalogue is encoded, so a bad one is reported at once.
        let checkpoint = try NextItemCheckpoint(modelPath: modelPath, itemsPath: itemsPath)
        let config = checkpoint.config
        if let blend, blend.dataset.manifest.datasetId != config.datasetId {
            throw FedRecError(.mismatch, file: blend.dataset.path, "is not the dataset the text-lora model was made for")
        }
        // Each evaluated user's query, by user index.
        var queryOf: [Int32: Int] = [:]
        var queries: [String] = []
        for shard in shards {
            let reader = try ShardUserReader(path: shard, datasetId: config.datasetId, items: config.items)
            while let record = try reader.next() {
                guard !(cold ? record.cold : record.test).isEmpty && !record.train.isEmpty else { continue }
                queryOf[record.user] = queries.count
                queries.append(checkpoint.query(record))
            }
        }
        guard !queries.isEmpty else {
            throw FedRecError(.emptyInput, file: shards.first ?? modelPath, "holds no user with both training and \(cold ? "cold" : "test") items")
        }
        let scorer = try NextItemTextScorer(checkpoint: checkpoint, modelDirectory: modelDirectory, threads: threads, batchSize: batchSize)
        let vectors = try scorer.encode(queries)

        let n = config.items
        let betas = blend?.betas ?? [0]
        var metrics = [RankingMetrics](repeating: RankingMetrics(k: k), count: betas.count)
        var similarity = [Float](repeating: 0, count: n)
        var scores = [Float](repeating: 0, count: n)
        var mask = [Bool](repeating: cold, count: n)
        for item in coldItems where item >= 0 && Int(item) < n { mask[Int(item)] = !cold }
        let base = mask
        // Ranks one user's test items for every β.
        func rank(_ record: UserRecord, preference: [Float]?) {
            guard let row = queryOf[record.user] else { return }
            scorer.similarities(queries: vectors, row: row, into: &similarity)
            for item in record.train.items { mask[Int(item)] = true }
            let relevant = cold ? record.cold.distinctItems : record.test.items
            let z = preference.map(PersonalizedSearch.standardised)
            for (b, beta) in betas.enumerated() {
                scores.withUnsafeMutableBufferPointer { out in
                    similarity.withUnsafeBufferPointer { s in
                        if let z {
                            for i in 0..<n { out[i] = s[i] + beta * z[i] }
                        } else {
                            for i in 0..<n { out[i] = s[i] }
                        }
                    }
                }
                scores.withUnsafeBufferPointer { s in
                    mask.withUnsafeBufferPointer { m in metrics[b].addFullRanking(scores: s, excluded: m, relevant: relevant) }
                }
            }
            for item in record.train.items { mask[Int(item)] = base[Int(item)] }
        }
        if let blend {
            try Recommender.forEachUser(modelPath: blend.modelPath, dataset: blend.dataset, users: nil, source: blend.source) { _, record, preference in
                rank(record, preference: preference)
            }
        } else {
            for shard in shards {
                let reader = try ShardUserReader(path: shard, datasetId: config.datasetId, items: config.items)
                while let record = try reader.next() { rank(record, preference: nil) }
            }
        }
        return betas.indices.map { b in
            Report(round: scorer.round, metrics: metrics[b], cold: cold, blend: blend?.modelPath, beta: blend == nil ? nil : betas[b])
        }
    }
}
