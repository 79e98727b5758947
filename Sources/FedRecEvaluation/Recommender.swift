import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport

/// One recommended item.
public struct Recommendation: Sendable, Equatable {
    public var user: String
    public var rank: Int
    public var item: Int32
    public var score: Float
}

/// Top-K recommendations for users of a dataset, excluding items they already have.
public enum Recommender {
    /// - Parameters:
    ///   - users: raw user ids (or pseudonyms); nil recommends for every user.
    ///   - query: with a search query, items are ranked by `PersonalizedSearch.combine`
    ///     of the query's similarities and the user's preference, with its β.
    /// - Returns: recommendations grouped by user, best first, users in the order asked.
    public static func run(modelPath: String, dataset: DatasetDirectory, users wanted: [String]?, k: Int,
                           source: UserParameterSource, query: SearchQuery? = nil) throws -> [Recommendation] {
        var found: [Int32: [Recommendation]] = [:]
        var order: [Int32] = []
        try forEachUser(modelPath: modelPath, dataset: dataset, users: wanted, source: source) { user, record, preference in
            var scores = preference
            if let query {
                precondition(query.similarity.count == scores.count)
                scores = PersonalizedSearch.combine(similarity: query.similarity, preference: preference, beta: query.beta)
            }
            for item in record.train.items + record.test.items { scores[Int(item)] = -.infinity }
            let top = topK(scores, k: k)
            found[record.user] = top.enumerated().map { rank, item in
                Recommendation(user: user, rank: rank + 1, item: item, score: scores[Int(item)])
            }
        } order: { order = $0 }
        return order.flatMap { found[$0] ?? [] }
    }

    /// Text-only search: the `k` items most similar to the query, best first (nobody's
    /// items are excluded; `user` is empty).
    public static func search(similarity: [Float], k: Int) -> [Recommendation] {
        topK(similarity, k: k).enumerated().map { rank, item in
            Recommendation(user: "", rank: rank + 1, item: item, score: similarity[Int(item)])
        }
    }

    /// Calls `body` once per wanted user with the user's raw id, shard record and model
    /// scores of every item (b_i + p_u·q_i), shard by shard; the model is checked against
    /// the dataset first.
    /// - Parameters:
    ///   - users: raw user ids (or pseudonyms); nil for every user.
    ///   - order: receives the dense indices of the users in the order asked (sorted for
    ///     every user), after the last call of `body`.
    /// - Throws: `.badData` for a user the dataset does not have or whose parameters the
    ///   source lacks; the model's and shards' load errors.
    /// - Complexity: one pass over the shards that hold wanted users; O(items · dim) per user.
    public static func forEachUser(modelPath: String, dataset: DatasetDirectory, users wanted: [String]?, source: UserParameterSource,
                                   _ body: (String, UserRecord, [Float]) throws -> Void,
                                   order: ([Int32]) -> Void = { _ in }) throws {
        let manifest = dataset.manifest, tables = dataset.tables, datasetDirectory = dataset.path
        let model = try ModelView(path: modelPath)
        try ModelConfig(objective: model.config.objective, dim: model.config.dim, items: manifest.items, datasetId: manifest.datasetId)
            .requireSame(model.config, file: modelPath)
        // Which users to find in which shard.
        var byShard: [Int: Set<Int32>] = [:]
        var indexOf: [Int32: String] = [:]
        if let wanted {
            for id in wanted {
                guard let user = tables.users[id] else { throw FedRecError(.badData, file: datasetDirectory + "/users.tsv", "no user \(id)") }
                byShard[user.shard, default: []].insert(user.index)
                indexOf[user.index] = id
            }
        } else {
            for (id, user) in tables.users {
                byShard[user.shard, default: []].insert(user.index)
                indexOf[user.index] = id
            }
        }
        var scores = [Float](repeating: 0, count: model.config.items)
        let items = try model.items.dense()
        for (shard, members) in byShard.sorted(by: { $0.key < $1.key }) {
            guard shard < manifest.shards.count else {
                throw FedRecError(.badData, file: datasetDirectory + "/users.tsv", "refers to shard \(shard), dataset has \(manifest.shards.count)")
            }
            let path = datasetDirectory + "/" + manifest.shards[shard].file
            let statePath = shard < source.states.count ? source.states[shard] : nil
            let reader = try ShardUserReader(path: path, datasetId: manifest.datasetId, items: manifest.items)
            let provider = try UserParameterProvider(model: model, mode: source.mode, statePath: statePath, training: source.training,
                                                     shard: (reader.origin, path))
            while let record = try reader.next() {
                guard members.contains(record.user) else { continue }
                guard let (p, _) = provider.parameters(for: record) else {
                    throw FedRecError(.badData, file: statePath ?? path, "has no parameters for user \(indexOf[record.user] ?? "?")")
                }
                items.score(user: p, into: &scores)
                try body(indexOf[record.user] ?? "", record, scores)
            }
        }
        order(wanted.map { $0.compactMap { tables.users[$0]?.index } } ?? indexOf.keys.sorted())
    }

    /// Indices of the `k` largest finite scores, best first (ties: smaller index first).
    /// - Complexity: O(n log k).
    public static func topK(_ scores: [Float], k: Int) -> [Int32] {
        var heap: [(Float, Int32)] = []  // min-heap by (score, -index)
        heap.reserveCapacity(k + 1)
        func less(_ a: (Float, Int32), _ b: (Float, Int32)) -> Bool { a.0 < b.0 || (a.0 == b.0 && a.1 > b.1) }
        for (i, s) in scores.enumerated() where s.isFinite {
            let entry = (s, Int32(i))
            if heap.count < k {
                heap.append(entry)
                var c = heap.count - 1
                while c > 0 { let p = (c - 1) / 2; if less(heap[c], heap[p]) { heap.swapAt(c, p); c = p } else { break } }
            } else if let root = heap.first, less(root, entry) {
                heap[0] = entry
                var p = 0
                while true {
                    let l = 2 * p + 1, r = l + 1
                    var m = p
                    if l < heap.count && less(heap[l], heap[m]) { m = l }
                    if r < heap.count && less(heap[r], heap[m]) { m = r }
                    if m == p { break }
                    heap.swapAt(p, m)
                    p = m
                }
            }
        }
        return heap.sorted { less($1, $0) }.map(\.1)
    }
}

/// A search query for `Recommender.run`: its cosine similarity to every item's text
/// (`PersonalizedSearch.similarities`) and the weight β of the user's preference.
public struct SearchQuery: Sendable {
    public var similarity: [Float]
    public var beta: Float

    public init(similarity: [Float], beta: Float) {
        self.similarity = similarity
        self.beta = beta
    }
}
