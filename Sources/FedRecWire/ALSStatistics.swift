import FedRecModel
import FedRecSupport

/// The sufficient statistics of federated alternating least squares. A client solves its
/// users' vectors in closed form (`UserSolver`) and contributes, for every item it rated,
/// the sums the item's least-squares step needs. Sums over clients are exactly what the
/// server receives, so federated ALS equals centralised ALS round for round.
///
/// Explicit (MSE, with biases): with x_u = [p_u, 1] and target y = r − μ − b_u, row i
/// gets Σ x_u x_uᵀ and Σ y x_u (d+1 values); the dense part is
/// [Σ (r − b_u − b_i − p_u·q_i), count] for the global bias.
/// Implicit (WALS, Hu, Koren & Volinsky 2008): row i gets Σ (c − 1) p_u p_uᵀ and
/// Σ c p_u (d) with c = 1 + α for every observed pair; the dense part is Σ_u p_u p_uᵀ
/// over all users (d², the full matrix).
/// A row's Gram block (n × n, n = d + 1 explicit, d implicit) is symmetric and is stored
/// as its packed upper triangle (`packedCount(n)` values, row by row, diagonal included:
/// (0,0), (0,1), …, (0,n−1), (1,1), …), since format version 4.
public enum ALSStatistics {
    /// The name of the row tensor of Gram blocks.
    public static let gramName = "als_gram"
    /// The name of the row tensor of right-hand sides.
    public static let rhsName = "als_rhs"

    /// n: the width of an item's system, d for WALS and d + 1 (the bias) explicit.
    public static func systemWidth(_ config: ModelConfig) -> Int {
        config.objective == .wals ? config.dim : config.dim + 1
    }

    /// Values of an n × n symmetric block's packed upper triangle: n(n + 1)/2.
    public static func packedCount(_ n: Int) -> Int { n * (n + 1) / 2 }

    /// Row tensor names and widths for a model: the packed Gram blocks, then the right-hand sides.
    public static func rowLayout(_ config: ModelConfig) -> [(name: String, width: Int)] {
        let n = systemWidth(config)
        return [(gramName, packedCount(n)), (rhsName, n)]
    }

    /// Adds `scale` times the packed upper triangle of x xᵀ to `packed`. Each value is
    /// the Float product x_a·x_b, then scaled and added, as the full block's
    /// `VectorKernels.addOuter` then `addScaled` compute it, so a packed sum (begun at +0)
    /// holds the same bits as the full one's upper triangle (addOuter's 0 + x_a·x_b only
    /// turns a −0 into +0, which cannot change a sum begun at +0).
    @inline(__always)
    public static func addPackedOuter(_ packed: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, n: Int, scale: Float) {
        var row = packed
        for a in 0..<n {
            // Row a of the triangle (columns a..<n) through pointers: no overflow check per
            // value, so the loop vectorises (each value takes the same operations).
            let xa = x[a], tail = x + a, count = n - a
            for j in 0..<count { row[j] += scale * (xa * tail[j]) }
            row += count
        }
    }

    /// The full symmetric n × n matrix (row-major, in Double) of a packed upper triangle.
    @inline(__always)
    public static func unpack(_ packed: UnsafePointer<Float>, n: Int, into full: UnsafeMutablePointer<Double>) {
        var k = 0
        for a in 0..<n {
            for b in a..<n {
                let value = Double(packed[k])
                full[a * n + b] = value
                full[b * n + a] = value
                k += 1
            }
        }
    }

    /// The packed upper triangles of full n × n blocks (`rows` of them, n² values each).
    public static func pack(full: [Float], n: Int, rows: Int) -> [Float] {
        let t = packedCount(n)
        var out = [Float](repeating: 0, count: rows * t)
        for r in 0..<rows {
            var k = r * t
            for a in 0..<n {
                for b in a..<n {
                    out[k] = full[r * n * n + a * n + b]
                    k += 1
                }
            }
        }
        return out
    }

    /// An update read from a file of format version ≤ 3, whose ALS Gram blocks are full
    /// (n² values): the same update with them packed. Other updates pass unchanged.
    /// - Throws: `.shape` when the Gram tensor has neither width.
    static func packingLegacyGram(_ update: ModelUpdate, file: String) throws -> ModelUpdate {
        guard update.header.algorithm == .als, let gram = update.rowTensors[gramName] else { return update }
        let n = systemWidth(update.header.config)
        if gram.width == packedCount(n) { return update }
        guard gram.width == n * n else {
            throw FedRecError(.shape, file: file, "tensor rows.\(gramName) has width \(gram.width), expected \(n * n) (full blocks, format version ≤ 3)")
        }
        var packed = update
        packed.rowTensors[gramName] = RowTensor(width: packedCount(n), values: pack(full: gram.values, n: n, rows: update.rows.count))
        return packed
    }

    public static func denseName(_ config: ModelConfig) -> String {
        config.objective == .wals ? "als_user_gram" : "als_global"
    }

    public static func denseCount(_ config: ModelConfig) -> Int {
        config.objective == .wals ? config.dim * config.dim : 2
    }
}

/// Per-user bounds on what one user adds to the ALS statistics, so that their sum has a
/// known L2 sensitivity and can be released with Gaussian noise: private ALS after Chien
/// et al., "Private Alternating Least Squares" (ICML 2021). Each user solves their own
/// vector on all their data (joint DP: a user's own vector is theirs), clips it to norm
/// Γ, and contributes statistics for at most K of their items, drawn uniformly; explicit
/// residuals are clipped to ±Γ_r. Recorded in the update's metadata, so the release can
/// compute the sensitivity from what the clients promised.
public struct ALSContributionBounds: Sendable, Equatable {
    /// K: items per user whose statistics are contributed in a round.
    public var maxItems: Int
    /// Γ: the largest L2 norm of a user vector in the statistics.
    public var userClip: Double
    /// Γ_r: the largest |residual| in explicit statistics (unused by implicit ALS).
    public var residualClip: Double
    /// α of implicit ALS, which scales its statistics (unused by explicit ALS).
    public var alpha: Double
    /// What implicit ALS shares of each item's Gram.
    public var itemGram: ItemGramMode = .noised

    /// Implicit ALS's item Gram α Σ_{u∈Ω_i} p_u p_uᵀ under privacy.
    public enum ItemGramMode: String, Sendable, CaseIterable {
        /// Shared and noised like everything else (Chien et al. 2021).
        case noised
        /// Not shared: the server uses its mean-field estimate n_i · Σ_u p_u p_uᵀ / N
        /// from the item's noised count and the (noised, far less noisy) dense Gram of
        /// all users, so the d² values per item add neither sensitivity nor noise.
        case mean
    }

    public init(maxItems: Int, userClip: Double, residualClip: Double, alpha: Double, itemGram: ItemGramMode = .noised) {
        self.maxItems = maxItems
        self.userClip = userClip
        self.residualClip = residualClip
        self.alpha = alpha
        self.itemGram = itemGram
    }

    /// Metadata keys of an update or sum trained with these bounds (docs/FORMATS.md).
    public static let maxItemsKey = "als_dp_max_items"
    public static let userClipKey = "als_dp_user_clip"
    public static let residualClipKey = "als_dp_residual_clip"
    public static let alphaKey = "als_dp_alpha"
    public static let itemGramKey = "als_dp_item_gram"

    public var metadata: [String: String] {
        [Self.maxItemsKey: "\(maxItems)", Self.userClipKey: "\(userClip)", Self.residualClipKey: "\(residualClip)",
         Self.alphaKey: "\(alpha)", Self.itemGramKey: itemGram.rawValue]
    }

    /// The bounds an update's metadata records, nil when it records none.
    /// - Throws: `.badData` for bounds that are present but not positive finite numbers.
    public init?(metadata: [String: String]) throws {
        guard let k = metadata[Self.maxItemsKey] else { return nil }
        guard let maxItems = Int(k), maxItems >= 1,
            let clip = metadata[Self.userClipKey].flatMap(Double.init), clip > 0, clip.isFinite,
            let residual = metadata[Self.residualClipKey].flatMap(Double.init), residual > 0, residual.isFinite,
            let alpha = metadata[Self.alphaKey].flatMap(Double.init), alpha >= 0, alpha.isFinite
        else { throw FedRecError(.badData, "ALS contribution bounds in the metadata are not positive numbers") }
        guard let mode = ItemGramMode(rawValue: metadata[Self.itemGramKey] ?? ItemGramMode.noised.rawValue) else {
            throw FedRecError(.badData, "als_dp_item_gram is \(metadata[Self.itemGramKey] ?? ""), expected noised or mean")
        }
        self.init(maxItems: maxItems, userClip: clip, residualClip: residual, alpha: alpha, itemGram: mode)
    }

    /// Δ: the L2 sensitivity, under adding or removing one user, of every value a release
    /// of the summed statistics noises (the upper triangles of the Grams, the right-hand
    /// sides, each item's count and the dense part).
    ///
    /// Δ² = K·P + (w·Δ_D)², P the per-item terms (`perItemSquares`), Δ_D the dense
    /// part's own sensitivity (`denseSensitivity`) and w the weight it is released with
    /// (`denseWeight`), which makes Δ² = 1.09·K·P.
    /// Implicit (WALS): each of ≤ K items gets α·p pᵀ (Frobenius ≤ αΓ²), (1 + α)·p
    /// (≤ (1 + α)Γ) and a count of 1, and the dense Σ p pᵀ gets p pᵀ (≤ Γ²); with the
    /// mean-field item Gram (`ItemGramMode.mean`) the α²Γ⁴ term goes.
    /// Explicit (x = [p, 1], ‖x‖² ≤ X = Γ² + 1): each of ≤ K items gets x xᵀ (≤ X),
    /// y·x with |y| ≤ Γ_r (≤ Γ_r√X) and a count of 1; the dense [Σ residual, count] gets
    /// at most [KΓ_r, K].
    /// The triangle of a symmetric matrix has at most its Frobenius norm, so the bounds hold.
    public func sensitivity(_ config: ModelConfig) -> Double {
        let dense = denseWeight(config) * denseSensitivity(config)
        return (Double(maxItems) * perItemSquares(config) + dense * dense).squareRoot()
    }

    /// The dense part's own L2 sensitivity: Γ² for WALS's Σ p pᵀ, K·√(Γ_r² + 1) for the
    /// explicit [Σ residual, count].
    func denseSensitivity(_ config: ModelConfig) -> Double {
        config.objective == .wals
            ? userClip * userClip
            : Double(maxItems) * (residualClip * residualClip + 1).squareRoot()
    }

    /// One item's squared sensitivity terms: in WALS α²G⁴ (the Gram, when shared),
    /// (1 + α)²G² (the right-hand side) and 1 (the count); explicit X² + R²X + 1 with
    /// X = G² + 1.
    func perItemSquares(_ config: ModelConfig) -> Double {
        let g = userClip
        guard config.objective == .wals else {
            let x = g * g + 1, r = residualClip
            return x * x + r * r * x + 1
        }
        let gram = sharesItemGram(config) ? alpha * alpha * g * g * g * g : 0
        return gram + (1 + alpha) * (1 + alpha) * g * g + 1
    }

    /// The weight the dense part is released with, so that its share of Δ² is 0.09 of
    /// the items' (Δ grows by 4.4 %); its noise is then σ/w. WALS's dense Gram
    /// D = Σ_u p pᵀ enters every item's solve and has a tiny sensitivity (G²): w > 1
    /// makes its noise small. The explicit [Σ residual, count] of the global mean has a
    /// large one (K·R, K) but is a sum over every rating, far above its noise: w < 1.
    public func denseWeight(_ config: ModelConfig) -> Double {
        0.3 * (Double(maxItems) * perItemSquares(config)).squareRoot() / denseSensitivity(config)
    }

    /// Whether the item Grams are shared (and released): always for explicit ALS, whose
    /// Gram carries the item's count and bias terms.
    public func sharesItemGram(_ config: ModelConfig) -> Bool { config.objective != .wals || itemGram == .noised }
}
