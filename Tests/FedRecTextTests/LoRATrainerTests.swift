import FedRecCore
import FedRecFormats
import FedRecSupport
import Foundation
import Testing

@testable import FedRecText

@Suite struct LoRATrainerTests {
    @Test("AdamW's first two steps equal PyTorch's AdamW update computed by hand")
    func adamW() {
        // Values from the update rule evaluated in Python (float64): lr 0.1, λ 0.01,
        // β = (0.9, 0.999), ε = 1e-8, gradients (0.5, −0.1) then (0.2, 0.3).
        var optimizer = AdamW(learningRate: 0.1, weightDecay: 0.01)
        var theta: [Float] = [1, -2]
        optimizer.step(slot: 0, &theta, gradient: [0.5, -0.1])
        #expect(abs(theta[0] - 0.899000002) < 1e-6 && abs(theta[1] + 1.89800001) < 1e-6)
        optimizer.step(slot: 0, &theta, gradient: [0.2, 0.3])
        #expect(abs(theta[0] - 0.80824348) < 1e-6 && abs(theta[1] + 1.94552099) < 1e-6)
    }

    @Test("the sampled softmax loss is log(n + m) when every similarity is equal")
    func uniformLoss() {
        let (loss, gradient) = SampledSoftmaxLoss.evaluate(
            embeddings: [Float](repeating: 0, count: 5 * 4), queries: 2, dimension: 4, temperature: 0.1)
        #expect(abs(Double(loss) - log(3.0)) < 1e-6)
        #expect(gradient.allSatisfy { $0 == 0 })
    }

    @Test("AdamW steps on B (FFA-LoRA) lower the loss of a toy retrieval task, and the trained adapter serves")
    func trainingReducesLoss() throws {
        let tiny = try TinyLoRA()
        let adapter = try tiny.adapter(frozenA: true, randomB: false, rank: 4)
        let encoder = try TrainableEncoder(base: tiny.base, adapter: adapter, pooling: Pooling())
        let trainer = LoRATrainer(encoder: encoder, optimizer: AdamW(learningRate: 0.02, weightDecay: 0), temperature: 0.1)
        // Four queries, each with its own item: the in-batch softmax must tell them apart.
        let queries: [[Int32]] = [[2, 4, 3], [2, 5, 3], [2, 6, 3], [2, 7, 3]]
        let items: [[Int32]] = [[2, 8, 9, 3], [2, 10, 11, 3], [2, 9, 8, 3], [2, 11, 10, 3]]
        var losses = [Float]()
        for _ in 0..<30 { losses.append(try trainer.step(queries: queries, positives: items)) }
        let final = try trainer.lossAndGradients(queries: queries, positives: items)
        print("LoRA toy training: loss \(losses[0]) → \(final) in 30 AdamW steps")
        #expect(final < 0.5 * losses[0], "losses \(losses)")
        // A stayed as the seed made it; B moved.
        #expect(encoder.adapter.pairs.map(\.a) == adapter.pairs.map(\.a))
        #expect(encoder.adapter.pairs.contains { $0.b.contains { $0 != 0 } })
        // Written, read back and merged, it gives the training pass's embeddings.
        let path = tiny.directory.path + "/trained.safetensors"
        try encoder.adapter.write(to: path)
        let served = try tiny.base.adapted(by: try LoRAAdapter(path: path), file: path).embed(queries + items, pooling: Pooling())
        let trained = try encoder.forward(queries + items)
        for (x, y) in zip(served, trained) { #expect(abs(x - y) < 1e-5) }
    }

    @Test("BCE on labelled pairs: log 2 at zero similarity, a hand-computed case, and finite differences")
    func pairwiseBCE() {
        let zero = PairwiseBCELoss.evaluate(embeddings: [Float](repeating: 0, count: 5 * 4), queries: 2, dimension: 4, temperature: 0.1)
        #expect(abs(Double(zero.loss) - log(2.0)) < 1e-6 && zero.gradient.allSatisfy { $0 == 0 })

        // One query q = 1, its item 0.5, one negative −0.2, τ = 1: s = 0.5 and −0.2.
        func softplus(_ x: Double) -> Double { log(1 + exp(x)) }
        func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
        let one = PairwiseBCELoss.evaluate(embeddings: [1, 0.5, -0.2], queries: 1, dimension: 1, temperature: 1)
        #expect(abs(Double(one.loss) - (softplus(-0.5) + softplus(-0.2)) / 2) < 1e-6)
        let expected = [(-sigmoid(-0.5) * 0.5 + sigmoid(-0.2) * -0.2) / 2, -sigmoid(-0.5) / 2, sigmoid(-0.2) / 2]
        for (g, e) in zip(one.gradient, expected) { #expect(abs(Double(g) - e) < 1e-6) }

        // Two queries, three negatives, d = 3: the gradient against central differences.
        var generator = SeededGenerator(seed: 11)
        let x = (0..<(7 * 3)).map { _ in Float.random(in: -1..<1, using: &generator) * 0.5 }
        let (_, gradient) = PairwiseBCELoss.evaluate(embeddings: x, queries: 2, dimension: 3, temperature: 0.5)
        for k in x.indices {
            var up = x, down = x
            up[k] += 1e-2
            down[k] -= 1e-2
            let numeric = (Double(PairwiseBCELoss.evaluate(embeddings: up, queries: 2, dimension: 3, temperature: 0.5).loss)
                - Double(PairwiseBCELoss.evaluate(embeddings: down, queries: 2, dimension: 3, temperature: 0.5).loss)) / 2e-2
            #expect(abs(numeric - Double(gradient[k])) < 1e-4, "coordinate \(k): \(numeric) against \(gradient[k])")
        }
    }

    @Test("BCE's loss of a batch is the mean of its queries' losses alone (the same negatives); the softmax's is not")
    func bceIsBatchIndependent() {
        var generator = SeededGenerator(seed: 5)
        let d = 4
        func vector() -> [Float] { (0..<d).map { _ in Float.random(in: -1..<1, using: &generator) } }
        let q1 = vector(), q2 = vector(), p1 = vector(), p2 = vector(), negatives = vector() + vector()
        for (name, evaluate) in [("bce", PairwiseBCELoss.evaluate), ("softmax", SampledSoftmaxLoss.evaluate)] {
            let both = evaluate(q1 + q2 + p1 + p2 + negatives, 2, d, 0.2).loss
            let alone = (evaluate(q1 + p1 + negatives, 1, d, 0.2).loss + evaluate(q2 + p2 + negatives, 1, d, 0.2).loss) / 2
            if name == "bce" {
                #expect(abs(both - alone) < 1e-6)
            } else {
                #expect(abs(both - alone) > 1e-3, "the softmax's candidates include the other query's item")
            }
        }
    }

    @Test("AdamW steps with the BCE loss lower it on the toy retrieval task; without negatives it is refused")
    func bceTrainingReducesLoss() throws {
        let tiny = try TinyLoRA()
        let adapter = try tiny.adapter(frozenA: true, randomB: false, rank: 4)
        let encoder = try TrainableEncoder(base: tiny.base, adapter: adapter, pooling: Pooling())
        let trainer = LoRATrainer(encoder: encoder, optimizer: AdamW(learningRate: 0.02, weightDecay: 0), temperature: 0.1, loss: .bce)
        let queries: [[Int32]] = [[2, 4, 3], [2, 5, 3]]
        let items: [[Int32]] = [[2, 8, 9, 3], [2, 10, 11, 3]]
        let negatives: [[Int32]] = [[2, 9, 8, 3], [2, 11, 10, 3]]
        let first = try trainer.lossAndGradients(queries: queries, positives: items, negatives: negatives)
        for _ in 0..<30 { try trainer.step(queries: queries, positives: items, negatives: negatives) }
        let final = try trainer.lossAndGradients(queries: queries, positives: items, negatives: negatives)
        #expect(final < 0.5 * first, "\(first) → \(final)")
        #expect(throws: FedRecError.self) { try trainer.lossAndGradients(queries: queries, positives: items) }
    }
}
