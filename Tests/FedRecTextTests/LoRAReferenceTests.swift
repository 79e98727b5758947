import FedRecCore
import FedRecFormats
import FedRecSupport
import Testing

@testable import FedRecText

/// The LoRA backward pass against PyTorch: `Fixtures/lora-tiny-bert.safetensors`, written
/// by `Fixtures/make_lora_fixture.py` (Hugging Face `BertModel` + PEFT LoRA on every dense
/// layer, a padded batch with an attention mask, masked mean pooling, L2 normalisation,
/// the in-batch sampled softmax; autograd in float64).
@Suite struct LoRAReferenceTests {
    static let fixture: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast()
        return parts.joined(separator: "/") + "/Fixtures/lora-tiny-bert.safetensors"
    }()

    /// As for finite differences (`LoRAGradientTests.tolerance`): PyTorch's float64 values
    /// are exact to our Float32's rounding, a few 1e-6 of the gradient's scale.
    static let tolerance = 1e-3

    @Test("loss and every adapter gradient equal PyTorch + PEFT's on the same tiny BERT")
    func againstPyTorch() throws {
        let file = try SafeTensorsFile(path: Self.fixture)
        let config = try BertConfig(json: try JSONValue.parse(try #require(file.metadata["config"])), file: Self.fixture)
        let base = try BertEncoder(config: config, weights: file)
        func value<T: LosslessStringConvertible>(_ key: String) throws -> T {
            let text = try #require(file.metadata[key])
            return try #require(T(text), "metadata \(key)")
        }
        let rank: Int = try value("rank")
        let alpha: Float = try value("alpha")
        let temperature: Float = try value("temperature")
        let queries: Int = try value("queries")
        var adapter = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: alpha, targets: LoRATarget.allCases, frozenA: false), for: base)
        for p in adapter.pairs.indices {
            adapter.pairs[p].a = try file.floats(adapter.pairs[p].tensorName("A"))
            adapter.pairs[p].b = try file.floats(adapter.pairs[p].tensorName("B"))
        }
        // The padded batch, unpadded: the packed encoder needs no mask.
        let ids = try file.int32s("input_ids")
        let lengths = try file.int32s("lengths").map(Int.init)
        let width = try file.info("input_ids").shape[1]
        let sequences = lengths.enumerated().map { s, n in Array(ids[(s * width)..<(s * width + n)]) }

        let trainer = LoRATrainer(encoder: try TrainableEncoder(base: base, adapter: adapter, pooling: Pooling()), temperature: temperature)
        let loss = try trainer.lossAndGradients(
            queries: Array(sequences[..<queries]), positives: Array(sequences[queries..<(2 * queries)]),
            negatives: Array(sequences[(2 * queries)...]))
        let expected = try file.doubles("loss")[0]
        #expect(abs(Double(loss) - expected) < 1e-5 * max(1, abs(expected)), "loss \(loss), PyTorch \(expected)")

        var worst = 0.0
        for (p, pair) in adapter.pairs.enumerated() {
            for factor in ["A", "B"] {
                let reference = try file.doubles("grad." + pair.tensorName(factor))
                let ours = factor == "A" ? trainer.gradients.a[p] : trainer.gradients.b[p]
                #expect(ours.count == reference.count)
                let scale = reference.map(abs).max() ?? 0
                let error = zip(ours, reference).map { abs(Double($0) - $1) }.max() ?? 0
                #expect(scale > 1e-6 && error / scale < Self.tolerance, "\(pair.tensorName(factor)): error \(error), scale \(scale)")
                worst = max(worst, error / max(scale, 1e-12))
            }
        }
        print("LoRA against PyTorch: loss \(loss) (PyTorch \(expected)), worst gradient error \(worst) of the tensor's largest entry")
    }
}
