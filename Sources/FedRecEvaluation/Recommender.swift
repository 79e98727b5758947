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

    public init(user: String, rank: Int, item: Int32, score: Float) {
        self.user = user
        self.rank = rank
        self.item = item
        self.score = score
    }
}

extension Recommendation {
    /// `fl-recommend`'s TSV: a header, then user, rank, item id, score (six decimals) and
    /// title, one recommendation a line.
    public static func table(_ recommendations: [Recommendation], items: [DatasetTables.Item]) -> String {
        var out = "user\trank\titem\tscore\ttitle\n"
        for r in recommendations {
            let item = items[Int(r.item)]
            out += "\(tsvField(r.user))\t\(r.rank)\t\(tsvField(item.id))\t\(sixDecimals(Double(r.score)))\t\(tsvField(item.title))\n"
        }
        return out
    }

    /// `fl-recommend --json`: one object a recommendation (user, rank, item, score, title).
    public static func jsonLines(_ recommendations: [Recommendation], items: [DatasetTables.Item]) -> String {
        var out = ""
        for r in recommendations {
            let item = items[Int(r.item)]
            out += JSONValue.object(["user": .string(r.user), "rank": .number(Double(r.rank)), "item": .string(item.id),
                                     "score": .number(Double(r.score)), "title": .string(item.title)]).canonicalText + "\n"
        }
        return out
    }
}

/// Top-K recommendations for users of a dataset, excluding items they already have.
public enum Recommender {
    /// - Parameters:
    ///   - users: raw user ids (or pseudonyms); nil recommends for every user.
    ///   - query: with a search query, items are ranked by `PersonalizedSearch.combine`
    ///     of the query's similarities and the user's preference, with its β.
    ///   - biasShrinkage: for an explicit-rating (`mse`) model, the k of
    ///     `ItemBiasShrinkage`: the user's preference for item i is b_i·n_i/(n_i + k) +
    ///     p_u·q_i, n_i its training ratings, so an item with a few high ratings does not
    ///     top every list. 0 ranks by the model's b_i + p_u·q_i; other objectives ignore it.
    /// - Returns: recommendations grouped by user, best first, users in the order asked.
    public static func run(modelPath: String, dataset: DatasetDirectory, users wanted: [String]?, k: Int,
                           source: UserParameterSource, query: SearchQuery? = nil, biasShrinkage: Float = 0) throws -> [Recommendation] {
        var found: [Int32: [Recommendation]] = [:]
        var order: [Int32] = []
        let shrinkage = try biasShrinkage > 0 && ModelFamily.of(model: modelPath) == .mf ? try ItemBiasShrinkage(modelPath: modelPath, dataset: dataset, k: biasShrinkage) : nil
        try forEachUser(modelPath: modelPath, dataset: dataset, users: wanted, source: source) { user, record, preference in
            var scores = preference
            shrinkage?.apply(to: &scores)
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
    /// scores of every item (b_i + p_u·q_i for MF, the network's output for ncf, the
    /// filtered interactions for gfcf), shard by shard; the model is checked against
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
        let manifest = dataset.manifest
        // The scores of every item for one record of a shard, by the model's family.
        let config: ModelConfig
        let scorerFor: (_ path: String, _ reader: ShardUserReader, _ statePath: String?) throws -> (UserRecord) throws -> [Float]?
        let family = try ModelFamily.of(model: modelPath)
        if family == .gfcf {
            let model = try GraphFilterModel.open(modelPath).model
            config = model.config
            scorerFor = { _, _, _ in
                let scorer = GraphFilterScorer(model: model)
                var scores: [Float] = []
                return { record in
                    scorer.score(users: [record.train.distinctItems], into: &scores)
                    return scores
                }
            }
        } else if family == .ncf {
            let model = try NCFModel.open(modelPath).model
            let scorer = NCFScorer(model: model)
            config = model.config
            scorerFor = { path, reader, statePath in
                let provider = try NCFUserProvider(model: model, source: source, statePath: statePath, shard: reader.origin, shardPath: path)
                var scores = [Float](repeating: 0, count: model.config.items)
                return { record in
                    guard let user = provider.vector(for: record) else { return nil }
                    scorer.score(user: user, into: &scores)
                    return scores
                }
            }
        } else {
            let model = try ModelView(path: modelPath)
            let items = try model.items.dense()
            config = model.config
            scorerFor = { path, reader, statePath in
                let provider = try UserParameterProvider(model: model, mode: source.mode, statePath: statePath, training: source.training,
                                                         shard: (reader.origin, path))
                var scores = [Float](repeating: 0, count: model.config.items)
                return { record in
                    guard let (p, _) = try provider.parameters(for: record) else { return nil }
                    items.score(user: p, into: &scores)
                    return scores
                }
            }
        }
        try ModelConfig(family: config.family, objective: config.objective, dim: config.dim, items: manifest.items, datasetId: manifest.datasetId)
            .requireSame(config, file: modelPath)
        // The shard being read: its scorer and where its user parameters come from.
        var scores: (UserRecord) throws -> [Float]? = { _ in nil }
        var parametersFile = ""
        try forEachRecord(dataset: dataset, users: wanted, shard: { shard, path, reader in
            let statePath = shard < source.states.count ? source.states[shard] : nil
            parametersFile = statePath ?? path
            scores = try scorerFor(path, reader, statePath)
        }, record: { id, record in
            guard let values = try scores(record) else { throw FedRecError(.badData, file: parametersFile, "has no parameters for user \(id)") }
            try body(id, record, values)
        }, order: order)
    }

    /// Calls `record` once per wanted user with the user's raw id and shard record, shard
    /// by shard; `shard` is called before each shard holding a wanted user (its index in
    /// the dataset, its path, its reader), so that per-shard work (a state file, a scorer)
    /// is set up once. What `forEachUser` and the text models' recommenders share.
    /// - Parameters:
    ///   - users: raw user ids (or pseudonyms); nil for every user.
    ///   - order: receives the dense indices of the users in the order asked (sorted for
    ///     every user), after the last record.
    /// - Throws: `.badData` for a user the dataset does not have or a shard it lacks; the
    ///   shards' load errors and the body's.
    public static func forEachRecord(
        dataset: DatasetDirectory, users wanted: [String]?,
        shard start: (_ shard: Int, _ path: String, _ reader: ShardUserReader) throws -> Void = { _, _, _ in },
        record body: (_ user: String, _ record: UserRecord) throws -> Void, order: ([Int32]) -> Void = { _ in }
    ) throws {
        let manifest = dataset.manifest, tables = dataset.tables, datasetDirectory = dataset.path
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
        for (shard, members) in byShard.sorted(by: { $0.key < $1.key }) {
            guard shard < manifest.shards.count else {
                throw FedRecError(.badData, file: datasetDirectory + "/users.tsv", "refers to shard \(shard), dataset has \(manifest.shards.count)")
            }
            let path = datasetDirectory + "/" + manifest.shards[shard].file
            let reader = try ShardUserReader(path: path, datasetId: manifest.datasetId, items: manifest.items)
            try start(shard, path, reader)
            while let record = try reader.next() {
                guard members.contains(record.user) else { continue }
                try body(indexOf[record.user] ?? "", record)
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

/// Confidence in an explicit-rating model's item biases for top-N ranking.
///
/// Why: ALS-WR and SGD fit b_i from item i's own ratings with a penalty that grows with
/// their number (or none), so an item rated 5 by its 7 raters gets a bias as large as a
/// classic's, and, b_i being the same for every user, it tops nearly every list (on
/// ML-100K u1: in 924 of 943 users' top-10). That is right for predicting a rating and
/// wrong for choosing what to show. Koren's baseline estimate shrinks an item's mean
/// deviation toward 0 by its support, b_i = Σ_{u∈R(i)} (r_ui − μ) / (λ₂ + |R(i)|) (Koren,
/// "Factorization meets the neighborhood", KDD 2008, §2.1, λ₂ = 25 on Netflix), i.e. the
/// unregularised mean times n_i/(n_i + λ₂). Ranking applies that factor to the model's
/// bias: score_ui = b_i·n_i/(n_i + k) + p_u·q_i, n_i the item's training ratings in the
/// dataset. Predicted ratings (`fl-eval`) are unchanged.
public struct ItemBiasShrinkage: Sendable {
    /// What ranking subtracts from b_i + p_u·q_i: b_i·k/(n_i + k) per item.
    public let adjustment: [Float]

    /// - Parameters:
    ///   - bias: the model's item biases b_i.
    ///   - counts: each item's number of training ratings n_i.
    ///   - k: the shrinkage constant (pseudo-ratings at 0), positive.
    public init(bias: [Float], counts: [Int], k: Float) {
        precondition(bias.count == counts.count && k > 0)
        adjustment = zip(bias, counts).map { b, n in b * (k / (Float(n) + k)) }
    }

    /// Reads the item biases of an explicit (`mse`) model and counts the dataset's training
    /// ratings per item (one pass over every shard); nil for other objectives, whose item
    /// scores are not rating deviations.
    /// - Throws: the model's and shards' load errors; `.mismatch` when the model belongs to
    ///   another dataset.
    public init?(modelPath: String, dataset: DatasetDirectory, k: Float) throws {
        let model = try ModelView(path: modelPath)
        guard model.config.objective == .mse else { return nil }
        let manifest = dataset.manifest
        try ModelConfig(objective: model.config.objective, dim: model.config.dim, items: manifest.items, datasetId: manifest.datasetId)
            .requireSame(model.config, file: modelPath)
        let items = try model.items.dense()
        let counts = try trainingInteractionCounts(shards: dataset.shardPaths, datasetId: manifest.datasetId, items: manifest.items)
        self.init(bias: Array(items.bias), counts: counts, k: k)
        try model.checkIntegrity()
    }

    /// Turns b_i + p_u·q_i into b_i·n_i/(n_i + k) + p_u·q_i, in place.
    public func apply(to scores: inout [Float]) {
        precondition(scores.count == adjustment.count)
        for i in scores.indices { scores[i] -= adjustment[i] }
    }
}
