internal import COpenBLAS
import FedRecCore
import FedRecSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Gradients of a loss with respect to an adapter's factors, in the order of
/// `LoRAAdapter.pairs`: `b[p]` is outputs × r like B, `a[p]` is r × inputs like A (empty
/// when A is frozen). Backward passes add into them; `zero()` starts a new batch.
public struct LoRAGradients: Sendable, Equatable {
    public var a: [[Float]]
    public var b: [[Float]]

    public init(for adapter: LoRAAdapter) {
        a = adapter.pairs.map { adapter.config.frozenA ? [] : [Float](repeating: 0, count: $0.a.count) }
        b = adapter.pairs.map { [Float](repeating: 0, count: $0.b.count) }
    }

    /// Sets every gradient to zero, keeping the storage.
    public mutating func zero() {
        for p in a.indices {
            a[p].withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            b[p].withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        }
    }
}

/// A BERT encoder with a LoRA adapter kept apart from the frozen base weights, for
/// training: `forward` computes sentence embeddings with
/// `h = x·Wᵀ + bias + (α/r)·(x·Aᵀ)·Bᵀ` in every adapted layer (Hu et al. 2021, eq. 3) and
/// caches the activations; `backward` takes the gradient of a loss with respect to the
/// embeddings back through pooling, every layer (LayerNorm, GELU, residuals, attention
/// and its softmax) down to the frozen embeddings, producing the gradients of B (and of A
/// unless frozen, FFA-LoRA).
///
/// Matrix products go through `cblas_sgemm` as in `BertEncoder`; sequences are packed
/// without padding, so the attention mask is implicit (each sequence attends only to
/// itself, which is what a padded batch with an attention mask computes). Buffers are the
/// encoder's `TrainingWorkspace`, reused across batches.
///
/// Not thread-safe: one per thread.
public final class TrainableEncoder {
    public let base: BertEncoder
    public var config: BertConfig { base.config }
    /// The adapter being trained; an optimizer updates its factors between steps.
    public var adapter: LoRAAdapter
    public let pooling: Pooling
    let workspace: TrainingWorkspace
    /// The batch of the last forward pass: each sequence's length, first row, and offset
    /// of its attention probabilities.
    var lengths: [Int] = []
    var offsets: [Int] = []
    var probabilityOffsets: [Int] = []
    var rows = 0

    /// - Throws: `FedRecError(.mismatch, file:)` naming `adapterFile` when the adapter does
    ///   not fit the encoder.
    public init(base: BertEncoder, adapter: LoRAAdapter, pooling: Pooling, adapterFile: String = "adapter") throws {
        try adapter.check(against: base, file: adapterFile)
        self.base = base
        self.adapter = adapter
        self.pooling = pooling
        workspace = TrainingWorkspace(layers: base.config.numHiddenLayers, targets: adapter.config.targets.count)
    }

    /// Floats per sentence vector.
    public var dimension: Int { pooling.dimension(hiddenSize: config.hiddenSize) }

    /// Sentence embeddings of `sequences`, caching what `backward` needs.
    /// - Returns: `sequences.count` × `dimension` floats, row-major.
    /// - Throws: `FedRecError(.badData)` for an id outside the vocabulary or a sequence
    ///   longer than the model's positions.
    public func forward(_ sequences: [[Int32]]) throws -> [Float] {
        let c = config
        let h = c.hiddenSize
        let (rows, longest) = try base.measure(sequences)
        self.rows = rows
        lengths = sequences.map(\.count)
        offsets.removeAll(keepingCapacity: true)
        probabilityOffsets.removeAll(keepingCapacity: true)
        var row = 0, probabilities = 0
        for n in lengths {
            offsets.append(row)
            probabilityOffsets.append(probabilities)
            row += n
            probabilities += c.numAttentionHeads * n * n
        }
        let width = dimension
        let ws = workspace
        ws.reserve(
            rows: rows, sequences: sequences.count, longest: longest, probabilities: probabilities, width: width, config: c,
            rank: adapter.config.rank)
        guard rows > 0 else { return [Float](repeating: 0, count: sequences.count * width) }

        base.embeddings(sequences, into: ws.layers[0].input.pointer)
        for (l, w) in base.weights.layers.enumerated() {
            let a = ws.layers[l]
            let next = l + 1 < ws.layers.count ? ws.layers[l + 1].input.pointer : ws.output.pointer
            base.linear(a.input.pointer, rows: rows, w.qkv, into: a.qkv.pointer)
            for (block, target) in [LoRATarget.query, .key, .value].enumerated() {
                lowRankForward(layer: l, target, x: a.input.pointer, into: a.qkv.pointer + block * h, stride: 3 * h)
            }
            attentionForward(a)
            base.linear(a.context.pointer, rows: rows, w.attentionOutput, into: a.attentionOut.pointer)
            lowRankForward(layer: l, .attentionOutput, x: a.context.pointer, into: a.attentionOut.pointer, stride: h)
            addLayerNorm(
                a.attentionOut.pointer, residual: a.input.pointer, norm: w.attentionNorm, normalized: a.attentionNormalized.pointer,
                inverseStd: a.attentionInverseStd.pointer)
            base.linear(a.attentionOut.pointer, rows: rows, w.intermediate, into: a.preActivation.pointer)
            lowRankForward(layer: l, .intermediate, x: a.attentionOut.pointer, into: a.preActivation.pointer, stride: c.intermediateSize)
            a.activation.pointer.update(from: a.preActivation.pointer, count: rows * c.intermediateSize)
            BertEncoder.gelu(a.activation.pointer, count: rows * c.intermediateSize)
            base.linear(a.activation.pointer, rows: rows, w.output, into: next)
            lowRankForward(layer: l, .output, x: a.activation.pointer, into: next, stride: h)
            addLayerNorm(
                next, residual: a.attentionOut.pointer, norm: w.outputNorm, normalized: a.outputNormalized.pointer,
                inverseStd: a.outputInverseStd.pointer)
        }
        return poolForward()
    }

    /// `y += (α/r)·(x·Aᵀ)·Bᵀ` for an adapted target, keeping `x·Aᵀ` for the backward pass.
    private func lowRankForward(layer: Int, _ target: LoRATarget, x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, stride: Int) {
        guard let p = adapter.index(layer: layer, target), let slot = adapter.config.targets.firstIndex(of: target) else { return }
        let pair = adapter.pairs[p]
        let r = adapter.config.rank
        let t = workspace.layers[layer].lowRank[slot].pointer
        pair.a.withUnsafeBufferPointer { a in
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(r), Int32(pair.inputs),
                1, x, Int32(pair.inputs), a.baseAddress, Int32(pair.inputs), 0, t, Int32(r))
        }
        pair.b.withUnsafeBufferPointer { b in
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(pair.outputs), Int32(r),
                adapter.config.scaling, t, Int32(r), b.baseAddress, Int32(r), 1, y, Int32(stride))
        }
    }

    /// softmax(Q·Kᵀ/√d)·V per sequence and head, keeping the probabilities.
    private func attentionForward(_ a: LayerActivations) {
        let c = config
        let h = c.hiddenSize, d = c.headSize, stride = 3 * h
        let scale = 1 / Float(d).squareRoot()
        for (s, n) in lengths.enumerated() where n > 0 {
            for head in 0..<c.numAttentionHeads {
                let q = a.qkv.pointer + offsets[s] * stride + head * d
                let p = a.probabilities.pointer + probabilityOffsets[s] + head * n * n
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(d),
                    scale, q, Int32(stride), q + h, Int32(stride), 0, p, Int32(n))
                BertEncoder.softmaxRows(p, rows: n, width: n)
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(d), Int32(n),
                    1, p, Int32(n), q + 2 * h, Int32(stride), 0, a.context.pointer + offsets[s] * h + head * d, Int32(h))
            }
        }
    }

    /// `x = LayerNorm(x + residual)` in place, keeping x̂ and 1/σ of every row; the same
    /// arithmetic, in the same order, as `BertEncoder`'s.
    private func addLayerNorm(
        _ x: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>, norm: Norm, normalized: UnsafeMutablePointer<Float>,
        inverseStd: UnsafeMutablePointer<Float>
    ) {
        let h = config.hiddenSize
        let eps = config.layerNormEps
        norm.gamma.withUnsafeBufferPointer { gamma in
            norm.beta.withUnsafeBufferPointer { beta in
                for r in 0..<rows {
                    let row = x + r * h
                    let res = residual + r * h
                    let xhat = normalized + r * h
                    for j in 0..<h { row[j] += res[j] }
                    let (mean, inverse) = BertEncoder.moments(row, width: h, eps: eps)
                    inverseStd[r] = inverse
                    for j in 0..<h {
                        xhat[j] = (row[j] - mean) * inverse
                        row[j] = xhat[j] * gamma[j] + beta[j]
                    }
                }
            }
        }
    }

    /// Pools the last hidden state per sequence, keeping the vectors before normalisation.
    private func poolForward() -> [Float] {
        let h = config.hiddenSize
        let width = dimension
        var raw = pooling
        raw.normalize = false
        let ws = workspace
        var out = [Float](repeating: 0, count: lengths.count * width)
        for (s, n) in lengths.enumerated() {
            let v = ws.pooledRaw.pointer + s * width
            raw.pool(UnsafePointer(ws.output.pointer + offsets[s] * h), rows: n, width: h, into: v)
            var scale: Float = 1
            if pooling.normalize {
                var sum: Float = 0
                for j in 0..<width { sum += v[j] * v[j] }
                scale = 1 / max(sum.squareRoot(), 1e-12)
            }
            for j in 0..<width { out[s * width + j] = v[j] * scale }
        }
        ws.pooled.pointer.update(from: out, count: out.count)
        return out
    }
}
