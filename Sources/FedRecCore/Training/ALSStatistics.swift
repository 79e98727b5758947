/// The sufficient statistics of federated alternating least squares. A client solves its
/// users' vectors in closed form (`UserSolver`) and contributes, for every item it rated,
/// the sums the item's least-squares step needs. Sums over clients are exactly what the
/// server receives, so federated ALS equals centralised ALS round for round.
///
/// Explicit (MSE, with biases): with x_u = [p_u, 1] and target y = r − μ − b_u, row i
/// gets Σ x_u x_uᵀ ((d+1)² values) and Σ y x_u (d+1 values); the dense part is
/// [Σ (r − b_u − b_i − p_u·q_i), count] for the global bias.
/// Implicit (WALS, Hu, Koren & Volinsky 2008): row i gets Σ (c − 1) p_u p_uᵀ (d²) and
/// Σ c p_u (d) with c = 1 + α for every observed pair; the dense part is Σ_u p_u p_uᵀ
/// over all users (d²).
enum ALSStatistics {
    /// Row tensor names and widths for a model.
    static func rowLayout(_ config: ModelConfig) -> [(name: String, width: Int)] {
        let n = config.objective == .wals ? config.dim : config.dim + 1
        return [("als_gram", n * n), ("als_rhs", n)]
    }

    static func denseName(_ config: ModelConfig) -> String {
        config.objective == .wals ? "als_user_gram" : "als_global"
    }

    static func denseCount(_ config: ModelConfig) -> Int {
        config.objective == .wals ? config.dim * config.dim : 2
    }

    /// Adds one user's statistics (the user already solved: `embedding`, `bias`).
    static func accumulate(user train: Interactions, embedding p: [Float], bias: Float, model: ModelView, alpha: Float,
                           rows: RowAccumulator, dense: inout [Float], weight: Float) {
        let d = model.config.dim
        let wals = model.config.objective == .wals
        let n = wals ? d : d + 1
        var x = [Float](repeating: 1, count: n)
        for k in 0..<d { x[k] = p[k] }
        // The user's outer product is the same for every item it rated: form it once.
        var outer = [Float](repeating: 0, count: n * n)
        outer.withUnsafeMutableBufferPointer { o in
            x.withUnsafeBufferPointer { x in VectorKernels.addOuter(o.baseAddress!, x.baseAddress!, n: n, scale: 1) }
        }
        if wals {
            for i in 0..<(d * d) { dense[i] += outer[i] }
        }
        outer.withUnsafeBufferPointer { outer in
            x.withUnsafeBufferPointer { x in
                for (e, item) in train.items.enumerated() {
                    let slot = rows.slot(item)
                    rows.countClient(slot: slot, weight: weight)
                    let gramWeight: Float, rhsWeight: Float
                    if wals {
                        gramWeight = alpha  // c − 1 with c = 1 + α
                        rhsWeight = 1 + alpha
                    } else {
                        let r = train.ratings[e]
                        gramWeight = 1
                        rhsWeight = r - model.globalBias - bias
                        let dot = VectorKernels.dot(x.baseAddress!, model.items.embedding(Int(item)), n: d)
                        dense[0] += r - bias - model.items.bias(Int(item)) - dot
                        dense[1] += 1
                    }
                    rows.withSlot(slot) { v in
                        VectorKernels.addScaled(v.baseAddress!, outer.baseAddress!, n: n * n, scale: gramWeight)
                        VectorKernels.addScaled(v.baseAddress! + n * n, x.baseAddress!, n: n, scale: rhsWeight)
                    }
                }
            }
        }
    }
}
