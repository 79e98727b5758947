import FedRecCore
import FedRecSupport
import FedRecFormats

/// A dense layer's parameters: `weight` is outputs × inputs, row-major (PyTorch's layout).
struct Linear: Sendable {
    let weight: [Float]
    let bias: [Float]
    let outputs: Int
    let inputs: Int
}

/// LayerNorm scale and shift.
struct Norm: Sendable {
    let gamma: [Float]
    let beta: [Float]
}

struct BertLayerWeights: Sendable {
    /// Query, key and value stacked into one 3h × h product.
    let qkv: Linear
    let attentionOutput: Linear
    let attentionNorm: Norm
    let intermediate: Linear
    let output: Linear
    let outputNorm: Norm
}

/// Every tensor of a `BertModel` (the pooler is not used), converted to float32.
struct BertWeights: Sendable {
    let wordEmbeddings: [Float]
    let positionEmbeddings: [Float]
    let tokenTypeEmbeddings: [Float]
    let embeddingNorm: Norm
    let layers: [BertLayerWeights]

    init(config c: BertConfig, file: SafeTensorsFile) throws {
        // `BertModel` checkpoints name tensors `embeddings.…`; checkpoints of task models
        // (`BertForMaskedLM` …) prefix them with `bert.`.
        let prefix = file.tensors["bert.embeddings.word_embeddings.weight"] != nil ? "bert." : ""
        func tensor(_ name: String, _ shape: [Int]) throws -> [Float] {
            let info = try file.info(prefix + name)
            guard info.shape == shape else {
                throw FedRecError(.shape, file: file.path, "tensor \(prefix + name) has shape \(info.shape), config.json implies \(shape)")
            }
            return try file.floats(prefix + name)
        }
        func norm(_ name: String, _ h: Int) throws -> Norm {
            // Checkpoints converted from TensorFlow call them gamma and beta.
            if file.tensors[prefix + name + ".gamma"] != nil && file.tensors[prefix + name + ".weight"] == nil {
                return Norm(gamma: try tensor(name + ".gamma", [h]), beta: try tensor(name + ".beta", [h]))
            }
            return Norm(gamma: try tensor(name + ".weight", [h]), beta: try tensor(name + ".bias", [h]))
        }
        func linear(_ name: String, outputs: Int, inputs: Int) throws -> Linear {
            Linear(
                weight: try tensor(name + ".weight", [outputs, inputs]), bias: try tensor(name + ".bias", [outputs]),
                outputs: outputs, inputs: inputs)
        }
        let h = c.hiddenSize
        wordEmbeddings = try tensor("embeddings.word_embeddings.weight", [c.vocabSize, h])
        positionEmbeddings = try tensor("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, h])
        tokenTypeEmbeddings = try tensor("embeddings.token_type_embeddings.weight", [c.typeVocabSize, h])
        embeddingNorm = try norm("embeddings.LayerNorm", h)
        layers = try (0..<c.numHiddenLayers).map { i in
            let p = "encoder.layer.\(i)."
            let q = try linear(p + "attention.self.query", outputs: h, inputs: h)
            let k = try linear(p + "attention.self.key", outputs: h, inputs: h)
            let v = try linear(p + "attention.self.value", outputs: h, inputs: h)
            return BertLayerWeights(
                qkv: Linear(weight: q.weight + k.weight + v.weight, bias: q.bias + k.bias + v.bias, outputs: 3 * h, inputs: h),
                attentionOutput: try linear(p + "attention.output.dense", outputs: h, inputs: h),
                attentionNorm: try norm(p + "attention.output.LayerNorm", h),
                intermediate: try linear(p + "intermediate.dense", outputs: c.intermediateSize, inputs: h),
                output: try linear(p + "output.dense", outputs: h, inputs: c.intermediateSize),
                outputNorm: try norm(p + "output.LayerNorm", h))
        }
    }
}
