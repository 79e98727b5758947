import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecTraining
import FedRecData
import FedRecFormats
import FedRecModel
import FedRecWire
import FedRecSupport
@testable import FedRecPrivacy
import FedRecMechanisms
import FedRecAggregation

@Suite("private ALS: bounded contributions, their sensitivity, the noised release")
struct PrivateALSTests {
    /// The values a release noises (upper triangles, right-hand sides, counts, the dense
    /// part) of what one user adds, measured from the accumulator, not from the formula.
    func contributionNorm(objective: Objective, bounds: ALSContributionBounds, items: Int, ratings: [Float],
                          embedding: [Float], bias: Float) throws -> Double {
        let data = try SyntheticDataset(users: 20, items: 40, perUser: 10, shards: 1)
        let model = try ModelView(path: try data.initialModel(objective, dim: 4))
        let config = model.config
        let layout = ALSStatistics.rowLayout(config)
        let rows = RowAccumulator(items: config.items, width: layout.reduce(0) { $0 + $1.width })
        var dense = [Float](repeating: 0, count: ALSStatistics.denseCount(config))
        let train = Interactions(items: (0..<Int32(items)).map { $0 }, ratings: ratings, times: [Int64](repeating: 0, count: items))
        var generator = SeededGenerator(seed: 1, stream: 2)
        let shared = ALSStatistics.bounded(train, maxItems: bounds.maxItems, using: &generator)
        #expect(shared.count == min(items, bounds.maxItems))
        #expect(Set(shared.items).isSubset(of: Set(train.items)))
        ALSStatistics.accumulate(user: shared, embedding: ALSStatistics.clipped(embedding, to: Float(bounds.userClip)), bias: bias,
                                 model: model, alpha: Float(bounds.alpha), rows: rows, dense: &dense, weight: 1,
                                 residualClip: Float(bounds.residualClip))
        let sorted = rows.sortedTensors(split: layout)
        let n = config.objective == .wals ? config.dim : config.dim + 1
        var squares = 0.0
        for r in 0..<sorted.rows.count {
            let gram = sorted.tensors[layout[0].name]!.values, rhs = sorted.tensors[layout[1].name]!.values
            // The packed upper triangle, as the release noises it.
            let t = ALSStatistics.packedCount(n)
            for k in 0..<t { squares += pow(Double(gram[r * t + k]), 2) }
            for i in 0..<n { squares += pow(Double(rhs[r * n + i]), 2) }
            squares += pow(Double(sorted.weights[r]), 2)
        }
        if config.objective == .wals {
            // The release scales the dense Gram by its weight.
            let d = config.dim, w = bounds.denseWeight(config)
            for i in 0..<d { for j in i..<d { squares += pow(w * Double(dense[i * d + j]), 2) } }
        } else {
            let w = bounds.denseWeight(config)
            squares += dense.reduce(0.0) { $0 + pow(w * Double($1), 2) }
        }
        return squares.squareRoot()
    }

    /// Implicit ALS training with per-user bounds (α the bounds').
    func privateALS(_ bounds: ALSContributionBounds) -> TrainingOptions {
        var t = TrainingOptions()
        t.algorithm = .als
        t.userParameters = .reconstruct
        t.alpha = Float(bounds.alpha)
        t.weighting = .uniform
        t.alsBounds = bounds
        return t
    }

    @Test("one user's share of implicit statistics is within Δ, and a worst-case user comes close to it",
          arguments: [(5, 1.0, 5.0), (12, 0.5, 1.0), (40, 2.0, 10.0)])
    func implicitSensitivity(maxItems: Int, clip: Double, alpha: Double) throws {
        let bounds = ALSContributionBounds(maxItems: maxItems, userClip: clip, residualClip: 2, alpha: alpha)
        let config = ModelConfig(objective: .wals, dim: 4, items: 40, datasetId: "x")
        let delta = bounds.sensitivity(config)
        // A huge vector, more items than K: both bounds bite.
        let norm = try contributionNorm(objective: .wals, bounds: bounds, items: 40, ratings: [Float](repeating: 1, count: 40),
                                        embedding: [30, -40, 12, 7], bias: 0)
        #expect(norm <= delta * (1 + 1e-6))
        #expect(norm >= 0.5 * delta)
        // A vector along one axis makes p pᵀ one diagonal entry: the triangle keeps all of
        // its Frobenius norm, so the bound is tight up to Float rounding.
        let axis = try contributionNorm(objective: .wals, bounds: bounds, items: 40, ratings: [Float](repeating: 1, count: 40),
                                        embedding: [100, 0, 0, 0], bias: 0)
        #expect(abs(axis - delta) <= 1e-4 * delta)
    }

    @Test("one user's share of explicit statistics is within Δ however large their ratings and bias")
    func explicitSensitivity() throws {
        let bounds = ALSContributionBounds(maxItems: 8, userClip: 1, residualClip: 2, alpha: 0)
        let config = ModelConfig(objective: .mse, dim: 4, items: 40, datasetId: "x")
        let delta = bounds.sensitivity(config)
        for (ratings, bias) in [([Float](repeating: 5e3, count: 40), Float(-300)), ([Float](repeating: -7, count: 40), Float(9))] {
            let norm = try contributionNorm(objective: .mse, bounds: bounds, items: 40, ratings: ratings, embedding: [0, 0, 0, 50], bias: bias)
            #expect(norm <= delta * (1 + 1e-6))
            #expect(norm >= 0.5 * delta)
        }
    }

    @Test("Δ by hand: implicit K=10, Γ=1, α=3 gives √(1.09 · 10·(9 + 16 + 1)) (the dense Gram weighted to 9 % of the items' share); explicit K=2, Γ=1, Γ_r=2 gives √(1.09 · 2·(4 + 8 + 1))")
    func sensitivityByHand() {
        let wals = ModelConfig(objective: .wals, dim: 8, items: 3, datasetId: "x")
        let mse = ModelConfig(objective: .mse, dim: 8, items: 3, datasetId: "x")
        #expect(abs(ALSContributionBounds(maxItems: 10, userClip: 1, residualClip: 2, alpha: 3).sensitivity(wals) - (1.09 * 260).squareRoot()) < 1e-12)
        #expect(abs(ALSContributionBounds(maxItems: 2, userClip: 1, residualClip: 2, alpha: 0).sensitivity(mse) - (1.09 * 26).squareRoot()) < 1e-12)
    }

    @Test("a bounded round releases every item, noised with σ = zΔ; the ledger charges a Gaussian at q = 1")
    func release() throws {
        let data = try SyntheticDataset(users: 60, items: 40, perUser: 12, shards: 2)
        let model = try data.initialModel(.wals, dim: 4)
        let t = privateALS(ALSContributionBounds(maxItems: 5, userClip: 1, residualClip: 2, alpha: 2))
        var updates: [String] = []
        for (s, shard) in data.shards.enumerated() {
            let update = data.directory.path + "/u\(s)"
            try ShardTrainer.run(modelPath: model, shardPath: shard, stateIn: nil, stateOut: nil, output: update, options: t)
            updates.append(update)
        }
        let sum = try ModelUpdate.sum(paths: updates)
        #expect(sum.header.population == 60)
        // No user adds to more than K = 5 items: the counts sum to at most 5 per user.
        #expect(sum.rowWeight.reduce(0, +) <= 5 * 60)
        let z = 3.0
        let (noised, _, sigma) = try PrivateALSRelease.noisedSum(sum, noiseMultiplier: z, source: SeededNoiseSource(seed: 7))
        let config = sum.header.config
        let delta = t.alsBounds!.sensitivity(config)
        #expect(abs(sigma - z * delta) < 1e-3 * z * delta)  // σ = z(Δ + g√D), g tiny
        #expect(noised.rows == (0..<Int32(config.items)).map { $0 })
        #expect(noised.header.extra[DPMetadata.mechanism] == LedgerEntry.alsGaussian)
        #expect(noised.rowClients.allSatisfy { $0 >= 0 && Int($0) <= noised.header.clients })
        // The noise: released minus true values over every count, standardised.
        var trueCount = [Double](repeating: 0, count: config.items)
        for (r, row) in sum.rows.enumerated() { trueCount[Int(row)] = Double(sum.rowWeight[r]) }
        let residuals = (0..<config.items).map { (Double(noised.rowWeight[$0]) - trueCount[$0]) / sigma }
        let gram = noised.rowTensors["als_gram"]!.values
        // Packed Grams (the 10 values of a 4 × 4 triangle), and noise of unit variance when divided by σ.
        #expect(noised.rowTensors["als_gram"]!.width == 10 && gram.count == 10 * config.items)
        var noise: [Double] = residuals
        for item in 0..<config.items where !sum.rows.contains(Int32(item)) {
            noise += (0..<10).map { Double(gram[item * 10 + $0]) / sigma }
        }
        let mean = noise.reduce(0, +) / Double(noise.count)
        let variance = noise.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(noise.count - 1)
        #expect(abs(mean) < 5 / Double(noise.count).squareRoot())
        #expect(abs(variance - 1) < 0.35)
        // The server step solves the noised items and leaves those under 3σ at zero.
        var s = ServerOptions()
        s.l2 = 1
        let next = try ServerStep.apply(noised, sumFile: "noised", to: model, options: s)
        #expect(next.embedding.allSatisfy { $0.isFinite })
    }

    @Test("mean-field item Gram: nothing of the Grams is shared or released, and the server solves (D(1 + α n/N) + λI) y = b")
    func meanFieldGram() throws {
        let data = try SyntheticDataset(users: 50, items: 30, perUser: 10, shards: 1)
        let model = try data.initialModel(.wals, dim: 4)
        let t = privateALS(ALSContributionBounds(maxItems: 6, userClip: 1, residualClip: 2, alpha: 3, itemGram: .mean))
        let update = data.directory.path + "/u"
        try ShardTrainer.run(modelPath: model, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: update, options: t)
        let sum = try ModelUpdate.sum(paths: [update])
        #expect(sum.rowTensors["als_gram"]!.values.allSatisfy { $0 == 0 })
        let config = sum.header.config
        // Δ without the α²G⁴ term: √(1.09 · 6·(16 + 1)).
        #expect(abs(t.alsBounds!.sensitivity(config) - (1.09 * 102).squareRoot()) < 1e-12)
        #expect(PrivateALSRelease.coordinates(config, sharesItemGram: false) == 30 * (4 + 1) + 10)
        let (noised, _, sigma) = try PrivateALSRelease.noisedSum(sum, noiseMultiplier: 0.01, source: SeededNoiseSource(seed: 1))
        #expect(noised.rowTensors["als_gram"]!.values.allSatisfy { $0 == 0 })
        var s = ServerOptions()
        s.l2 = 2
        s.dpMinCount = 0.5
        var next = try ServerStep.apply(noised, sumFile: "noised", to: model, options: s)
        try next.makeDense()
        // The solve by hand from the released values: the mean-field Gram, λ, and the
        // noise-aware ridge 2σ√d scaled like the Gram.
        let dense = noised.dense["als_user_gram"]!.map { Double($0) }
        let population = Double(noised.header.clients)
        #expect(population == 50)
        var solved = 0
        for (r, row) in noised.rows.enumerated() {
            let count = Double(noised.rowWeight[r])
            let slot = Int(row)
            guard count >= 0.5 else {
                #expect((0..<4).allSatisfy { next.embedding[slot * 4 + $0] == 0 }, "item \(row) under the count threshold")
                continue
            }
            let factor = 1 + 3 * count / population
            var a = dense.map { $0 * factor }
            // D's noise is σ/w: the ridge is 2(σ/w)√d, scaled like D.
            let w = t.alsBounds!.denseWeight(config)
            for i in 0..<4 { a[i * 4 + i] += 2 + 2 * (sigma / w) * 2 * factor }
            let b = (0..<4).map { Double(noised.rowTensors["als_rhs"]!.values[r * 4 + $0]) }
            let y = solve4(a, b)
            for k in 0..<4 { #expect(abs(Double(next.embedding[slot * 4 + k]) - y[k]) < 1e-4 + 1e-4 * abs(y[k]), "item \(row)") }
            solved += 1
        }
        #expect(solved >= 20)
    }

    /// Gaussian elimination with partial pivoting: the test's own 4 × 4 solve.
    func solve4(_ matrix: [Double], _ rhs: [Double]) -> [Double] {
        var a = matrix, b = rhs
        for c in 0..<4 {
            let p = (c..<4).max { abs(a[$0 * 4 + c]) < abs(a[$1 * 4 + c]) }!
            for k in 0..<4 { a.swapAt(c * 4 + k, p * 4 + k) }
            b.swapAt(c, p)
            for r in (c + 1)..<4 {
                let f = a[r * 4 + c] / a[c * 4 + c]
                for k in c..<4 { a[r * 4 + k] -= f * a[c * 4 + k] }
                b[r] -= f * b[c]
            }
        }
        var x = [Double](repeating: 0, count: 4)
        for r in stride(from: 3, through: 0, by: -1) {
            x[r] = (b[r] - ((r + 1)..<4).reduce(0.0) { $0 + a[r * 4 + $1] * x[$1] }) / a[r * 4 + r]
        }
        return x
    }

    @Test("training refuses bounds with example weighting or SGD")
    func refusals() throws {
        let data = try SyntheticDataset(users: 10, items: 10, perUser: 5, shards: 1)
        let model = try data.initialModel(.wals, dim: 4)
        var t = TrainingOptions()
        t.algorithm = .als
        t.userParameters = .reconstruct
        t.alsBounds = ALSContributionBounds(maxItems: 5, userClip: 1, residualClip: 2, alpha: 10)
        let weighting = #expect(throws: FedRecError.self) {
            try ShardTrainer.run(modelPath: model, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: data.directory.path + "/u", options: t)
        }
        #expect(weighting?.failure == .usage)
        t.weighting = .uniform
        t.algorithm = .sgd
        #expect(throws: FedRecError.self) {
            try ShardTrainer.run(modelPath: model, shardPath: data.shards[0], stateIn: nil, stateOut: nil, output: data.directory.path + "/u", options: t)
        }
    }
}
