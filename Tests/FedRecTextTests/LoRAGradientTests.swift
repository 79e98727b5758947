import FedRecCore
import FedRecFormats
import FedRecSupport
import Testing

@testable import FedRecText

/// The tiny random BERT of `TinyBertTests` with a LoRA adapter on every target.
struct TinyLoRA {
    let directory: ScratchDirectory
    let path: String
    let base: BertEncoder

    init(seed: UInt64 = 42) throws {
        directory = try ScratchDirectory()
        path = directory.path + "/tiny.safetensors"
        try TinyBertTests.writeWeights(to: path, seed: seed)
        base = try BertEncoder(config: TinyBertTests.config, weights: try SafeTensorsFile(path: path))
    }

    /// An adapter of rank 2 (α = 4, so α/r = 2), with B random when `randomB`.
    func adapter(targets: [LoRATarget] = LoRATarget.allCases, frozenA: Bool = false, randomB: Bool = true, rank: Int = 2) throws -> LoRAAdapter {
        var adapter = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: 2 * Float(rank), targets: targets, seed: 7, frozenA: frozenA), for: base)
        if randomB {
            var generator = SeededGenerator(seed: 9)
            for p in adapter.pairs.indices {
                adapter.pairs[p].b = adapter.pairs[p].b.map { _ in generator.nextUnitFloat() - 0.5 }
            }
        }
        return adapter
    }

    /// Three queries, their positives, one extra negative; lengths 2 to 6, so a batch packs
    /// sequences of different lengths (the attention mask of a padded batch).
    static let queries: [[Int32]] = [[2, 5, 3], [2, 7, 8, 9, 3], [2, 3]]
    static let positives: [[Int32]] = [[2, 6, 10, 3], [2, 9, 3], [2, 11, 5, 6, 7, 3]]
    static let negatives: [[Int32]] = [[2, 1, 4, 3]]
}

@Suite struct LoRAGradientTests {
    static let poolings = [
        Pooling(),  // mean, normalised (all-MiniLM-L6-v2's)
        Pooling(clsToken: true, meanTokens: false, normalize: false),
        Pooling(clsToken: true, maxTokens: true, meanTokens: true, meanSqrtLengthTokens: true, normalize: true),
    ]

    /// Central differences of the Double reference (step 1e-5: truncation error ~h²·L‴ ≈
    /// 1e-10, rounding ~1e-16/h ≈ 1e-11) are exact to ~1e-9 here, so what is compared is
    /// our Float32 backward pass. Its error: unit roundoff 6e-8 through two layers of
    /// products, LayerNorms (×1/σ) and softmaxes, a few 1e-6 relative to the gradient's
    /// scale. The bound, 1e-3 of each tensor's largest entry, leaves a margin of 100 over
    /// that while a wrong term (a missing residual, a transposed product, a lost α/r) is
    /// off by 1e-1 or more.
    static let tolerance = 1e-3

    @Test("∂loss/∂A and ∂loss/∂B of every target agree with finite differences of a Double reference", arguments: poolings)
    func finiteDifferences(pooling: Pooling) throws {
        let tiny = try TinyLoRA()
        let adapter = try tiny.adapter()
        let trainer = LoRATrainer(encoder: try TrainableEncoder(base: tiny.base, adapter: adapter, pooling: pooling), temperature: 0.5)
        let loss = try trainer.lossAndGradients(queries: TinyLoRA.queries, positives: TinyLoRA.positives, negatives: TinyLoRA.negatives)

        let reference = try ReferenceBert(config: TinyBertTests.config, file: try SafeTensorsFile(path: tiny.path))
        func referenceLoss(_ factors: ReferenceBert.Factors) -> Double {
            reference.loss(
                queries: TinyLoRA.queries, candidates: TinyLoRA.positives + TinyLoRA.negatives, adapter: adapter, factors: factors,
                pooling: pooling, temperature: 0.5)
        }
        let factors = ReferenceBert.Factors(adapter)
        let exact = referenceLoss(factors)
        #expect(abs(Double(loss) - exact) <= 1e-5 * max(1, abs(exact)), "loss \(loss), reference \(exact)")

        let h = 1e-5
        var worst = [String: Double]()
        for (p, pair) in adapter.pairs.enumerated() {
            for factor in ["A", "B"] {
                let count = factor == "A" ? pair.a.count : pair.b.count
                var numeric = [Double](repeating: 0, count: count)
                for e in 0..<count {
                    var plus = factors, minus = factors
                    if factor == "A" {
                        plus.a[p][e] += h
                        minus.a[p][e] -= h
                    } else {
                        plus.b[p][e] += h
                        minus.b[p][e] -= h
                    }
                    numeric[e] = (referenceLoss(plus) - referenceLoss(minus)) / (2 * h)
                }
                let analytic = factor == "A" ? trainer.gradients.a[p] : trainer.gradients.b[p]
                let scale = numeric.map(abs).max() ?? 0
                let error = zip(analytic, numeric).map { abs(Double($0) - $1) }.max() ?? 0
                let relative = error / max(scale, 1e-8)
                #expect(scale > 1e-6, "\(pair.tensorName(factor)): the gradient should not vanish here")
                #expect(relative < Self.tolerance, "\(pair.tensorName(factor)): largest error \(error), largest entry \(scale)")
                let key = "\(pair.target.rawValue).\(factor)"
                worst[key] = max(worst[key] ?? 0, relative)
            }
        }
        print("LoRA gradient check \(pooling): worst relative error", worst.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" })
    }

    @Test("the training forward pass, the merged encoder and the Double reference give the same embeddings")
    func forwardAgreement() throws {
        let tiny = try TinyLoRA()
        let adapter = try tiny.adapter()
        let sequences = TinyLoRA.queries + TinyLoRA.positives
        let reference = try ReferenceBert(config: TinyBertTests.config, file: try SafeTensorsFile(path: tiny.path))
        for pooling in Self.poolings {
            let trained = try TrainableEncoder(base: tiny.base, adapter: adapter, pooling: pooling).forward(sequences)
            let merged = try tiny.base.adapted(by: adapter, file: "adapter").embed(sequences, pooling: pooling)
            let width = pooling.dimension(hiddenSize: 8)
            for (s, sequence) in sequences.enumerated() {
                let expected = reference.embed(sequence, adapter: adapter, factors: ReferenceBert.Factors(adapter), pooling: pooling)
                for j in 0..<width {
                    #expect(abs(Double(trained[s * width + j]) - expected[j]) < 1e-5)
                    #expect(abs(Double(merged[s * width + j]) - expected[j]) < 1e-5)
                }
            }
        }
    }

    @Test("FFA-LoRA: with A frozen there is no A gradient and B's is unchanged")
    func frozenA() throws {
        let tiny = try TinyLoRA()
        var gradients = [LoRAGradients]()
        for frozen in [false, true] {
            let trainer = LoRATrainer(
                encoder: try TrainableEncoder(base: tiny.base, adapter: try tiny.adapter(frozenA: frozen), pooling: Pooling()), temperature: 0.5)
            _ = try trainer.lossAndGradients(queries: TinyLoRA.queries, positives: TinyLoRA.positives)
            gradients.append(trainer.gradients)
        }
        #expect(gradients[1].a.allSatisfy { $0.isEmpty })
        for (x, y) in zip(gradients[0].b, gradients[1].b) {
            for (u, v) in zip(x, y) { #expect(abs(u - v) <= 1e-6 * max(1, abs(u))) }
        }
    }
}
