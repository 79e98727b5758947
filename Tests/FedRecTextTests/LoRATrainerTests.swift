import FedRecCore
import FedRecFormats
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
}
