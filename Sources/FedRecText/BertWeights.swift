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

extension Linear {
    /// `weight + scale·B·A` for a pair of `rows` output rows starting at `rowOffset` (the
    /// query, key or value block of the stacked product); entries where B·A is exactly zero
    /// keep their bits.
    func adding(_ pair: LoRAPair, rank: Int, scale: Float, rowOffset: Int = 0) -> Linear {
        var weight = self.weight
        for o in 0..<pair.outputs {
            for i in 0..<pair.inputs {
                var delta: Float = 0
                for k in 0..<rank { delta += pair.b[o * rank + k] * pair.a[k * pair.inputs + i] }
                if delta != 0 { weight[(rowOffset + o) * inputs + i] += scale * delta }
            }
        }
        return Linear(weight: weight, bias: bias, outputs: outputs, inputs: inputs)
    }
}

extension BertWeights {
    init(
        wordEmbeddings: [Float], positionEmbeddings: [Float], tokenTypeEmbeddings: [Float], embeddingNorm: Norm,
        layers: [BertLayerWeights]
    ) {
        self.wordEmbeddings = wordEmbeddings
        self.positionEmbeddings = positionEmbeddings
        self.tokenTypeEmbeddings = tokenTypeEmbeddings
        self.embeddingNorm = embeddingNorm
        self.layers = layers
    }

    /// These weights with `adapter` merged in (the caller has checked the shapes).
    func merging(_ adapter: LoRAAdapter) -> BertWeights {
        let r = adapter.config.rank
        let s = adapter.config.scaling
        let layers = self.layers.enumerated().map { l, layer in
            var qkv = layer.qkv
            for (block, target) in [LoRATarget.query, .key, .value].enumerated() {
                if let pair = adapter.pair(layer: l, target) {
                    qkv = qkv.adding(pair, rank: r, scale: s, rowOffset: block * pair.outputs)
                }
            }
            func merged(_ linear: Linear, _ target: LoRATarget) -> Linear {
                adapter.pair(layer: l, target).map { linear.adding($0, rank: r, scale: s) } ?? linear
            }
            return BertLayerWeights(
                qkv: qkv, attentionOutput: merged(layer.attentionOutput, .attentionOutput), attentionNorm: layer.attentionNorm,
                intermediate: merged(layer.intermediate, .intermediate), output: merged(layer.output, .output),
                outputNorm: layer.outputNorm)
        }
        return BertWeights(
            wordEmbeddings: wordEmbeddings, positionEmbeddings: positionEmbeddings, tokenTypeEmbeddings: tokenTypeEmbeddings,
            embeddingNorm: embeddingNorm, layers: layers)
    }
}
