import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecTraining
import FedRecMechanisms
import FedRecModel
import FedRecSupport
import FedRecWire

/// Client-level DP for ncf clients: each client's whole update clipped, Poisson sampling,
/// and the header fl-dp-noise reads (the `ncfModel` fixture is `NCFTrainingTests`').
extension NCFTrainingTests {
    /// Every client's own update of shard 0 (`clientSink`), in the order they trained.
    func clientUpdates(model: String, data: SyntheticDataset, options: TrainingOptions) throws -> [(client: Int32, update: ModelUpdate)] {
        var updates: [(client: Int32, update: ModelUpdate)] = []
        _ = try NCFShardTrainer.run(modelPath: model, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: "-", options: options) {
            updates.append(($0, $1))
        }
        return updates
    }

    /// ‖u‖₂ over every row tensor's and dense tensor's values.
    func norm(_ update: ModelUpdate) -> Double {
        let values = update.rowTensors.values.flatMap(\.values) + update.dense.values.flatMap { $0 }
        return values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }

    /// Training options for these tests: `epochs` of Adam at `lr`, weighted by `weighting`.
    func options(epochs: Int, lr: Float = 0.01, weighting: ContributionWeighting) -> TrainingOptions {
        var options = TrainingOptions()
        options.epochs = epochs
        options.optimizer = .adam
        options.learningRate = lr
        options.weighting = weighting
        return options
    }

    @Test("--clip C: each client's update (its rows and tower, weighted) is its unclipped one scaled to norm w·C when longer; a huge C changes nothing")
    func clipping() throws {
        let data = try SyntheticDataset(users: 24, items: 20, perUser: 6, split: .leaveLastOut)
        let path = try ncfModel(data)
        var options = self.options(epochs: 2, lr: 0.05, weighting: .examples)
        let plain = try clientUpdates(model: path, data: data, options: options)
        #expect(plain.count > 5)
        let norms = plain.map { norm($0.update) / $0.update.header.weight }
        // A clip below most clients' norms (their median), so some are clipped and some not.
        let clip = norms.sorted()[norms.count / 2]
        options.clip = clip
        let clipped = try clientUpdates(model: path, data: data, options: options)
        #expect(clipped.map(\.client) == plain.map(\.client))
        var expectedClipped = 0
        for ((_, a), (_, b)) in zip(plain, clipped) {
            let w = a.header.weight, unclipped = norm(a) / w
            let scale = unclipped > clip ? clip / unclipped : 1
            if unclipped > clip { expectedClipped += 1 }
            #expect(b.header.clipped == (unclipped > clip ? 1 : 0) && b.header.clip == clip && b.header.weight == w)
            #expect(norm(b) <= w * clip * (1 + 1e-5))
            #expect(b.rows == a.rows && b.rowClients == a.rowClients && b.rowWeight == a.rowWeight)
            for (name, tensor) in a.rowTensors {
                let got = try #require(b.rowTensors[name]?.values)
                #expect(zip(got, tensor.values).allSatisfy { abs(Double($0) - Double($1) * scale) <= 1e-6 * max(1, abs(Double($1))) }, "rows.\(name)")
            }
            for (name, values) in a.dense {
                let got = try #require(b.dense[name])
                #expect(zip(got, values).allSatisfy { abs(Double($0) - Double($1) * scale) <= 1e-6 * max(1, abs(Double($1))) }, "dense.\(name)")
            }
        }
        #expect(expectedClipped > 0 && expectedClipped < plain.count)
        // The shard's update records C and the clipped count, as MF's does.
        let out = data.directory.path + "/clipped"
        let summary = try NCFShardTrainer.run(modelPath: path, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: out, options: options)
        let update = try ModelUpdate.load(out)
        #expect(summary.clipped == expectedClipped && update.header.clipped == expectedClipped && update.header.clip == clip)
        // A clip no client reaches: every client's update bit for bit the unclipped one.
        options.clip = 1e9
        let loose = try clientUpdates(model: path, data: data, options: options)
        for ((_, a), (_, b)) in zip(plain, loose) {
            #expect(b.rowTensors == a.rowTensors && b.dense == a.dense && b.header.clipped == 0)
        }
    }

    @Test("--sample-rate q: exactly the clients PoissonSampling(q, seed) draws train; the header records q, the population and the key's source")
    func sampling() throws {
        let data = try SyntheticDataset(users: 30, items: 20, perUser: 6, split: .leaveLastOut)
        let path = try ncfModel(data)
        var options = self.options(epochs: 1, weighting: .uniform)
        options.clip = 0.5
        let all = try clientUpdates(model: path, data: data, options: options).map(\.client)
        options.sampleRate = 0.5
        options.sampleSeed = 9
        let drawn = try clientUpdates(model: path, data: data, options: options).map(\.client)
        let sampler = try PoissonSampling(rate: 0.5, seed: 9)
        #expect(drawn == all.filter { sampler.includes(round: 0, client: Int($0)) })
        #expect(!drawn.isEmpty && drawn.count < all.count)
        let out = data.directory.path + "/sampled"
        let summary = try NCFShardTrainer.run(modelPath: path, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: out, options: options)
        let header = try ModelUpdate.load(out).header
        #expect(header.sampleRate == 0.5 && header.population == summary.population && summary.population == all.count)
        #expect(header.clients == drawn.count && header.weight == Double(drawn.count) && header.clip == 0.5)
        #expect(header.extra[DPMetadata.samplingKey] == SamplingKeySource.test.rawValue)
    }
}
