internal import COpenBLAS
import FedRecCore
import FedRecSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TrainableEncoder {
    /// Back-propagates `dEmbeddings` (∂loss/∂embedding of each sequence of the last
    /// `forward`, `sequences` × `dimension`) and adds ∂loss/∂B (and ∂loss/∂A unless A is
    /// frozen) into `gradients`. The embeddings are frozen: nothing flows below layer 0.
    ///
    /// Per layer, with y = LayerNorm(z), z = f(x) + x (post-LN BERT):
    /// - LayerNorm: ∂z = (1/σ)·(g − mean(g) − x̂·mean(g ⊙ x̂)), g = γ ⊙ ∂y;
    /// - GELU (erf form): ∂u = ∂g ⊙ (Φ(u) + u·φ(u));
    /// - attention, P = softmax(S), S = Q·Kᵀ/√d, C = P·V: ∂V = Pᵀ·∂C, ∂P = ∂C·Vᵀ,
    ///   ∂S = P ⊙ (∂P − rowsum(∂P ⊙ P)), ∂Q = ∂S·K/√d, ∂K = ∂Sᵀ·Q/√d;
    /// - a dense layer y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ with t = x·Aᵀ: ∂B += s·∂yᵀ·t,
    ///   ∂t = s·∂y·B, ∂A += ∂tᵀ·x, ∂x = ∂y·W + ∂t·A.
    /// - Precondition: `dEmbeddings.count` is the last forward's sequences × `dimension`.
    public func backward(_ dEmbeddings: [Float], into gradients: inout LoRAGradients) {
        precondition(dEmbeddings.count == lengths.count * dimension, "backward needs one gradient per embedding of the last forward")
        guard rows > 0 else { return }
        let c = config
        let h = c.hiddenSize
        let ws = workspace
        poolBackward(dEmbeddings, into: ws.dHidden.pointer)
        for l in stride(from: c.numHiddenLayers - 1, through: 0, by: -1) {
            let w = base.weights.layers[l]
            let a = ws.layers[l]
            let dOut = ws.dHidden.pointer
            let dInner = ws.dInner.pointer
            // Output LayerNorm, then the feed-forward block (its residual is dInner itself).
            layerNormBackward(dOut, normalized: a.outputNormalized.pointer, inverseStd: a.outputInverseStd.pointer, w.outputNorm, into: dInner)
            denseBackward(
                dy: dInner, stride: h, w.output, layer: l, .output, x: a.activation.pointer, into: ws.dActivation.pointer,
                accumulate: false, gradients: &gradients)
            geluBackward(ws.dActivation.pointer, preActivation: a.preActivation.pointer, count: rows * c.intermediateSize)
            denseBackward(
                dy: ws.dActivation.pointer, stride: c.intermediateSize, w.intermediate, layer: l, .intermediate,
                x: a.attentionOut.pointer, into: dInner, accumulate: true, gradients: &gradients)
            // Attention LayerNorm, then the attention block (residual: dOut itself).
            layerNormBackward(
                dInner, normalized: a.attentionNormalized.pointer, inverseStd: a.attentionInverseStd.pointer, w.attentionNorm, into: dOut)
            denseBackward(
                dy: dOut, stride: h, w.attentionOutput, layer: l, .attentionOutput, x: a.context.pointer, into: ws.dContext.pointer,
                accumulate: false, gradients: &gradients)
            attentionBackward(a, dContext: ws.dContext.pointer, into: ws.dQKV.pointer)
            // Below layer 0 are the frozen embeddings: no input gradient is needed there.
            let dInput: UnsafeMutablePointer<Float>? = l > 0 ? dOut : nil
            if let dInput {
                w.qkv.weight.withUnsafeBufferPointer { weight in
                    cblas_sgemm(
                        CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(h), Int32(3 * h),
                        1, ws.dQKV.pointer, Int32(3 * h), weight.baseAddress, Int32(h), 1, dInput, Int32(h))
                }
            }
            for (block, target) in [LoRATarget.query, .key, .value].enumerated() {
                lowRankBackward(
                    layer: l, target, dy: ws.dQKV.pointer + block * h, stride: 3 * h, x: a.input.pointer, into: dInput,
                    gradients: &gradients)
            }
        }
    }

    /// ∂x = ∂y·W (or += with `accumulate`), plus the adapter's part and its gradients.
    private func denseBackward(
        dy: UnsafePointer<Float>, stride: Int, _ linear: Linear, layer: Int, _ target: LoRATarget, x: UnsafePointer<Float>,
        into dx: UnsafeMutablePointer<Float>, accumulate: Bool, gradients: inout LoRAGradients
    ) {
        linear.weight.withUnsafeBufferPointer { weight in
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(linear.inputs), Int32(linear.outputs),
                1, dy, Int32(stride), weight.baseAddress, Int32(linear.inputs), accumulate ? 1 : 0, dx, Int32(linear.inputs))
        }
        lowRankBackward(layer: layer, target, dy: dy, stride: stride, x: x, into: dx, gradients: &gradients)
    }

    /// The adapter's part of a dense layer's backward pass: ∂B += s·∂yᵀ·t, ∂t = s·∂y·B,
    /// ∂A += ∂tᵀ·x (unless frozen), ∂x += ∂t·A (when `dx` is given).
    private func lowRankBackward(
        layer: Int, _ target: LoRATarget, dy: UnsafePointer<Float>, stride: Int, x: UnsafePointer<Float>,
        into dx: UnsafeMutablePointer<Float>?, gradients: inout LoRAGradients
    ) {
        guard let p = adapter.index(layer: layer, target), let slot = adapter.config.targets.firstIndex(of: target) else { return }
        let pair = adapter.pairs[p]
        let r = Int32(adapter.config.rank)
        let s = adapter.config.scaling
        let frozen = adapter.config.frozenA
        let n = Int32(rows), inputs = Int32(pair.inputs), outputs = Int32(pair.outputs)
        let t = workspace.layers[layer].lowRank[slot].pointer
        let dt = workspace.dLowRank.pointer
        gradients.b[p].withUnsafeMutableBufferPointer { gb in
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, outputs, r, n, s, dy, Int32(stride), t, r, 1, gb.baseAddress, r)
        }
        guard !frozen || dx != nil else { return }
        pair.b.withUnsafeBufferPointer { b in
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, r, outputs, s, dy, Int32(stride), b.baseAddress, r, 0, dt, r)
        }
        if !frozen {
            gradients.a[p].withUnsafeMutableBufferPointer { ga in
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, inputs, n, 1, dt, r, x, inputs, 1, ga.baseAddress, inputs)
            }
        }
        if let dx {
            pair.a.withUnsafeBufferPointer { a in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, inputs, r, 1, dt, r, a.baseAddress, inputs, 1, dx, inputs)
            }
        }
    }

    /// ∂z of y = γ ⊙ x̂ + β, x̂ = (z − μ)/σ, row by row.
    private func layerNormBackward(
        _ dy: UnsafePointer<Float>, normalized: UnsafePointer<Float>, inverseStd: UnsafePointer<Float>, _ norm: Norm,
        into dz: UnsafeMutablePointer<Float>
    ) {
        let h = config.hiddenSize
        norm.gamma.withUnsafeBufferPointer { gamma in
            for r in 0..<rows {
                let g = dy + r * h, xhat = normalized + r * h, out = dz + r * h
                var mean: Float = 0, projection: Float = 0
                for j in 0..<h {
                    let v = g[j] * gamma[j]
                    out[j] = v
                    mean += v
                    projection += v * xhat[j]
                }
                mean /= Float(h)
                projection /= Float(h)
                let inverse = inverseStd[r]
                for j in 0..<h { out[j] = inverse * (out[j] - mean - xhat[j] * projection) }
            }
        }
    }

    /// ∂u = ∂g ⊙ GELU′(u), GELU′(u) = Φ(u) + u·φ(u) for the exact (erf) GELU.
    private func geluBackward(_ d: UnsafeMutablePointer<Float>, preActivation u: UnsafePointer<Float>, count: Int) {
        let inverseRoot2: Float = 0.70710678118654752
        let inverseRoot2Pi: Float = 0.39894228040143268
        for i in 0..<count {
            let v = u[i]
            let cdf = 0.5 * (1 + fastErf(v * inverseRoot2))
            let pdf = inverseRoot2Pi * fastExpNonPositive(-0.5 * v * v)
            d[i] *= cdf + v * pdf
        }
    }

    /// ∂Q, ∂K, ∂V of every sequence and head from ∂C, through the cached probabilities.
    private func attentionBackward(_ a: LayerActivations, dContext: UnsafePointer<Float>, into dqkv: UnsafeMutablePointer<Float>) {
        let c = config
        let h = c.hiddenSize, d = c.headSize, stride = 3 * h
        let scale = 1 / Float(d).squareRoot()
        let dP = workspace.dProbabilities.pointer
        for (s, n) in lengths.enumerated() where n > 0 {
            for head in 0..<c.numAttentionHeads {
                let column = offsets[s] * stride + head * d
                let q = UnsafePointer(a.qkv.pointer + column), k = q + h, v = q + 2 * h
                let dq = dqkv + column, dk = dq + h, dv = dq + 2 * h
                let p = UnsafePointer(a.probabilities.pointer + probabilityOffsets[s] + head * n * n)
                let dc = dContext + offsets[s] * h + head * d
                let ni = Int32(n), di = Int32(d)
                // ∂P = ∂C·Vᵀ and ∂V = Pᵀ·∂C.
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, ni, di, 1, dc, Int32(h), v, Int32(stride), 0, dP, ni)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, di, ni, 1, p, ni, dc, Int32(h), 0, dv, Int32(stride))
                // Softmax: ∂S = P ⊙ (∂P − rowsum(∂P ⊙ P)), with the 1/√d folded in.
                for i in 0..<n {
                    var dot: Float = 0
                    for j in 0..<n { dot += dP[i * n + j] * p[i * n + j] }
                    for j in 0..<n { dP[i * n + j] = scale * p[i * n + j] * (dP[i * n + j] - dot) }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, di, ni, 1, dP, ni, k, Int32(stride), 0, dq, Int32(stride))
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, di, ni, 1, dP, ni, q, Int32(stride), 0, dk, Int32(stride))
            }
        }
    }

    /// ∂(last hidden state) from ∂(embeddings): through L2 normalisation
    /// (∂v = (∂y − y·(y·∂y))/‖v‖) and each pooling mode (CLS: the first row; max: the row
    /// that held each maximum; mean: every row, /n; mean/√n: every row, /√n).
    private func poolBackward(_ dEmbeddings: [Float], into dStates: UnsafeMutablePointer<Float>) {
        let h = config.hiddenSize
        let width = dimension
        let ws = workspace
        dStates.update(repeating: 0, count: rows * h)
        let dv = ws.dPooled.pointer
        dEmbeddings.withUnsafeBufferPointer { dEmbeddings in
            for (s, n) in lengths.enumerated() where n > 0 {
                let dy = dEmbeddings.baseAddress! + s * width
                let raw = ws.pooledRaw.pointer + s * width
                if pooling.normalize {
                    let y = ws.pooled.pointer + s * width
                    var norm: Float = 0, dot: Float = 0
                    for j in 0..<width {
                        norm += raw[j] * raw[j]
                        dot += y[j] * dy[j]
                    }
                    let length = norm.squareRoot()
                    // Below the clamp the vector was divided by the constant 1e-12.
                    let inverse = 1 / max(length, 1e-12)
                    for j in 0..<width { dv[j] = length > 1e-12 ? (dy[j] - y[j] * dot) * inverse : dy[j] * inverse }
                } else {
                    dv.update(from: dy, count: width)
                }
                let states = ws.output.pointer + offsets[s] * h
                let out = dStates + offsets[s] * h
                var part = dv
                if pooling.clsToken {
                    for j in 0..<h { out[j] += part[j] }
                    part += h
                }
                if pooling.maxTokens {
                    for j in 0..<h {
                        var best = 0
                        for r in 1..<max(n, 1) where states[r * h + j] > states[best * h + j] { best = r }
                        out[best * h + j] += part[j]
                    }
                    part += h
                }
                let count = max(Float(n), 1e-9)
                for (on, divisor) in [(pooling.meanTokens, count), (pooling.meanSqrtLengthTokens, count.squareRoot())] where on {
                    for r in 0..<n {
                        for j in 0..<h { out[r * h + j] += part[j] / divisor }
                    }
                    part += h
                }
            }
        }
    }
}
