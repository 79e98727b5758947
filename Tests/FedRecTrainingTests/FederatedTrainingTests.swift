import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecTraining
import FedRecFormats
import FedRecModel
import FedRecWire
import FedRecAggregation
import FedRecEvaluation

@Suite("local training, private state and federated ALS")
struct FederatedTrainingTests {
    func als(_ l2: Float = 0.1) -> (TrainingOptions, ServerOptions) {
        var t = TrainingOptions()
        t.algorithm = .als
        t.l2 = l2
        t.userParameters = .reconstruct
        var s = ServerOptions()
        s.l2 = l2
        return (t, s)
    }

    @Test("federated ALS gives the same model however the clients are sharded")
    func alsIsShardInvariant() throws {
        let one = try SyntheticDataset(shards: 1)
        let three = try SyntheticDataset(shards: 3)
        // Sharding moves users between files only: the same users and items, with the same
        // dense indices, so the two models are comparable row by row.
        #expect(one.manifest.users == three.manifest.users && one.manifest.items == three.manifest.items)
        #expect(try readBytes(one.path + "/items.tsv") == readBytes(three.path + "/items.tsv"))
        #expect(try readUsers(one.path).map { "\($0.user) \($0.id)" }.sorted() == readUsers(three.path).map { "\($0.user) \($0.id)" }.sorted())
        let (t, s) = als()
        let m1 = try one.initialModel(.mse), m3 = try three.initialModel(.mse)
        try one.round(model: m1, next: one.directory.path + "/m1", training: t, server: s)
        try three.round(model: m3, next: three.directory.path + "/m1", training: t, server: s)
        let a = try MFModel.load(one.directory.path + "/m1"), b = try MFModel.load(three.directory.path + "/m1")
        #expect(three.manifest.shards.count == 3)
        let largest = zip(a.itemEmbedding + a.itemBias + [a.globalBias], b.itemEmbedding + b.itemBias + [b.globalBias]).map { abs($0 - $1) }.max()!
        #expect(largest < 1e-4)
    }

    @Test("explicit ALS fits low-rank data: test RMSE well below the global-mean baseline")
    func alsLearns() throws {
        let data = try SyntheticDataset(users: 120, items: 50, perUser: 30, shards: 2)
        let (t, s) = als(0.05)
        var model = try data.initialModel(.mse)
        let baseline = try Evaluator.run(modelPath: model, shards: data.shards, users: UserParameterSource(mode: .reconstruct, states: [], training: t), k: 10).errors.rmse
        for r in 1...5 {
            let next = data.directory.path + "/model-\(r)"
            try data.round(model: model, next: next, training: t, server: s)
            model = next
        }
        let rmse = try Evaluator.run(modelPath: model, shards: data.shards, users: UserParameterSource(mode: .reconstruct, states: [], training: t), k: 10).errors.rmse
        #expect(rmse < 0.6 * baseline)
        #expect(rmse < 0.6)
    }

    @Test("an update holds item rows and counts only: no user embedding leaves the shard")
    func updatesAreItemOnly() throws {
        let data = try SyntheticDataset()
        let model = try data.initialModel(.bpr)
        var t = TrainingOptions()
        t.userParameters = .state
        let state = data.directory.path + "/state.safetensors"
        try ShardTrainer.run(modelPath: model, shardPath: data.shards[0], stateIn: nil, stateOut: state, output: data.directory.path + "/u", options: t)
        let file = try SafeTensorsFile(path: data.directory.path + "/u")
        #expect(Set(file.tensors.keys) == ["rows", "row_clients", "row_weight", "rows.item_embedding", "rows.item_bias", "dense.global_bias"])
        #expect(!file.metadata.keys.contains { $0.contains("user") })
        // The private state holds one embedding per user of the shard.
        let (userState, round) = try UserState.load(state, config: try ModelView(path: model).config)
        #expect(userState.users.count == data.manifest.shards[0].users && round == 1)
    }

    @Test("the same model, shard and seed give a bit-identical update; another seed does not")
    func deterministic() throws {
        let data = try SyntheticDataset()
        let model = try data.initialModel(.bpr)
        var t = TrainingOptions()
        t.userParameters = .reconstruct
        func update(_ seed: UInt64) throws -> [UInt8] {
            t.seed = seed
            let path = data.directory.path + "/u\(seed)-\(UUID().uuidString)"
            try ShardTrainer.run(modelPath: model, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: path, options: t)
            return try readBytes(path)
        }
        #expect(try update(1) == update(1))
        #expect(try update(1) != update(2))
    }

    @Test("clipping bounds every client's contribution and is recorded")
    func clipping() throws {
        let data = try SyntheticDataset()
        let model = try data.initialModel(.mse)
        var t = TrainingOptions()
        t.userParameters = .reconstruct
        t.weighting = .uniform
        t.epochs = 3
        t.clip = 0.01
        let path = data.directory.path + "/u"
        let summary = try ShardTrainer.run(modelPath: model, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: path, options: t)
        let update = try ModelUpdate.load(path)
        #expect(update.header.clip == 0.01 && update.header.clipped == summary.clients)
        // The sum of n vectors of norm ≤ C has norm ≤ nC.
        let values = update.rowTensors["item_embedding"]!.values + update.rowTensors["item_bias"]!.values + update.dense["global_bias"]!
        let norm = values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        #expect(norm <= 0.01 * Double(update.header.clients) + 1e-6)
        #expect(norm > 0)
    }

    @Test("stateful SGD keeps user embeddings across rounds and improves RMSE")
    func statefulSGD() throws {
        let data = try SyntheticDataset(users: 120, items: 50, perUser: 30)
        var t = TrainingOptions()
        t.epochs = 3
        t.learningRate = 0.05
        var s = ServerOptions()
        s.optimizer = .fedavg
        let stateDir = data.directory.path
        var model = try data.initialModel(.mse)
        func rmse() throws -> Double {
            try Evaluator.run(modelPath: model, shards: data.shards, users: UserParameterSource(mode: .state, states: data.shards.indices.map { stateDir + "/shard-\($0).state.safetensors" }, training: t), k: 10).errors.rmse
        }
        try data.round(model: model, next: stateDir + "/m1", training: t, server: s, stateDirectory: stateDir)
        model = stateDir + "/m1"
        let early = try rmse()
        for r in 2...8 {
            try data.round(model: model, next: stateDir + "/m\(r)", training: t, server: s, stateDirectory: stateDir)
            model = stateDir + "/m\(r)"
        }
        #expect(try rmse() < early - 0.05)
    }
}
