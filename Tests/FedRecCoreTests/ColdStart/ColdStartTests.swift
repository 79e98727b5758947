import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
import FedRecSupport
import FedRecFormats
import FedRecData
import FedRecModel
import FedRecWire
import FedRecTraining
import FedRecAggregation
import FedRecEvaluation

/// A text table for a dataset, written as fl-encode writes one.
func writeTextTable(_ vectors: [Float], items: Int, dim: Int, datasetId: String?, to path: String) throws {
    var metadata = ["format": FedRecFormat.name, "format_version": String(FedRecFormat.version), "kind": TextEmbeddingTable.kind,
                    "encoder": "test", "items": String(items), "dim": String(dim)]
    if let datasetId { metadata["dataset_id"] = datasetId }
    var writer = SafeTensorsWriter(metadata: metadata)
    writer.add(TextEmbeddingTable.tensorName, shape: [items, dim], floats: vectors)
    _ = try writer.write(to: path)
}

@Suite("cold items: partition, content-aware ALS, cold evaluation")
struct ColdStartTests {
    @Test("cold items are in no train or test file; every interaction with one is in KEY.cold.npy")
    func partitionCold() throws {
        let dir = try TemporaryDirectory()
        let csv = SyntheticDataset.csv(users: 50, items: 40, perUser: 15)
        try writeAtomically(csv, to: dir.path + "/r.csv")
        var options = PartitionOptions(ratings: dir.path + "/r.csv")
        options.coldItems = 0.25
        options.seed = 3
        options.negatives = 5
        let manifest = try Partitioner.run(options, output: dir.path + "/ds")
        let cold = manifest.coldItems
        #expect(cold.count == 10 && cold == cold.sorted())
        let coldSet = Set(cold)
        let users = try readUsers(dir.path + "/ds")
        var coldEvents = 0
        for user in users {
            #expect(user.train.items.allSatisfy { !coldSet.contains($0) })
            #expect(user.test.items.allSatisfy { !coldSet.contains($0) })
            #expect(user.negatives.allSatisfy { !coldSet.contains($0) })
            #expect(user.cold.items.allSatisfy { coldSet.contains($0) })
            // Leave-last-out on the warm events: the test item is the last warm one.
            if let last = user.test.times.last { #expect(user.train.times.allSatisfy { $0 <= last }) }
            coldEvents += user.cold.count
        }
        // Every event of the input is in train, test or cold.
        let total = csv.split(separator: "\n").count - 1
        #expect(manifest.train + manifest.test + coldEvents == total)
        #expect(manifest.details["cold_interactions"]?.intValue == coldEvents)
        // Same seed, same cold items; without --cold-items, no cold file and no field.
        let again = try Partitioner.run(options, output: dir.path + "/ds2")
        #expect(again.coldItems == cold)
        options.coldItems = 0
        let plain = try Partitioner.run(options, output: dir.path + "/ds3")
        #expect(plain.coldItems.isEmpty && plain.details["cold_items"] == nil)
        #expect(try readUsers(dir.path + "/ds3").allSatisfy { $0.cold.isEmpty })
    }

    @Test("the projection fit recovers W₀ from v = W₀ t when λ is small")
    func projectionExact() throws {
        let items = 30, m = 5, d = 3
        var g = SeededGenerator(seed: 9)
        let t = (0..<(items * m)).map { _ in Float(g.nextGaussian()) }
        let w0 = (0..<(d * m)).map { _ in Float(g.nextGaussian()) }
        let text = TextEmbeddingTable(vectors: t, items: items, dim: m)
        var v = [Float](repeating: 0, count: items * d)
        for i in 0..<items { TextProjection.project(w0, dim: d, text: text, item: i, into: &v) }
        let w = try #require(TextProjection.fit(embeddings: v, dim: d, items: Array(0..<20), text: text, l2: 1e-9))
        #expect(zip(w, w0).allSatisfy { abs($0 - $1) < 1e-4 })
        // Ridge: λ shrinks W toward zero.
        let shrunk = try #require(TextProjection.fit(embeddings: v, dim: d, items: Array(0..<20), text: text, l2: 100))
        let shrunkNorm: Float = shrunk.map { $0 * $0 }.reduce(0, +)
        let norm: Float = w0.map { $0 * $0 }.reduce(0, +)
        #expect(shrunkNorm < norm)
    }

    @Test("multi-column Cholesky matches column-by-column solves")
    func choleskyColumns() {
        let a: [Double] = [4, 1, 0, 1, 3, 1, 0, 1, 2]
        let b: [Double] = [1, 2, 3, 4, 5, 6]  // 3 × 2
        var many = a, x = b
        _ = many.withUnsafeMutableBufferPointer { a in x.withUnsafeMutableBufferPointer { Cholesky.solve(a, $0, n: 3, columns: 2) } }
        for c in 0..<2 {
            var one = a, y = [b[c], b[2 + c], b[4 + c]]
            _ = one.withUnsafeMutableBufferPointer { a in y.withUnsafeMutableBufferPointer { Cholesky.solve(a, $0, n: 3) } }
            for r in 0..<3 { #expect(abs(x[r * 2 + c] - y[r]) < 1e-12) }
        }
    }

    /// A dataset with cold items, a wals model and one ALS round's sum.
    struct ColdRound {
        let dir: TemporaryDirectory
        let manifest: DatasetManifest
        let text: TextEmbeddingTable
        var path: String { dir.path }
        var shards: [String] { manifest.shards.map { dir.path + "/ds/" + $0.file } }
        let training: TrainingOptions

        init() throws {
            dir = try TemporaryDirectory()
            try writeAtomically(SyntheticDataset.csv(users: 60, items: 40, perUser: 15), to: dir.path + "/r.csv")
            var options = PartitionOptions(ratings: dir.path + "/r.csv")
            options.coldItems = 0.2
            options.shards = 2
            manifest = try Partitioner.run(options, output: dir.path + "/ds")
            var g = SeededGenerator(seed: 4)
            try writeTextTable((0..<(40 * 6)).map { _ in Float(g.nextGaussian()) }, items: 40, dim: 6, datasetId: manifest.datasetId,
                               to: dir.path + "/text.safetensors")
            text = try TextEmbeddingTable.load(dir.path + "/text.safetensors")
            var t = TrainingOptions()
            t.algorithm = .als
            t.alpha = 5
            t.l2 = 1
            t.userParameters = .reconstruct
            training = t
        }

        /// Writes model `name` (plain or content-aware) and trains one round into `next`.
        func round(withText: Bool, from name: String, to next: String, textL2: Double = 1) throws {
            if !FileManager.default.fileExists(atPath: path + "/" + name) {
                let config = ModelConfig(objective: .wals, dim: 4, items: manifest.items, datasetId: manifest.datasetId)
                var model = MFModel.initial(config: config, scale: 0.1, seed: 0, globalBias: 0)
                if withText {
                    model.textProjection = [Float](repeating: 0, count: 4 * text.dim)
                    model.textDim = text.dim
                    model.notes["item_text"] = text.identity
                }
                try model.write(to: path + "/" + name)
            }
            var updates: [String] = []
            for (s, shard) in shards.enumerated() {
                let update = path + "/\(next)-u\(s)"
                _ = try ShardTrainer.run(modelPath: path + "/" + name, shardPath: shard, stateIn: nil, stateOut: nil, output: update, options: training)
                updates.append(update)
            }
            var server = ServerOptions()
            server.l2 = 1
            server.itemText = withText ? text : nil
            server.textL2 = textL2
            try ServerStep.apply(try ModelUpdate.sum(paths: updates), sumFile: updates[0], to: path + "/" + name, options: server).write(to: path + "/" + next)
        }
    }

    @Test("content-aware ALS: warm rows are the ALS solution, cold rows are W t; without text, cold rows are zero")
    func coldRowsProjected() throws {
        let r = try ColdRound()
        try r.round(withText: false, from: "m0", to: "plain1")
        try r.round(withText: true, from: "c0", to: "text1")
        let plain = try MFModel.load(r.path + "/plain1"), text = try MFModel.load(r.path + "/text1")
        let d = 4
        let cold = Set(r.manifest.coldItems.map(Int.init))
        #expect(!cold.isEmpty)
        let w = try #require(text.textProjection)
        #expect(text.textDim == 6 && w.count == d * 6)
        var projected = text.itemEmbedding
        for i in 0..<r.manifest.items {
            if cold.contains(i) {
                #expect(plain.itemEmbedding[(i * d)..<((i + 1) * d)].allSatisfy { $0 == 0 })
                TextProjection.project(w, dim: d, text: r.text, item: i, into: &projected)
                #expect(projected[(i * d)..<((i + 1) * d)] == text.itemEmbedding[(i * d)..<((i + 1) * d)])
                #expect(text.itemEmbedding[(i * d)..<((i + 1) * d)].contains { $0 != 0 })
            } else {
                // Same first-round user solves (the initial rows are equal), so equal warm rows.
                #expect(plain.itemEmbedding[(i * d)..<((i + 1) * d)] == text.itemEmbedding[(i * d)..<((i + 1) * d)])
            }
        }
        // W is the ridge fit on the warm rows.
        let warm = (0..<r.manifest.items).filter { !cold.contains($0) }
        let refit = try #require(TextProjection.fit(embeddings: text.itemEmbedding, dim: d, items: warm, text: r.text, l2: 1))
        #expect(zip(refit, w).allSatisfy { abs($0 - $1) < 1e-5 })
        // A plain model's checkpoint has no projection, and a second plain round works as before.
        #expect(plain.textProjection == nil)
        try r.round(withText: false, from: "plain1", to: "plain2")
        try r.round(withText: true, from: "text1", to: "text2")
    }

    @Test("the server refuses a content-aware model without its table, and a table of another dataset or shape")
    func refusals() throws {
        let r = try ColdRound()
        try r.round(withText: true, from: "c0", to: "c1")
        #expect(throws: FedRecError.self) { try r.round(withText: false, from: "c0", to: "x1") }
        let wrongItems = TextEmbeddingTable(vectors: [Float](repeating: 1, count: 39 * 6), items: 39, dim: 6)
        #expect { try wrongItems.requireAligned(items: r.manifest.items, datasetId: r.manifest.datasetId) } throws: {
            ($0 as? FedRecError)?.failure == .shape
        }
        let otherDataset = TextEmbeddingTable(vectors: [Float](repeating: 1, count: 40 * 6), items: 40, dim: 6, datasetId: "ab")
        #expect { try otherDataset.requireAligned(items: r.manifest.items, datasetId: r.manifest.datasetId) } throws: {
            ($0 as? FedRecError)?.failure == .mismatch
        }
    }

    @Test("cold evaluation by hand: candidates are the cold items, relevant are the user's cold interactions")
    func coldMetricsByHand() throws {
        let r = try ColdRound()
        try r.round(withText: true, from: "c0", to: "c1")
        let source = UserParameterSource(mode: .reconstruct, states: [], training: r.training)
        let report = try Evaluator.run(modelPath: r.path + "/c1", shards: r.shards, users: source, k: 3,
                                       evaluationProtocol: .cold, coldItems: r.manifest.coldItems)
        // By hand: reconstruct each user, score the cold items, rank, count.
        let view = try ModelView(path: r.path + "/c1")
        let solver = try UserSolver(model: view, l2: 1, alpha: 5)
        let cold = r.manifest.coldItems
        var users = 0, hits = 0.0, ndcg = 0.0
        for shard in r.shards {
            let reader = try ShardUserReader(path: shard)
            while let record = try reader.next() {
                guard !record.cold.isEmpty else { continue }
                let p = try solver.solve(record.train).embedding
                let scored = cold.map { i -> (Int32, Float) in
                    var s: Float = view.items.bias(Int(i))
                    for k in 0..<4 { s += p[k] * view.items.embedding(Int(i))[k] }
                    return (i, s)
                }.sorted { ($0.1, -$0.0) > ($1.1, -$1.0) }
                let top = scored.prefix(3).map(\.0)
                let relevant = Set(record.cold.items)
                users += 1
                if top.contains(where: relevant.contains) { hits += 1 }
                var dcg = 0.0, ideal = 0.0
                for (rank, item) in top.enumerated() where relevant.contains(item) { dcg += 1 / log2(Double(rank) + 2) }
                for rank in 0..<min(3, relevant.count) { ideal += 1 / log2(Double(rank) + 2) }
                ndcg += dcg / ideal
            }
        }
        #expect(report.ranking.users == users && users > 0)
        #expect(abs(report.ranking.hitRate - hits / Double(users)) < 1e-12)
        #expect(abs(report.ranking.meanNDCG - ndcg / Double(users)) < 1e-12)
        #expect(report.json["protocol"]?.stringValue == "cold")
    }

    @Test("random baseline: exact expectations match enumeration over all orders")
    func randomExpectation() {
        // C = 5 candidates, R = 2 relevant, K = 2: enumerate all placements of the 2 relevant.
        var exact = RankingMetrics(k: 2)
        exact.addRandomFullRanking(candidates: 5, relevant: 2)
        var enumerated = RankingMetrics(k: 2)
        var count = 0
        for a in 0..<5 {
            for b in (a + 1)..<5 {
                let excluded = [Bool](repeating: false, count: 5)
                // Relevant items 0 and 1 placed at ranks a and b: scores by rank.
                var byItem = [Float](repeating: 0, count: 5)
                var others = [2, 3, 4].makeIterator()
                for rank in 0..<5 {
                    let item = rank == a ? 0 : (rank == b ? 1 : others.next()!)
                    byItem[item] = Float(10 - rank)
                }
                byItem.withUnsafeBufferPointer { s in excluded.withUnsafeBufferPointer { e in enumerated.addFullRanking(scores: s, excluded: e, relevant: [0, 1]) } }
                count += 1
            }
        }
        #expect(count == 10)
        #expect(abs(exact.hitRate - enumerated.hitRate) < 1e-12)
        #expect(abs(exact.meanNDCG - enumerated.meanNDCG) < 1e-12)
        #expect(abs(exact.meanRecall - enumerated.meanRecall) < 1e-12)
        #expect(abs(exact.mrr - enumerated.mrr) < 1e-12)
    }

    @Test("popularity in cold mode: cold items have no training interactions, so ranks follow item index")
    func coldPopularity() throws {
        let r = try ColdRound()
        try r.round(withText: false, from: "m0", to: "m1")
        let source = UserParameterSource(mode: .reconstruct, states: [], training: r.training)
        let report = try Evaluator.run(modelPath: r.path + "/m1", shards: r.shards, users: source, k: 2,
                                       evaluationProtocol: .cold, coldItems: r.manifest.coldItems, baseline: .popularity)
        let top = Set(r.manifest.coldItems.prefix(2))
        var users = 0, hits = 0
        for shard in r.shards {
            let reader = try ShardUserReader(path: shard)
            while let record = try reader.next() {
                guard !record.cold.isEmpty else { continue }
                users += 1
                if record.cold.items.contains(where: top.contains) { hits += 1 }
            }
        }
        #expect(report.ranking.users == users)
        #expect(abs(report.ranking.hitRate - Double(hits) / Double(users)) < 1e-12)
    }
}
