import FedRecModel

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
public enum ALSStatistics {
    /// Row tensor names and widths for a model.
    public static func rowLayout(_ config: ModelConfig) -> [(name: String, width: Int)] {
        let n = config.objective == .wals ? config.dim : config.dim + 1
        return [("als_gram", n * n), ("als_rhs", n)]
    }

    public static func denseName(_ config: ModelConfig) -> String {
        config.objective == .wals ? "als_user_gram" : "als_global"
    }

    public static func denseCount(_ config: ModelConfig) -> Int {
        config.objective == .wals ? config.dim * config.dim : 2
    }
}
