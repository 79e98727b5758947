import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecEvaluation
import FedRecSupport
import FedRecData
import FedRecModel
import FedRecTraining

@Suite("top-N from an explicit model: item biases count by their support")
struct RecommenderShrinkageTests {
    /// 40 users; item 1 is rated 5 by two users only, items 2–20 by many. The model's item
    /// vectors are zero, so a user's score of item i is its bias b_i alone: item 1 has
    /// the largest (1.5), the others 0.2 + 0.02·i.
    final class Fixture {
        let dir: TemporaryDirectory
        let dataset: DatasetDirectory
        let model: String
        /// Training ratings per raw item id, counted from the CSV.
        var ratings: [Int: Int] = [:]
        let rare = 0  // dense index of raw item 1 (ids are numbered in numeric order)

        init() throws {
            dir = try TemporaryDirectory()
            var g = SeededGenerator(seed: 5)
            var csv = "user,item,rating,time\n"
            for u in 1...40 {
                var items = Set<Int>()
                if u <= 2 { items.insert(1) }
                while items.count < (u <= 2 ? 11 : 10) { items.insert(2 + g.nextIndex(below: 19)) }
                for (t, i) in items.sorted().enumerated() {
                    csv += "\(u),\(i),\(i == 1 ? 5 : 1 + g.nextIndex(below: 5)),\(1000 + t)\n"
                    ratings[i, default: 0] += 1
                }
            }
            try writeAtomically(csv, to: dir.path + "/r.csv")
            var options = PartitionOptions(ratings: dir.path + "/r.csv")
            options.itemsFile = ""
            options.split = .ratio(0.01)  // rounds to no test event: every rating trains
            options.shards = 2
            let manifest = try Partitioner.run(options, output: dir.path + "/ds")
            dataset = try DatasetDirectory(path: dir.path + "/ds")
            let items = manifest.items
            let config = ModelConfig(objective: .mse, dim: 2, items: items, datasetId: manifest.datasetId)
            let bias = (0..<items).map { i in i == 0 ? Float(1.5) : 0.2 + 0.02 * Float(i) }
            var m = MFModel(config: config, round: 1, itemEmbedding: [Float](repeating: 0, count: items * 2), itemBias: bias, globalBias: 3.5)
            m.notes["rating_min"] = "1.0"
            m.notes["rating_max"] = "5.0"
            model = dir.path + "/model.safetensors"
            try m.write(to: model)
        }

        func recommend(shrinkage: Float) throws -> [Recommendation] {
            var training = TrainingOptions()
            training.algorithm = .als
            return try Recommender.run(modelPath: model, dataset: dataset, users: nil, k: 3,
                                       source: UserParameterSource(mode: .reconstruct, states: [], training: training),
                                       biasShrinkage: shrinkage)
        }
    }

    @Test("without shrinkage the rarely rated item tops every list it may; with k = 25 it tops none")
    func rareItemNoLongerDominates() throws {
        let f = try Fixture()
        #expect(f.dataset.tables.items[f.rare].id == "1" && f.ratings[1] == 2)
        let raw = try f.recommend(shrinkage: 0)
        let rawTop = raw.filter { $0.rank == 1 }
        #expect(rawTop.count == 40)
        // Every user but its two raters gets the rare item first.
        #expect(rawTop.filter { $0.item == Int32(f.rare) }.count == 38)

        let shrunk = try f.recommend(shrinkage: 25)
        #expect(shrunk.count == 120)
        #expect(!shrunk.contains { $0.item == Int32(f.rare) })
        // The score is b_i·n_i/(n_i + 25), n_i counted from the input, not by the library.
        for r in shrunk {
            let id = try #require(Int(f.dataset.tables.items[Int(r.item)].id))
            let n = Float(try #require(f.ratings[id]))
            let b = 0.2 + 0.02 * Float(r.item)
            #expect(abs(r.score - b * n / (n + 25)) < 1e-5, "item \(id)")
        }
        // The rare item's own shrunk score, 1.5 · 2/27, is below every list's last entry.
        let rareScore: Float = 1.5 * 2 / 27
        #expect(shrunk.filter { $0.rank == 3 }.allSatisfy { $0.score > rareScore })
    }

    @Test("counts are the dataset's training ratings; other objectives are left alone")
    func countsAndObjectives() throws {
        let f = try Fixture()
        let manifest = f.dataset.manifest
        let counts = try trainingInteractionCounts(shards: f.dataset.shardPaths, datasetId: manifest.datasetId, items: manifest.items)
        for (i, item) in f.dataset.tables.items.enumerated() {
            #expect(counts[i] == f.ratings[Int(item.id) ?? -1] ?? 0)
        }
        #expect(ItemBiasShrinkage(bias: [2, 2], counts: [0, 75], k: 25).adjustment == [2, 0.5])
        // An implicit model's item scores are not rating deviations: no shrinkage.
        let config = ModelConfig(objective: .bpr, dim: 2, items: manifest.items, datasetId: manifest.datasetId)
        let bpr = MFModel(config: config, round: 0, itemEmbedding: [Float](repeating: 0, count: manifest.items * 2),
                          itemBias: [Float](repeating: 1, count: manifest.items), globalBias: 0)
        let path = f.dir.path + "/bpr.safetensors"
        try bpr.write(to: path)
        #expect(try ItemBiasShrinkage(modelPath: path, dataset: f.dataset, k: 25) == nil)
    }
}
