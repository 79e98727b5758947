import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecMechanisms
import FedRecSupport
import FedRecWire
import FedRecTraining

@Suite("Poisson client sampling")
struct PoissonSamplingTests {
    @Test("decisions are a function of (seed, round, client): reproducible, and differ across seeds and rounds")
    func reproducible() throws {
        let a = try PoissonSampling(rate: 0.3, seed: 42), b = try PoissonSampling(rate: 0.3, seed: 42)
        let other = try PoissonSampling(rate: 0.3, seed: 43)
        let pick = { (s: PoissonSampling, r: Int) in (0..<1000).filter { s.includes(round: r, client: $0) } }
        #expect(pick(a, 5) == pick(b, 5))
        #expect(pick(a, 5) != pick(other, 5))
        #expect(pick(a, 5) != pick(a, 6))
        #expect(try PoissonSampling(rate: 0, seed: 1).includes(round: 0, client: 0) == false)
        #expect(try PoissonSampling(rate: 1, seed: 1).includes(round: 0, client: 0))
        #expect(throws: FedRecError.self) { try PoissonSampling(rate: 1.5, seed: 1) }
    }

    /// 20 rounds × 5000 clients = 100,000 Bernoulli(q) draws; the count's standard deviation
    /// is √(n q (1-q)). Bound: 5 standard deviations, a false-failure rate below 6e-7 for an
    /// ideal hash (the seed is fixed, so the outcome itself is deterministic).
    @Test("the included fraction is q within sampling error", arguments: [0.01, 0.1, 0.5])
    func fraction(q: Double) throws {
        let sampling = try PoissonSampling(rate: q, seed: 7)
        var count = 0, n = 0
        for round in 0..<20 {
            for client in 0..<5000 {
                n += 1
                if sampling.includes(round: round, client: client) { count += 1 }
            }
        }
        let sd = (Double(n) * q * (1 - q)).squareRoot()
        #expect(abs(Double(count) - Double(n) * q) <= 5 * sd)
    }

    @Test("shards agree: a shard's update records q and its population, and sums add populations")
    func recordedInUpdates() throws {
        let data = try SyntheticDataset(users: 80, shards: 2)
        let model = try data.initialModel(.mse)
        var t = TrainingOptions()
        t.userParameters = .reconstruct
        t.weighting = .uniform
        t.clip = 0.5
        t.sampleRate = 0.5
        t.sampleSeed = 9
        var paths: [String] = []
        var population = 0, clients = 0
        for (s, shard) in data.shards.enumerated() {
            let path = data.directory.path + "/u\(s)"
            let summary = try ShardTrainer.run(modelPath: model, shardPath: shard, stateIn: nil, stateOut: nil, output: path, options: t)
            let update = try ModelUpdate.load(path)
            #expect(update.header.sampleRate == 0.5 && update.header.population == summary.population)
            #expect(summary.clients < summary.population && summary.clients > 0)
            population += summary.population
            clients += summary.clients
            paths.append(path)
        }
        #expect(population == 80)
        let sum = try ModelUpdate.sum(paths: paths)
        #expect(sum.header.population == 80 && sum.header.clients == clients && sum.header.sampleRate == 0.5)
        // The same seed gives the same sample; an update sampled at another rate does not add.
        let again = data.directory.path + "/again"
        try ShardTrainer.run(modelPath: model, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: again, options: t)
        #expect(try ModelUpdate.load(again).header.clients == ModelUpdate.load(paths[0]).header.clients)
        t.sampleRate = 0.25
        let other = data.directory.path + "/other"
        try ShardTrainer.run(modelPath: model, shardPath: data.shards[1], stateIn: nil, stateOut: nil, output: other, options: t)
        #expect(throws: FedRecError.self) { try ModelUpdate.sum(paths: [paths[0], other]) }
    }
}
