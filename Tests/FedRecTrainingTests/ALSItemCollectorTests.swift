import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecTraining
import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecWire
import FedRecAggregation

@Suite("ALS statistics gathered by item and streamed: the same bits as the per-slot sums")
struct ALSItemCollectorTests {
    /// Hand-made users: items in any order, a repeated popular item, ratings 1…5.
    let users: [(items: [Int32], ratings: [Float])] = [
        ([3, 0, 7], [5, 1, 4]), ([7, 3], [2, 2]), ([1], [3]), ([7, 2, 3, 9], [1, 5, 4, 3]), ([0, 9], [4, 4]),
    ]

    func embedding(_ u: Int, dim: Int) -> [Float] {
        (0..<dim).map { k in k == u % dim ? 0 : Float((u * 7 + k * 3) % 11) / 5 - 1 }
    }

    @Test("gathering by item, one item at a time, equals accumulating every user into slots", arguments: [Objective.mse, .wals])
    func gatheredEqualsSlots(objective: Objective) throws {
        let data = try SyntheticDataset(users: 20, items: 12, perUser: 8, shards: 1)
        let model = try ModelView(path: try data.initialModel(objective, dim: 3))
        let config = model.config
        let layout = ALSStatistics.rowLayout(config)
        let slots = RowAccumulator(items: config.items, width: layout[0].width + layout[1].width)
        let collector = ALSItemCollector(config: config, itemGram: true)
        var denseSlots = [Float](repeating: 0, count: ALSStatistics.denseCount(config)), denseGathered = denseSlots
        for (u, user) in users.enumerated() {
            let train = Interactions(items: user.items, ratings: user.ratings, times: user.items.map { _ in 0 })
            let p = embedding(u, dim: 3), weight = Float(u % 2 + 1)
            ALSStatistics.accumulate(user: train, embedding: p, bias: 0.25, model: model, alpha: 4, rows: slots, dense: &denseSlots,
                                     weight: weight, residualClip: objective == .mse ? 1.5 : nil)
            collector.add(user: train, embedding: p, bias: 0.25, model: model, alpha: 4, dense: &denseGathered, weight: weight,
                          residualClip: objective == .mse ? 1.5 : nil)
        }
        let dir = try TemporaryDirectory()
        let spill = try SpilledTensor(directory: dir.path, dtype: .f32)
        let gathered = try collector.rows(gram: spill)
        let sorted = slots.sortedTensors(split: layout)
        #expect(gathered.rows == [0, 1, 2, 3, 7, 9] && gathered.rows == sorted.rows)
        #expect(gathered.clients == [2, 1, 1, 3, 3, 2] && gathered.clients == sorted.clients)
        #expect(gathered.weights.map(\.bitPattern) == sorted.weights.map(\.bitPattern))
        #expect(gathered.rhs.map(\.bitPattern) == sorted.tensors[ALSStatistics.rhsName]!.values.map(\.bitPattern))
        #expect(denseGathered.map(\.bitPattern) == denseSlots.map(\.bitPattern))
        // The spilled Gram blocks, read back through an update file.
        var update = ModelUpdate(header: UpdateHeader(config: config, baseModel: "b", round: 0, algorithm: .als, weighting: .uniform, clients: 5, weight: 7),
                                 rows: gathered.rows, rowClients: gathered.clients, rowWeight: gathered.weights,
                                 rowTensors: [ALSStatistics.rhsName: RowTensor(width: layout[1].width, values: gathered.rhs)],
                                 dense: [ALSStatistics.denseName(config): denseGathered])
        try update.write(to: dir.path + "/u", kind: .update, spilled: [ALSStatistics.gramName: (layout[0].width, spill)])
        update = try ModelUpdate.load(dir.path + "/u")
        #expect(update.rowTensors[ALSStatistics.gramName]!.values.map(\.bitPattern) == sorted.tensors[ALSStatistics.gramName]!.values.map(\.bitPattern))
        // By hand: item 2 is rated by user 3 alone, so its block is x xᵀ (WALS: α x xᵀ) of that user.
        let x = embedding(3, dim: 3) + (objective == .mse ? [1] : [])
        let n = x.count, scale: Float = objective == .mse ? 1 : 4
        var expected: [Float] = []
        for a in 0..<n { for b in a..<n { expected.append(scale * (x[a] * x[b])) } }
        let t = layout[0].width
        #expect(Array(update.rowTensors[ALSStatistics.gramName]!.values[(2 * t)..<(3 * t)]) == expected)
    }

    @Test("a round of ALS streamed through fl-aggregate's merge gives the model the in-memory sum gives, bit for bit", arguments: [Objective.mse, .wals])
    func streamedRoundEqualsInMemory(objective: Objective) throws {
        let data = try SyntheticDataset(users: 90, items: 40, perUser: 12, shards: 3)
        let model = try data.initialModel(objective, dim: 4)
        var t = TrainingOptions()
        t.algorithm = .als
        t.l2 = 0.1
        t.userParameters = .reconstruct
        var s = ServerOptions()
        s.l2 = 0.1
        var updates: [String] = []
        for (i, shard) in data.shards.enumerated() {
            let path = data.directory.path + "/u\(i)"
            _ = try ShardTrainer.run(modelPath: model, shardPath: shard, stateIn: nil, stateOut: nil, output: path, options: t)
            updates.append(path)
        }
        let inMemory = try ServerStep.apply(ModelUpdate.sum(paths: updates), sumFile: "sum", to: model, options: s)
        let stream = try #require(try ALSSumStream.open(paths: updates))
        let streamed = try ServerStep.apply(stream, sumFile: "sum", to: model, options: s)
        _ = try inMemory.write(to: data.directory.path + "/a", layout: .standalone)
        _ = try streamed.write(to: data.directory.path + "/b", layout: .standalone)
        let a = try MFModel.load(data.directory.path + "/a"), b = try MFModel.load(data.directory.path + "/b")
        #expect(a.itemEmbedding.map(\.bitPattern) == b.itemEmbedding.map(\.bitPattern))
        #expect(a.itemBias.map(\.bitPattern) == b.itemBias.map(\.bitPattern) && a.globalBias.bitPattern == b.globalBias.bitPattern)
        #expect(try readBytes(data.directory.path + "/a") == readBytes(data.directory.path + "/b"))
        // The items moved: a real step, not a copy of the start.
        #expect(a.itemEmbedding != (try MFModel.load(model)).itemEmbedding)
    }
}
