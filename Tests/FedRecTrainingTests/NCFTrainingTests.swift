import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecTraining
import FedRecAggregation
@testable import FedRecData
import FedRecModel
import FedRecSupport
import FedRecWire

@Suite("NCF training: one local step by hand, a FedAvg round, determinism, refusals")
struct NCFTrainingTests {
    func ncfModel(_ data: SyntheticDataset, variant: NCFVariant = .neumf, objective: Objective = .bce, name: String = "ncf-0000") throws -> String {
        let network = try NCFNetwork(variant: variant, gmfDim: 3, mlpDim: 2, layers: [4, 2])
        let config = ModelConfig(family: .ncf, objective: objective, dim: network.userWidth, items: data.manifest.items, datasetId: data.manifest.datasetId)
        var model = NCFModel.initial(config: config, network: network, scale: 0.1, seed: 3, outputBias: objective == .mse ? 3 : 0)
        model.notes["rating_min"] = "1.0"
        model.notes["rating_max"] = "5.0"
        let path = data.directory.path + "/" + name
        try model.write(to: path)
        return path
    }

    @Test("one SGD step of GMF on one rating, by hand")
    func oneStep() throws {
        // GMF, 2 factors, MSE, one rating r = 4 of item 1, lr 0.1, λ = 0.5:
        // z = h·(p ⊙ q) + b = 1·(1·2) + 2·(1·1) + 0.5 = 4.5, δ = z − r = 0.5;
        // q' = q − lr (δ h ⊙ p + λ q) = [2, 1] − 0.1·([0.5, 1] + [1, 0.5]) = [1.85, 0.85];
        // p' = [1, 1] − 0.1·([1, 1] + [0.5, 0.5]) = [0.85, 0.85];
        // h' = [1, 2] − 0.1·([1, 0.5] + [0.5, 1]) = [0.85, 1.85]; b' = 0.5 − 0.1·(0.5 + 0.25) = 0.425.
        let network = try NCFNetwork(variant: .gmf, gmfDim: 2, mlpDim: 0, layers: [])
        let config = ModelConfig(family: .ncf, objective: .mse, dim: 2, items: 3, datasetId: "d")
        let model = NCFModel(config: config, network: network, itemRows: [0, 0, 2, 1, 0, 0], dense: [1, 2, 0.5])
        var options = TrainingOptions()
        options.learningRate = 0.1
        options.l2 = 0.5
        let trainer = NCFClientTrainer(model: model, options: options)
        let record = UserRecord(user: 0, id: "u", client: 0, train: Interactions(items: [1], ratings: [4], times: [0]), test: Interactions(), negatives: [])
        var generator = SeededGenerator(seed: 1)
        var emitted: [(Int32, [Float])] = []
        let result = trainer.train(users: [record], start: [1, 1], generator: &generator, userEpochs: 0, sharedEpochs: 1) { item, delta in
            emitted.append((item, Array(delta)))
        }
        func close(_ a: [Float], _ b: [Float]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 } }
        #expect(emitted.count == 1 && emitted[0].0 == 1)
        #expect(close(emitted[0].1, [-0.15, -0.15]))
        #expect(close(result.users, [0.85, 0.85]))
        #expect(close(result.denseDelta, [-0.15, -0.15, -0.075]))
    }

    @Test("a FedAvg round: the model moves by Σ w_k Δ_k over the clients' weight, as the updates say")
    func fedAvgRound() throws {
        let data = try SyntheticDataset(users: 30, items: 25, perUser: 8, split: .leaveLastOut)
        let path = try ncfModel(data)
        let (start, _) = try NCFModel.open(path)
        var options = TrainingOptions()
        options.epochs = 1
        options.negatives = 2
        options.optimizer = .adam
        options.learningRate = 0.01
        var updates: [String] = []
        for (s, shard) in data.shards.enumerated() {
            let out = data.directory.path + "/u\(s)"
            let summary = try NCFShardTrainer.run(modelPath: path, shardPath: shard, stateIn: nil, stateOut: data.directory.path + "/st\(s)",
                                                  output: out, options: options)
            #expect(summary.clients > 0 && summary.examples == summary.clients * 7)
            updates.append(out)
        }
        let sum = try ModelUpdate.sum(paths: updates)
        #expect(sum.header.weight == Double(sum.header.clients * 7))
        let next = try NCFModel(TensorServerStep.apply(sum, sumFile: "sum", to: path, options: ServerOptions()), file: "next")
        #expect(next.round == 1)
        // Dense: global + Σ w_k Δ_k / Σ w_k, from the sum's own numbers.
        for entry in start.network.denseLayout {
            let delta = sum.dense[entry.name]!
            for k in delta.indices {
                let expected = Double(start.dense[entry.offset + k]) + Double(delta[k]) / sum.header.weight
                #expect(abs(Double(next.dense[entry.offset + k]) - expected) < 1e-6)
            }
        }
        // Rows: each touched row by its summed delta over the weight of the clients that touched it.
        let width = start.network.userWidth, g = start.network.gmfDim
        var touched = Set<Int>()
        for (r, row) in sum.rows.enumerated() {
            touched.insert(Int(row))
            for k in 0..<width {
                let part = k < g ? sum.rowTensors["gmf_item"]!.values[r * g + k] : sum.rowTensors["mlp_item"]!.values[r * (width - g) + k - g]
                let expected = Double(start.itemRows[Int(row) * width + k]) + Double(part) / Double(sum.rowWeight[r])
                #expect(abs(Double(next.itemRows[Int(row) * width + k]) - expected) < 1e-6)
            }
        }
        for i in 0..<data.manifest.items where !touched.contains(i) { #expect(Array(next.itemRow(i)) == Array(start.itemRow(i))) }
        // User vectors went to the state files, never into the update.
        let state = try UserState.load(data.directory.path + "/st0", config: start.config).state
        #expect(state.users.count > 0 && state.dim == width)
        #expect(!sum.rowTensors.keys.contains { $0.contains("user") } && !sum.dense.keys.contains { $0.contains("user") })
    }

    @Test("same inputs and seed give bit-identical updates and states; another seed another update")
    func determinism() throws {
        let data = try SyntheticDataset(users: 20, items: 20, perUser: 6, split: .leaveLastOut)
        let path = try ncfModel(data)
        var options = TrainingOptions()
        options.epochs = 2
        options.batchSize = 4
        options.optimizer = .adam
        func run(_ name: String, seed: UInt64) throws -> (update: [UInt8], state: [UInt8]) {
            options.seed = seed
            let out = data.directory.path + "/" + name, state = out + ".state"
            _ = try NCFShardTrainer.run(modelPath: path, shardPath: data.shards[0], stateIn: nil, stateOut: state, output: out, options: options)
            return (Array(try Data(contentsOf: URL(fileURLWithPath: out))), Array(try Data(contentsOf: URL(fileURLWithPath: state))))
        }
        let a = try run("a", seed: 5), b = try run("b", seed: 5), c = try run("c", seed: 6)
        #expect(a.update == b.update && a.state == b.state)
        #expect(a.update != c.update)
    }

    @Test("a minibatch through the network in pieces of 1, 3 or 64 examples trains bit-identically", arguments: [NCFVariant.mlp, .neumf])
    func pieces(variant: NCFVariant) throws {
        let data = try SyntheticDataset(users: 12, items: 30, perUser: 9, split: .leaveLastOut)
        let (model, _) = try NCFModel.open(try ncfModel(data, variant: variant))
        var options = TrainingOptions()
        options.optimizer = .adam
        options.learningRate = 0.05
        options.negatives = 3
        options.batchSize = 10
        let reader = try ShardUserReader(path: data.shards[0], datasetId: model.config.datasetId, items: model.config.items)
        let record = try #require(try reader.next())
        func train(chunk: Int, userEpochs: Int, sharedEpochs: Int) -> (users: [UInt32], dense: [UInt32], rows: [UInt32]) {
            var generator = SeededGenerator(seed: 9)
            var rows: [UInt32] = []
            let result = NCFClientTrainer(model: model, options: options, chunk: chunk).train(
                users: [record], start: options.initialEmbedding(user: record.user, dim: model.config.dim), generator: &generator,
                userEpochs: userEpochs, sharedEpochs: sharedEpochs) { item, delta in rows += [UInt32(item)] + delta.map(\.bitPattern) }
            return (result.users.map(\.bitPattern), result.denseDelta.map(\.bitPattern), rows)
        }
        for (userEpochs, sharedEpochs) in [(0, 2), (3, 0)] {
            let whole = train(chunk: 64, userEpochs: userEpochs, sharedEpochs: sharedEpochs)
            #expect(whole.users != options.initialEmbedding(user: record.user, dim: model.config.dim).map(\.bitPattern))
            for chunk in [1, 3] {
                let pieces = train(chunk: chunk, userEpochs: userEpochs, sharedEpochs: sharedEpochs)
                #expect(pieces.users == whole.users && pieces.dense == whole.dense && pieces.rows == whole.rows)
            }
            #expect(whole.dense.contains { $0 != 0 } == (sharedEpochs > 0))
        }
    }

    @Test("a step's 8-wide Adam and SGD give the scalar formulas' values; the gradient is zeroed")
    func stepRule() {
        var g = SeededGenerator(seed: 4)
        let n = 19
        let x0 = (0..<n).map { _ in Float(g.nextGaussian()) }, grad0 = (0..<n).map { _ in Float(g.nextGaussian()) }
        let m0 = (0..<n).map { _ in Float(g.nextGaussian()) * 0.1 }, v0 = (0..<n).map { _ in Float(g.nextUnitFloat()) * 0.01 }
        for adam in [true, false] {
            let lr: Float = 0.01, l2: Float = 0.001, examples = 6, step = 3
            var rule = NCFStepRule(learningRate: lr, l2: l2, adam: adam)
            rule.begin(step: step, examples: examples)
            var x = x0, grad = grad0, m = m0, v = v0
            x.withUnsafeMutableBufferPointer { x in
            grad.withUnsafeMutableBufferPointer { grad in
            m.withUnsafeMutableBufferPointer { m in
            v.withUnsafeMutableBufferPointer { v in
                rule.apply(x.baseAddress!, grad: grad.baseAddress!, m: m.baseAddress!, v: v.baseAddress!, count: n)
            }}}}
            for k in 0..<n {
                // Kingma & Ba 2015: m ← β₁ m + (1 − β₁) g, v ← β₂ v + (1 − β₂) g², θ ← θ − lr m̂ / (√v̂ + ε).
                let gk = grad0[k] * (1 / Float(examples)) + l2 * x0[k]
                var expected = x0[k]
                if adam {
                    let mk = 0.9 * m0[k] + 0.1 * gk, vk = 0.999 * v0[k] + 0.001 * gk * gk
                    let mHat = mk / (1 - powf(0.9, Float(step))), vHat = vk / (1 - powf(0.999, Float(step)))
                    expected -= lr * mHat / (vHat.squareRoot() + 1e-8)
                    #expect(m[k] == mk && v[k] == vk)
                } else {
                    expected -= lr * gk
                    #expect(m[k] == m0[k] && v[k] == v0[k])
                }
                #expect(x[k].bitPattern == expected.bitPattern, "adam \(adam), k \(k)")
            }
            #expect(grad.allSatisfy { $0 == 0 } && x != x0)
        }
    }

    @Test("training lowers the log loss on the clients' own positives and negatives")
    func learns() throws {
        let data = try SyntheticDataset(users: 30, items: 30, perUser: 10, split: .leaveLastOut)
        let path = try ncfModel(data, variant: .gmf)
        let (model, _) = try NCFModel.open(path)
        var options = TrainingOptions()
        options.optimizer = .adam
        options.learningRate = 0.05
        options.l2 = 0
        let reader = try ShardUserReader(path: data.shards[0], datasetId: model.config.datasetId, items: model.config.items)
        let record = try #require(try reader.next())
        let trainer = NCFClientTrainer(model: model, options: options)
        let start = options.initialEmbedding(user: record.user, dim: model.config.dim)
        var generator = SeededGenerator(seed: 1)
        let trained = trainer.train(users: [record], start: start, generator: &generator, userEpochs: 0, sharedEpochs: 20) { _, _ in }
        func meanScore(_ user: [Float], _ m: NCFModel) -> (positive: Float, other: Float) {
            var scores = [Float](repeating: 0, count: m.config.items)
            NCFScorer(model: m).score(user: user, into: &scores)
            let mine = Set(record.train.items.map(Int.init))
            let pos = mine.map { scores[$0] }.reduce(0, +) / Float(mine.count)
            let rest = scores.indices.filter { !mine.contains($0) }
            return (pos, rest.map { scores[$0] }.reduce(0, +) / Float(rest.count))
        }
        let before = meanScore(start, model)
        // The client's trained item rows and dense parameters, applied as its own model.
        var local = model
        for k in local.dense.indices { local.dense[k] += trained.denseDelta[k] }
        var generator2 = SeededGenerator(seed: 1)
        _ = NCFClientTrainer(model: model, options: options).train(users: [record], start: start, generator: &generator2, userEpochs: 0, sharedEpochs: 20) { item, delta in
            for k in 0..<delta.count { local.itemRows[Int(item) * model.config.dim + k] += delta[k] }
        }
        let after = meanScore(trained.users, local)
        #expect(after.positive - after.other > before.positive - before.other + 1)
    }

    @Test("ALS, local DP and the FedProx term are refused for ncf; an MF state file is refused")
    func refusals() throws {
        let data = try SyntheticDataset(users: 10, items: 10, perUser: 5, split: .leaveLastOut)
        let path = try ncfModel(data)
        func refused(_ change: (inout TrainingOptions) -> Void) -> FailureClass? {
            var options = TrainingOptions()
            change(&options)
            do {
                _ = try NCFShardTrainer.run(modelPath: path, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: data.directory.path + "/x", options: options)
                return nil
            } catch let error as FedRecError { return error.failure } catch { return nil }
        }
        #expect(refused { $0.algorithm = .als } == .usage)
        #expect(refused { $0.clip = 1; $0.weighting = .uniform; $0.localNoiseMultiplier = 1 } == .usage)
        #expect(refused { $0.proxMu = 0.1 } == .usage)
        #expect(throws: FedRecError.self) { try NCFShardTrainer.refuseDistributedDP(true) }
        #expect(!fileExists(data.directory.path + "/x"))
        // An MF model's state (another model type and width) is not an ncf client's.
        let mf = try data.initialModel(.bce, dim: 4)
        var options = TrainingOptions()
        _ = try ShardTrainer.run(modelPath: mf, shardPath: data.shards[0], stateIn: nil, stateOut: data.directory.path + "/mf.state", output: data.directory.path + "/mfu", options: options)
        options.epochs = 1
        #expect(throws: FedRecError.self) {
            try NCFShardTrainer.run(modelPath: path, shardPath: data.shards[0], stateIn: data.directory.path + "/mf.state", stateOut: nil,
                                    output: data.directory.path + "/y", options: options)
        }
        // An MF checkpoint is not an ncf one.
        #expect(throws: FedRecError.self) { try NCFModel.open(mf) }
    }
}
