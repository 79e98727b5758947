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
    /// - Returns: recommendations grouped by user, best first, users in the order asked.
    public static func run(modelPath: String, datasetDirectory: String, users wanted: [String]?, k: Int,
                           source: UserParameterSource) throws -> [Recommendation] {
        let manifest = try DatasetManifest.load(datasetDirectory)
        let tables = try DatasetTables(directory: datasetDirectory, manifest: manifest)
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
        var found: [Int32: [Recommendation]] = [:]
        var scores = [Float](repeating: 0, count: model.config.items)
        for (shard, members) in byShard.sorted(by: { $0.key < $1.key }) {
            guard shard < manifest.shards.count else {
                throw FedRecError(.badData, file: datasetDirectory + "/users.tsv", "refers to shard \(shard), dataset has \(manifest.shards.count)")
            }
            let path = datasetDirectory + "/" + manifest.shards[shard].file
            let statePath = shard < source.states.count ? source.states[shard] : nil
            let provider = try UserParameterProvider(model: model, mode: source.mode, statePath: statePath, training: source.training)
            let reader = try ShardUserReader(path: path, datasetId: manifest.datasetId, items: manifest.items)
            while let record = try reader.next() {
                guard members.contains(record.user) else { continue }
                guard let (p, _) = provider.parameters(for: record) else {
                    throw FedRecError(.badData, file: statePath ?? path, "has no parameters for user \(indexOf[record.user] ?? "?")")
                }
                Evaluator.score(model: model, user: p, into: &scores)
                for item in record.train.items + record.test.items { scores[Int(item)] = -.infinity }
                let top = topK(scores, k: k)
                found[record.user] = top.enumerated().map { rank, item in
                    Recommendation(user: indexOf[record.user] ?? "", rank: rank + 1, item: item, score: scores[Int(item)])
                }
            }
        }
        let order = wanted.map { $0.compactMap { tables.users[$0]?.index } } ?? indexOf.keys.sorted()
        return order.flatMap { found[$0] ?? [] }
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
