import FedRecData
import FedRecEvaluation
import FedRecFormats
import FedRecModel
import FedRecSupport

/// `fl-recommend` for a text-lora checkpoint of task `next-item`: each user's top-K items
/// by `NextItemTextScorer` (the cosine of the titles of the user's latest training items
/// to every item's text), alone or blended with a collaborative model (mf, ncf or gfcf) as
/// cos + β·z, z its scores standardised over the catalogue: the ranking `fl-eval --blend`
/// measures. The user's own items (train and test) are never recommended; items nobody
/// has interacted with are candidates like any other (their text is all the model needs).
public enum NextItemRecommender {
    /// A collaborative model to blend with, its user parameters and its weight β.
    public struct Blend: Sendable {
        public var modelPath: String
        public var source: UserParameterSource
        public var beta: Float

        public init(modelPath: String, source: UserParameterSource, beta: Float) {
            self.modelPath = modelPath
            self.source = source
            self.beta = beta
        }
    }

    /// - Parameters:
    ///   - users: raw user ids (or pseudonyms); nil for every user.
    ///   - scorer: the next-item checkpoint, loaded (`NextItemTextScorer`).
    ///   - batch: how many users' queries are encoded together.
    /// - Returns: recommendations grouped by user, best first, users in the order asked.
    /// - Throws: `.mismatch` when the checkpoint or the blend belongs to another dataset;
    ///   `.badData` for an unknown user or one without training items (the text model has no
    ///   history to start from); the shards', blend's and encoder's errors.
    public static func run(scorer: NextItemTextScorer, dataset: DatasetDirectory, users wanted: [String]?, k: Int,
                           blend: Blend? = nil, batch: Int = 64) throws -> [Recommendation] {
        let manifest = dataset.manifest
        guard manifest.datasetId == scorer.config.datasetId, manifest.items == scorer.config.items else {
            throw FedRecError(.mismatch, file: dataset.path, "is not the dataset the text-lora model was made for")
        }
        var found: [Int32: [Recommendation]] = [:]
        var order: [Int32] = []
        // Users wait here until a batch of queries is encoded together.
        var pending: [(id: String, record: UserRecord, preference: [Float]?)] = []
        var similarity: [Float] = []
        func flush() throws {
            guard !pending.isEmpty else { return }
            let vectors = try scorer.encode(pending.map { scorer.query($0.record) })
            for (row, user) in pending.enumerated() {
                scorer.similarities(queries: vectors, row: row, into: &similarity)
                var scores = PersonalizedSearch.combine(similarity: similarity, preference: user.preference, beta: blend?.beta ?? 0)
                for item in user.record.train.items + user.record.test.items { scores[Int(item)] = -.infinity }
                found[user.record.user] = Recommender.topK(scores, k: k).enumerated().map { rank, item in
                    Recommendation(user: user.id, rank: rank + 1, item: item, score: scores[Int(item)])
                }
            }
            pending.removeAll(keepingCapacity: true)
        }
        func add(_ id: String, _ record: UserRecord, _ preference: [Float]?) throws {
            guard !record.train.isEmpty else {
                throw FedRecError(.badData, file: dataset.path + "/users.tsv", "user \(id) has no training items: the next-item model has no history to rank from")
            }
            pending.append((id, record, preference))
            if pending.count >= max(batch, 1) { try flush() }
        }
        if let blend {
            try Recommender.forEachUser(modelPath: blend.modelPath, dataset: dataset, users: wanted, source: blend.source, { id, record, preference in
                try add(id, record, preference)
            }, order: { order = $0 })
        } else {
            try Recommender.forEachRecord(dataset: dataset, users: wanted, record: { id, record in try add(id, record, nil) }, order: { order = $0 })
        }
        try flush()
        return order.flatMap { found[$0] ?? [] }
    }
}
