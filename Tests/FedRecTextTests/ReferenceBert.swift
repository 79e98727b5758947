import FedRecCore
import FedRecFormats
import Foundation

@testable import FedRecText

/// A BERT encoder with LoRA written the plainest way, in Double, one sequence at a time,
/// no BLAS and no packing: the independent reference that finite differences run on.
struct ReferenceBert {
    struct Dense {
        var weight: [Double]  // outputs × inputs
        var bias: [Double]
        var outputs: Int
        var inputs: Int
    }

    struct Layer {
        var query, key, value, attentionOutput, intermediate, output: Dense
        var norm1Gamma, norm1Beta, norm2Gamma, norm2Beta: [Double]
    }

    let config: BertConfig
    var words, positions, types, embeddingGamma, embeddingBeta: [Double]
    var layers: [Layer]

    init(config c: BertConfig, file: SafeTensorsFile) throws {
        config = c
        let prefix = file.tensors["bert.embeddings.word_embeddings.weight"] != nil ? "bert." : ""
        func t(_ name: String) throws -> [Double] { try file.floats(prefix + name).map(Double.init) }
        func dense(_ name: String, _ outputs: Int, _ inputs: Int) throws -> Dense {
            Dense(weight: try t(name + ".weight"), bias: try t(name + ".bias"), outputs: outputs, inputs: inputs)
        }
        words = try t("embeddings.word_embeddings.weight")
        positions = try t("embeddings.position_embeddings.weight")
        types = try t("embeddings.token_type_embeddings.weight")
        embeddingGamma = try t("embeddings.LayerNorm.weight")
        embeddingBeta = try t("embeddings.LayerNorm.bias")
        let h = c.hiddenSize, i = c.intermediateSize
        layers = try (0..<c.numHiddenLayers).map { l in
            let p = "encoder.layer.\(l)."
            return Layer(
                query: try dense(p + "attention.self.query", h, h), key: try dense(p + "attention.self.key", h, h),
                value: try dense(p + "attention.self.value", h, h), attentionOutput: try dense(p + "attention.output.dense", h, h),
                intermediate: try dense(p + "intermediate.dense", i, h), output: try dense(p + "output.dense", h, i),
                norm1Gamma: try t(p + "attention.output.LayerNorm.weight"), norm1Beta: try t(p + "attention.output.LayerNorm.bias"),
                norm2Gamma: try t(p + "output.LayerNorm.weight"), norm2Beta: try t(p + "output.LayerNorm.bias"))
        }
    }

    /// Adapter factors in Double: `a[p]`, `b[p]` as in `LoRAAdapter.pairs`.
    struct Factors {
        var a: [[Double]]
        var b: [[Double]]
        init(_ adapter: LoRAAdapter) {
            a = adapter.pairs.map { $0.a.map(Double.init) }
            b = adapter.pairs.map { $0.b.map(Double.init) }
        }
    }

    /// x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ for every row of x (n × inputs).
    func apply(_ d: Dense, _ x: [Double], n: Int, lora: (a: [Double], b: [Double])?, rank: Int, scale: Double) -> [Double] {
        var y = [Double](repeating: 0, count: n * d.outputs)
        for r in 0..<n {
            var t = [Double](repeating: 0, count: rank)
            if let lora {
                for k in 0..<rank {
                    for i in 0..<d.inputs { t[k] += x[r * d.inputs + i] * lora.a[k * d.inputs + i] }
                }
            }
            for o in 0..<d.outputs {
                var sum = d.bias[o]
                for i in 0..<d.inputs { sum += x[r * d.inputs + i] * d.weight[o * d.inputs + i] }
                if let lora {
                    for k in 0..<rank { sum += scale * lora.b[o * rank + k] * t[k] }
                }
                y[r * d.outputs + o] = sum
            }
        }
        return y
    }

    func layerNorm(_ x: [Double], n: Int, gamma: [Double], beta: [Double]) -> [Double] {
        let h = config.hiddenSize
        var y = x
        for r in 0..<n {
            let row = x[(r * h)..<((r + 1) * h)]
            let mean = row.reduce(0, +) / Double(h)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(h)
            let inverse = 1 / (variance + Double(config.layerNormEps)).squareRoot()
            for j in 0..<h { y[r * h + j] = (x[r * h + j] - mean) * inverse * gamma[j] + beta[j] }
        }
        return y
    }

    /// The last hidden state of one sequence, n × h.
    func hidden(_ ids: [Int32], adapter: LoRAAdapter, factors: Factors) -> [Double] {
        let c = config
        let h = c.hiddenSize, n = ids.count, d = c.headSize
        let rank = adapter.config.rank
        let scale = Double(adapter.config.alpha) / Double(rank)
        var x = [Double](repeating: 0, count: n * h)
        for (p, id) in ids.enumerated() {
            for j in 0..<h { x[p * h + j] = words[Int(id) * h + j] + positions[p * h + j] + types[j] }
        }
        x = layerNorm(x, n: n, gamma: embeddingGamma, beta: embeddingBeta)
        for (l, layer) in layers.enumerated() {
            func lora(_ target: LoRATarget) -> (a: [Double], b: [Double])? {
                adapter.index(layer: l, target).map { (factors.a[$0], factors.b[$0]) }
            }
            func dense(_ dn: Dense, _ input: [Double], _ target: LoRATarget) -> [Double] {
                apply(dn, input, n: n, lora: lora(target), rank: rank, scale: scale)
            }
            let q = dense(layer.query, x, .query), k = dense(layer.key, x, .key), v = dense(layer.value, x, .value)
            var context = [Double](repeating: 0, count: n * h)
            for head in 0..<c.numAttentionHeads {
                for i in 0..<n {
                    var scores = (0..<n).map { j in
                        (0..<d).reduce(0.0) { $0 + q[i * h + head * d + $1] * k[j * h + head * d + $1] } / Double(d).squareRoot()
                    }
                    let peak = scores.max() ?? 0
                    scores = scores.map { exp($0 - peak) }
                    let total = scores.reduce(0, +)
                    for j in 0..<n {
                        for e in 0..<d { context[i * h + head * d + e] += scores[j] / total * v[j * h + head * d + e] }
                    }
                }
            }
            let attended = dense(layer.attentionOutput, context, .attentionOutput)
            x = layerNorm(zip(attended, x).map(+), n: n, gamma: layer.norm1Gamma, beta: layer.norm1Beta)
            let u = dense(layer.intermediate, x, .intermediate).map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }
            let out = dense(layer.output, u, .output)
            x = layerNorm(zip(out, x).map(+), n: n, gamma: layer.norm2Gamma, beta: layer.norm2Beta)
        }
        return x
    }

    /// Pooled (and optionally normalised) sentence vector, as sentence-transformers pools.
    func embed(_ ids: [Int32], adapter: LoRAAdapter, factors: Factors, pooling: Pooling) -> [Double] {
        let h = config.hiddenSize, n = ids.count
        let states = hidden(ids, adapter: adapter, factors: factors)
        var out = [Double]()
        if pooling.clsToken { out += states[0..<h] }
        if pooling.maxTokens { out += (0..<h).map { j in (0..<n).map { states[$0 * h + j] }.max() ?? 0 } }
        let sums = (0..<h).map { j in (0..<n).reduce(0.0) { $0 + states[$1 * h + j] } }
        if pooling.meanTokens { out += sums.map { $0 / Double(n) } }
        if pooling.meanSqrtLengthTokens { out += sums.map { $0 / Double(n).squareRoot() } }
        if pooling.normalize {
            let norm = out.reduce(0) { $0 + $1 * $1 }.squareRoot()
            out = out.map { $0 / max(norm, 1e-12) }
        }
        return out
    }

    /// The sampled softmax loss of n queries against their positives and extra negatives:
    /// mean over queries of −log softmax(q·pⱼ/τ) at the query's own positive.
    func loss(
        queries: [[Int32]], candidates: [[Int32]], adapter: LoRAAdapter, factors: Factors, pooling: Pooling, temperature: Double
    ) -> Double {
        let q = queries.map { embed($0, adapter: adapter, factors: factors, pooling: pooling) }
        let p = candidates.map { embed($0, adapter: adapter, factors: factors, pooling: pooling) }
        var total = 0.0
        for i in q.indices {
            let logits = p.map { zip(q[i], $0).reduce(0) { $0 + $1.0 * $1.1 } / temperature }
            let peak = logits.max() ?? 0
            total += peak + log(logits.reduce(0) { $0 + exp($1 - peak) }) - logits[i]
        }
        return total / Double(q.count)
    }
}
