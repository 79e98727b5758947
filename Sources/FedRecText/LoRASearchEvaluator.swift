import FedRecCore
import FedRecData
import FedRecEvaluation
import FedRecFormats
import FedRecModel
import FedRecSupport

/// Search quality of a text-lora checkpoint: every test query of the shards' query logs
/// (`fl-partition --queries`) is embedded with the adapted encoder and ranks the whole
/// catalogue, each item embedded from its text ("Title — Genre, Genre") with the same
/// encoder, by cosine; the query's item is the one relevant item. Nothing is excluded.
/// HR@K, NDCG@K and MRR are means over queries. At round 0 (B = 0) this is the frozen
/// encoder's search.
public enum LoRASearchEvaluator {
    public struct Report: Sendable {
        public var round: Int
        public var metrics: RankingMetrics
        public var users: Int

        /// One JSON line: `protocol` "search", `queries`, `users`, `hr@K`, `ndcg@K`, `mrr`, `round`.
        public var json: JSONValue {
            let k = metrics.k
            return [
                "protocol": "search", "round": .number(Double(round)), "queries": .number(Double(metrics.users)),
                "users": .number(Double(users)), "hr@\(k)": .number(metrics.hitRate), "ndcg@\(k)": .number(metrics.meanNDCG),
                "mrr": .number(metrics.mrr),
            ]
        }
    }

    /// - Parameters:
    ///   - training: rank the training queries instead of the test ones (to see the fit).
    public static func run(
        modelPath: String, shards: [String], itemsPath: String, modelDirectory: String, k: Int, training: Bool = false,
        threads: Int? = nil, batchSize: Int = 64
    ) throws -> Report {
        let (model, _) = try TensorModel.open(modelPath, family: .textLoRA)
        var queries: [(user: Int32, item: Int32, text: String)] = []
        for shard in shards {
            let reader = try ShardUserReader(path: shard, datasetId: model.config.datasetId, items: model.config.items)
            while let record = try reader.next() {
                for q in record.queries where q.isTest != training { queries.append((record.user, q.item, q.text)) }
            }
        }
        guard !queries.isEmpty else {
            throw FedRecError(.emptyInput, file: shards.first ?? modelPath, "holds no \(training ? "training" : "test") queries (partition with fl-partition --queries)")
        }
        let (encoder, items) = try CatalogueTexts.encoded(
            adapter: modelPath, modelDirectory: modelDirectory, rows: try CatalogueTexts.rows(itemsPath: itemsPath, items: model.config.items),
            threads: threads, batchSize: batchSize)
        var textIndex: [String: Int] = [:]
        var texts: [String] = []
        for q in queries where textIndex[q.text] == nil {
            textIndex[q.text] = texts.count
            texts.append(q.text)
        }
        let vectors = try encoder.encode(texts, batchSize: batchSize)
        let d = encoder.dimension, n = model.config.items
        var metrics = RankingMetrics(k: k)
        var scores = [Float](repeating: 0, count: n)
        let excluded = [Bool](repeating: false, count: n)
        items.withUnsafeBufferPointer { itemVectors in
            vectors.withUnsafeBufferPointer { queryVectors in
                for q in queries {
                    guard let t = textIndex[q.text] else { continue }
                    let query = queryVectors.baseAddress! + t * d
                    scores.withUnsafeMutableBufferPointer { s in
                        for i in 0..<n {
                            let item = itemVectors.baseAddress! + i * d
                            var dot: Float = 0
                            for j in 0..<d { dot += query[j] * item[j] }
                            s[i] = dot
                        }
                    }
                    scores.withUnsafeBufferPointer { s in
                        excluded.withUnsafeBufferPointer { ex in metrics.addFullRanking(scores: s, excluded: ex, relevant: [q.item]) }
                    }
                }
            }
        }
        return Report(round: model.round, metrics: metrics, users: Set(queries.map(\.user)).count)
    }
}
