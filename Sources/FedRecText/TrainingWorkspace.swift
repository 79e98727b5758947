/// A float buffer that grows and never shrinks; contents are not kept across growth.
final class Scratch {
    private(set) var pointer = UnsafeMutablePointer<Float>.allocate(capacity: 0)
    private(set) var capacity = 0

    /// Makes room for `count` floats (half as much again when it grows, so a slightly larger
    /// batch does not reallocate).
    func reserve(_ count: Int) {
        guard count > capacity else { return }
        pointer.deallocate()
        capacity = max(count, capacity + capacity / 2)
        pointer = .allocate(capacity: capacity)
    }

    deinit { pointer.deallocate() }
}

/// What one encoder layer's forward pass keeps for its backward pass.
final class LayerActivations {
    /// The layer's input x, [rows, h] (layer 0: the embeddings).
    let input = Scratch()
    /// Q, K, V side by side, [rows, 3h].
    let qkv = Scratch()
    /// softmax(QKᵀ/√d) of every sequence and head, Σ heads·n².
    let probabilities = Scratch()
    /// The heads' outputs, [rows, h].
    let context = Scratch()
    /// After the attention block's LayerNorm: normalised x̂, 1/σ per row, and the output.
    let attentionNormalized = Scratch()
    let attentionInverseStd = Scratch()
    let attentionOut = Scratch()
    /// The feed-forward layer before and after GELU, [rows, intermediate].
    let preActivation = Scratch()
    let activation = Scratch()
    /// The output LayerNorm's x̂ and 1/σ (its output is the next layer's input).
    let outputNormalized = Scratch()
    let outputInverseStd = Scratch()
    /// x·Aᵀ of each adapted target of the layer, [rows, r], in the adapter's target order.
    var lowRank: [Scratch]

    init(targets: Int) {
        lowRank = (0..<targets).map { _ in Scratch() }
    }

    func reserve(rows: Int, probabilities count: Int, hidden h: Int, intermediate: Int, rank: Int) {
        for buffer in [input, context, attentionNormalized, attentionOut, outputNormalized] { buffer.reserve(rows * h) }
        qkv.reserve(rows * 3 * h)
        probabilities.reserve(count)
        attentionInverseStd.reserve(rows)
        outputInverseStd.reserve(rows)
        preActivation.reserve(rows * intermediate)
        activation.reserve(rows * intermediate)
        for buffer in lowRank { buffer.reserve(rows * rank) }
    }
}

/// Buffers of the training passes, kept across batches: the activations the forward pass
/// caches and the gradients of the backward pass, so a step allocates nothing once the
/// largest batch has been seen.
final class TrainingWorkspace {
    let layers: [LayerActivations]
    /// The last hidden state, [rows, h].
    let output = Scratch()
    /// Pooled vectors before and after L2 normalisation, [sequences, width].
    let pooledRaw = Scratch()
    let pooled = Scratch()
    /// Backward: gradients with respect to a layer's output, to its inner sum, to the
    /// attention context, to Q/K/V, to the feed-forward activation, to x·Aᵀ, to the
    /// attention probabilities, and to one pooled vector.
    let dHidden = Scratch()
    let dInner = Scratch()
    let dContext = Scratch()
    let dQKV = Scratch()
    let dActivation = Scratch()
    let dLowRank = Scratch()
    let dProbabilities = Scratch()
    let dPooled = Scratch()

    init(layers: Int, targets: Int) {
        self.layers = (0..<layers).map { _ in LayerActivations(targets: targets) }
    }

    func reserve(rows: Int, sequences: Int, longest: Int, probabilities: Int, width: Int, config c: BertConfig, rank: Int) {
        let h = c.hiddenSize
        for layer in layers {
            layer.reserve(rows: rows, probabilities: probabilities, hidden: h, intermediate: c.intermediateSize, rank: rank)
        }
        for buffer in [output, dHidden, dInner, dContext] { buffer.reserve(rows * h) }
        pooledRaw.reserve(sequences * width)
        pooled.reserve(sequences * width)
        dQKV.reserve(rows * 3 * h)
        dActivation.reserve(rows * c.intermediateSize)
        dLowRank.reserve(rows * rank)
        dProbabilities.reserve(longest * longest)
        dPooled.reserve(width)
    }
}
