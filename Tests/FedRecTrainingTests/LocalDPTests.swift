import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecTraining
import FedRecWire

@Suite("local DP: each client's clipped delta plus Gaussian noise of the mechanism's size")
struct LocalDPTests {
    /// The same client trained twice from the same model and seed, once plain and once with
    /// local DP (test-seeded noise): the training is identical, so the difference of the two
    /// updates is the client's noise alone (plus the rounding of its delta to the grid).
    @Test("one client: its delta is clipped to C, and the noise on all D coordinates has std z·(C + g·√D)")
    func noiseScaleAndClip() throws {
        // Two users, one per shard, so each shard's update is one client's release; many
        // items, so D is large enough to measure the noise's variance to a few per cent.
        let data = try SyntheticDataset(users: 2, items: 1500, perUser: 1200, shards: 2)
        try #require(data.manifest.shards.count == 2 && data.manifest.shards.allSatisfy { $0.users == 1 })
        let model = try data.initialModel(.mse)
        let clip = 0.05, z = 1.3
        var t = TrainingOptions()
        t.userParameters = .reconstruct
        t.weighting = .uniform
        t.epochs = 2
        t.learningRate = 0.05
        t.clip = clip
        let plainPath = data.directory.path + "/plain", privatePath = data.directory.path + "/local-dp"
        let plainSummary = try ShardTrainer.run(modelPath: model, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: plainPath, options: t)
        t.localNoiseMultiplier = z
        t.localNoiseSeed = 5  // test seed: the update says private=false
        let privateSummary = try ShardTrainer.run(modelPath: model, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: privatePath, options: t)
        let plain = try ModelUpdate.load(plainPath), noised = try ModelUpdate.load(privatePath)
        let items = data.manifest.items, width = 4 + 1
        let d = items * width + 1

        // Clipping: the client's whole delta has norm ≤ C, and C binds here.
        func flat(_ u: ModelUpdate) -> [Double] {
            var values = [Double](repeating: 0, count: d)
            let embedding = u.rowTensors["item_embedding"]!.values, bias = u.rowTensors["item_bias"]!.values
            for (r, row) in u.rows.enumerated() {
                for k in 0..<4 { values[Int(row) * width + k] = Double(embedding[r * 4 + k]) }
                values[Int(row) * width + 4] = Double(bias[r])
            }
            values[d - 1] = Double(u.dense["global_bias"]![0])
            return values
        }
        let x = flat(plain), y = flat(noised)
        #expect(plainSummary.clients == 1 && plainSummary.clipped == 1 && privateSummary.clipped == 1)
        let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
        #expect(norm <= clip * (1 + 1e-6) && norm > clip * 0.999, "‖Δ‖ = \(norm)")

        // Every coordinate is released, touched or not; one client counts once per row.
        #expect(noised.rows == (0..<Int32(items)).map { $0 } && noised.rowClients.allSatisfy { $0 == 1 })
        #expect(noised.header.extra[DPMetadata.isPrivate] == "false")

        // The grid: the largest power of two g with g·√D ≤ C/1000, and every value on it.
        let g = exp2(floor(log2(clip / (1000 * Double(d).squareRoot()))))
        #expect(noised.header.extra[DPMetadata.granularity] == "\(g)")
        #expect(y.allSatisfy { ($0 / g).rounded() == $0 / g })

        // The noise: mean 0 and variance σ² = (z·(C + g·√D))², within zOneInAMillion
        // standard errors (Gaussian: Var(n²) = 2σ⁴), widened by the grid rounding (≤ g/2 a
        // coordinate).
        let sigma = z * (clip + g * Double(d).squareRoot())
        let noise = zip(y, x).map { $0 - $1 }
        let mean = noise.reduce(0, +) / Double(d)
        let second = noise.reduce(0) { $0 + $1 * $1 } / Double(d)
        let rounding = g * sigma + g * g / 4
        #expect(abs(mean) <= zOneInAMillion * sigma / Double(d).squareRoot() + g / 2, "mean \(mean)")
        #expect(abs(second - sigma * sigma) <= zOneInAMillion * sigma * sigma * (2 / Double(d)).squareRoot() + rounding,
                "noise variance \(second), σ² = \(sigma * sigma) (σ = \(sigma), D = \(d))")
    }
}
