import FedRecCore
import Foundation
import Testing
import FedRecSupport
import FedRecFormats

@testable import FedRecText

@Suite struct BertEncoderTests {
    @Test("fastExpNonPositive agrees with libm's exp to 3 float ulps over [-87, 0], and flushes below")
    func fastExp() {
        var worst = 0.0
        var x: Float = -87
        while x <= 0 {
            let exact = exp(Double(x))
            worst = max(worst, abs(Double(fastExpNonPositive(x)) - exact) / exact)
            x += 0.001
        }
        #expect(worst <= 3 * Double(Float.ulpOfOne), "largest relative error \(worst)")
        #expect(fastExpNonPositive(0) == 1 && fastExpNonPositive(-200) < 1e-37 && fastExpNonPositive(-200) >= 0)
    }

    @Test("fastErf agrees with libm's erf to 5e-7 over [-6, 6]")
    func erfAccuracy() {
        var worst: Double = 0
        for i in -60000...60000 {
            let x = Float(i) / 10000
            worst = max(worst, abs(Double(fastErf(x)) - erf(Double(x))))
        }
        #expect(worst < 5e-7, "largest error \(worst)")
    }
}

/// A tiny random BERT, written with a `bert.` prefix as task checkpoints name tensors.
@Suite struct TinyBertTests {
    static let config = BertConfig(
        vocabSize: 12, hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 16,
        maxPositionEmbeddings: 6, typeVocabSize: 2, layerNormEps: 1e-12)

    static func writeWeights(to path: String, wrongShape: Bool = false, seed: UInt64 = 42) throws {
        var state: UInt64 = seed
        func random(_ count: Int) -> [Float] {
            (0..<count).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int64(bitPattern: state >> 11) % 2000 - 1000) / 2000
            }
        }
        let c = config, h = c.hiddenSize, i = c.intermediateSize
        var w = SafeTensorsWriter(checksummed: false)
        func add(_ name: String, _ shape: [Int]) { w.add("bert." + name, shape: shape, floats: random(shape.reduce(1, *))) }
        add("embeddings.word_embeddings.weight", [c.vocabSize, wrongShape ? h + 1 : h])
        add("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, h])
        add("embeddings.token_type_embeddings.weight", [c.typeVocabSize, h])
        add("embeddings.LayerNorm.weight", [h])
        add("embeddings.LayerNorm.bias", [h])
        for l in 0..<c.numHiddenLayers {
            let p = "encoder.layer.\(l)."
            for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                add(p + name + ".weight", [h, h])
                add(p + name + ".bias", [h])
            }
            add(p + "intermediate.dense.weight", [i, h])
            add(p + "intermediate.dense.bias", [i])
            add(p + "output.dense.weight", [h, i])
            add(p + "output.dense.bias", [h])
            for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
                add(p + norm + ".weight", [h])
                add(p + norm + ".bias", [h])
            }
        }
        _ = try w.write(to: path, durable: false)
    }

    func temporaryPath(_ name: String) -> String {
        "/tmp/fedrec-text-test-\(getpid())-\(name).safetensors"
    }

    @Test("a batch gives each sequence the vectors it gets alone")
    func batchInvariance() throws {
        let path = temporaryPath("tiny")
        defer { unlink(path) }
        try Self.writeWeights(to: path)
        let encoder = try BertEncoder(config: Self.config, weights: try SafeTensorsFile(path: path))
        let sequences: [[Int32]] = [[2, 5, 3], [2, 7, 8, 9, 10, 3], [2, 3]]
        for pooling in [Pooling(), Pooling(clsToken: true, maxTokens: true, meanTokens: true, meanSqrtLengthTokens: true)] {
            let width = pooling.dimension(hiddenSize: 8)
            let batch = try encoder.embed(sequences, pooling: pooling)
            #expect(batch.count == 3 * width)
            for (s, sequence) in sequences.enumerated() {
                let alone = try encoder.embed([sequence], pooling: pooling)
                for j in 0..<width { #expect(abs(alone[j] - batch[s * width + j]) < 1e-5) }
            }
        }
        let unit = try encoder.embed([[2, 5, 3]], pooling: Pooling())
        #expect(abs(unit.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
        #expect(throws: FedRecError.self) { try encoder.embed([[2, 99, 3]], pooling: Pooling()) }
        #expect(throws: FedRecError.self) { try encoder.embed([[Int32](repeating: 1, count: 7)], pooling: Pooling()) }
    }

    @Test("a tensor of the wrong shape is refused, naming the file and tensor")
    func wrongShape() throws {
        let path = temporaryPath("wrong")
        defer { unlink(path) }
        try Self.writeWeights(to: path, wrongShape: true)
        do {
            _ = try BertEncoder(config: Self.config, weights: try SafeTensorsFile(path: path))
            Issue.record("expected an error")
        } catch let error as FedRecError {
            #expect(error.failure == .shape)
            #expect(error.file == path)
            #expect(error.description.contains("bert.embeddings.word_embeddings.weight"))
        }
    }

    @Test("config.json with an unsupported activation is refused, naming the file")
    func badConfig() throws {
        let json = try JSONValue.parse(
            #"{"vocab_size": 12, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "relu"}"#)
        #expect(throws: FedRecError.self) { try BertConfig(json: json, file: "m/config.json") }
        do {
            _ = try BertConfig(json: json, file: "m/config.json")
        } catch let error as FedRecError {
            #expect(error.file == "m/config.json")
        }
        let base = try JSONValue.parse(
            #"{"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "model_type": "bert"}"#)
        let config = try BertConfig(json: base, file: "bert-base/config.json")
        #expect(config.headSize == 64 && config.numHiddenLayers == 12)
    }
}
