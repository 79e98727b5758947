import FedRecData
import FedRecModel
import FedRecSupport

/// Closed-form solves for one user's private parameters with the item side fixed: the
/// ALS user step, and the exact "reconstruction" of Federated Reconstruction for
/// least-squares objectives. Used by training, evaluation and recommendation alike.
public struct UserSolver {
    public let model: ModelView
    public let l2: Float
    /// λ of the bias coordinate in explicit solves.
    public let l2Bias: Float
    /// Confidence weight α of implicit ALS.
    public let alpha: Float
    /// Gram matrix QᵀQ of all item embeddings (d × d), needed by implicit ALS.
    private let itemGram: [Double]

    /// - Throws: `.checksum` when implicit ALS's Gram matrix reads a corrupt row.
    public init(model: ModelView, l2: Float, l2Bias: Float? = nil, alpha: Float) throws {
        self.model = model
        self.l2 = l2
        self.l2Bias = l2Bias ?? l2
        self.alpha = alpha
        if model.config.objective == .wals {
            // The checkpoint's stored Gram when it has one (the server keeps it), so a
            // client's cost does not grow with the catalogue.
            itemGram = try model.itemGram ?? ItemGram.compute(try model.items.dense().embedding, rows: model.config.items, dim: model.config.dim)
        } else {
            itemGram = []
        }
    }

    /// The user's parameters fitted to `train` with items fixed.
    ///
    /// Explicit (MSE): ridge regression of r − μ − b_i on [q_i, 1], giving p_u and b_u,
    /// with penalty n_u·diag(λ, …, λ, λ_b) (weighted-λ regularisation of ALS-WR, Zhou et
    /// al. 2008). Implicit (WALS, Hu et al. 2008): p_u = (QᵀQ + α Σ_i q_i q_iᵀ + λI)⁻¹
    /// (1 + α) Σ_i q_i over the user's items (confidence 1 + α on observed pairs, 1
    /// elsewhere); no user bias. Other objectives use the explicit form on preference 1
    /// as a warm start.
    /// - Returns: the embedding (d values) and bias.
    /// - Throws: `FedRecError(.usage)` when the system is not positive definite (λ = 0
    ///   with fewer items than unknowns, or non-finite model values): there is no unique
    ///   solution, and a made-up one would be a silently wrong user.
    public func solve(_ train: Interactions) throws -> (embedding: [Float], bias: Float) {
        let d = model.config.dim
        let q = model.items
        if train.isEmpty { return ([Float](repeating: 0, count: d), 0) }
        let wals = model.config.objective == .wals
        let n = wals ? d : d + 1
        // Σ x xᵀ and Σ y x accumulate in Float (a user has at most a few thousand items),
        // then the system is solved in Double.
        var gram = [Float](repeating: 0, count: n * n)
        var rhs = [Float](repeating: 0, count: n)
        var x = [Float](repeating: 1, count: n)
        let explicit = model.config.objective == .mse
        let mu = model.globalBias
        gram.withUnsafeMutableBufferPointer { g in
            rhs.withUnsafeMutableBufferPointer { r in
                x.withUnsafeMutableBufferPointer { x in
                    for (e, item) in train.items.enumerated() {
                        let row = q.embedding(Int(item))
                        x.baseAddress!.update(from: row, count: d)
                        if wals {
                            // Confidence 1 + α on observed pairs: Σ α q qᵀ and Σ (1 + α) q.
                            VectorKernels.addOuter(g.baseAddress!, x.baseAddress!, n: n, scale: alpha)
                            VectorKernels.addScaled(r.baseAddress!, x.baseAddress!, n: n, scale: 1 + alpha)
                        } else {
                            let target = (explicit ? train.ratings[e] - mu : 1) - q.bias(Int(item))
                            VectorKernels.addOuter(g.baseAddress!, x.baseAddress!, n: n, scale: 1)
                            VectorKernels.addScaled(r.baseAddress!, x.baseAddress!, n: n, scale: target)
                        }
                    }
                }
            }
        }
        var a = gram.map { Double($0) }
        var b = rhs.map { Double($0) }
        if wals {
            for i in 0..<(d * d) { a[i] += itemGram[i] }
            for i in 0..<d { a[i * d + i] += Double(l2) }
        } else {
            for i in 0..<n { a[i * n + i] += Double(i == d ? l2Bias : l2) * Double(train.count) }
        }
        let solved = a.withUnsafeMutableBufferPointer { a in b.withUnsafeMutableBufferPointer { b in Cholesky.solve(a, b, n: n) } }
        guard solved else {
            throw FedRecError(.usage, "a user's least-squares system (\(train.count) items, \(n) unknowns, λ = \(l2)) has no unique solution: give --l2 > 0")
        }
        return (b[0..<d].map { Float($0) }, wals ? 0 : Float(b[d]))
    }
}
