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
        if wals {
            for a in 0..<d { for b in 0..<d { dense[a * d + b] += p[a] * p[b] } }
        }
        for (e, item) in train.items.enumerated() {
            let slot = rows.slot(item)
            rows.countClient(slot: slot, weight: weight)
            let r = train.ratings[e]
            let gramWeight: Float, rhsWeight: Float
            if wals {
                let c = 1 + alpha
                gramWeight = c - 1
                rhsWeight = c
            } else {
                gramWeight = 1
                rhsWeight = r - model.globalBias - bias
                var dot: Float = 0
                let base = Int(item) * d
                for k in 0..<d { dot += p[k] * model.itemEmbedding[base + k] }
                dense[0] += r - bias - model.itemBias[Int(item)] - dot
                dense[1] += 1
            }
            rows.withSlot(slot) { v in
                for a in 0..<n {
                    let xa = gramWeight * x[a]
                    for b in 0..<n { v[a * n + b] += xa * x[b] }
                    v[n * n + a] += rhsWeight * x[a]
                }
            }
        }
    }
}
