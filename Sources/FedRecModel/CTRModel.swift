#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecFormats
import FedRecSupport

/// Hashing of categorical features into a fixed number of buckets (the "hashing trick",
/// Weinberger et al. 2009): a token `field=value` goes to bucket FNV-1a-32(side ‖ token)
/// mod 2^k, where side is `u:` for the user's own features and `i:` for an item's public
/// ones. FNV-1a (Fowler, Noll, Vo): h = 2166136261; for each byte, h = (h xor byte) ·
/// 16777619 mod 2^32.
public enum FeatureHash {
    /// FNV-1a 32-bit of the UTF-8 bytes of `text`.
    @inlinable
    public static func fnv1a(_ text: String) -> UInt32 {
        var h: UInt32 = 2_166_136_261
        for byte in text.utf8 {
            h ^= UInt32(byte)
            h = h &* 16_777_619
        }
        return h
    }

    /// The bucket of a user-side token among `buckets` (a power of two).
    public static func userBucket(_ token: String, buckets: Int) -> Int32 {
        Int32(truncatingIfNeeded: Int(fnv1a("u:" + token)) & (buckets - 1))
    }

    /// The bucket of an item-side token among `buckets` (a power of two).
    public static func itemBucket(_ token: String, buckets: Int) -> Int32 {
        Int32(truncatingIfNeeded: Int(fnv1a("i:" + token)) & (buckets - 1))
    }

    /// A user's tokens: `uid=ID` (with `userId`), then the user's own features.
    public static func userTokens(id: String, features: [String], userId: Bool) -> [String] {
        (userId ? ["uid=" + id] : []) + features
    }

    /// An item's tokens: `iid=INDEX`, then its public features.
    public static func itemTokens(item: Int, features: [String]) -> [String] {
        ["iid=" + String(item)] + features
    }
}

/// A click-through-rate model over hashed categorical features, stored as a `TensorModel`
/// of family `lr` or `fm`:
///
/// - logistic regression: p = σ(w₀ + Σⱼ wⱼ xⱼ);
/// - a factorisation machine of rank k (Rendle, "Factorization Machines", ICDM 2010,
///   eq. 1): p = σ(w₀ + Σⱼ wⱼ xⱼ + Σⱼ<ₗ ⟨vⱼ, vₗ⟩ xⱼ xₗ), the pairwise term computed in
///   O(k n) as ½ Σ_f [(Σⱼ v_{j,f} xⱼ)² − Σⱼ v_{j,f}² xⱼ²] (lemma 3.1).
///
/// Every x is a one-hot bucket (x = 1) of the user's tokens (kept by the client) and the
/// item's (public, in the model as `index.item_feature_offset` [items + 1] and
/// `index.item_feature_bucket`, CSR over the dataset's items). Tensors: `bias` [1] dense,
/// `weight` [buckets, 1] and (fm) `factor` [buckets, k], row tensors indexed by bucket
/// (`config.items` = buckets): a client's update holds the buckets its examples touched.
public struct CTRModel: Sendable {
    public var model: TensorModel
    /// Hash buckets (2^k).
    public let buckets: Int
    /// FM rank k (0 for logistic regression).
    public let rank: Int
    /// Items of the dataset (not the buckets).
    public let catalogueItems: Int
    /// A rating ≥ this is a click (1); below it, or an impression, no click (0).
    public let clickThreshold: Float
    /// Whether the user's id is a (private) feature.
    public let userIdFeature: Bool
    public let itemFeatureOffset: [Int32]
    public let itemFeatureBucket: [Int32]
    /// w₀, the weights [buckets] and the factors [buckets · rank] (empty for lr).
    public let bias: Float
    public let weights: [Float]
    public let factors: [Float]

    public static let biasName = "bias"
    public static let weightName = "weight"
    public static let factorName = "factor"
    /// A CTR update's statistics of the intercept at the round's model (not a parameter
    /// delta): [Σ (p − y), Σ p (1 − p)] over every training example of its clients,
    /// unweighted, the gradient and the curvature of the log loss in the bias, for the
    /// server's Newton step (`fl-aggregate --bias-step newton`).
    public static let biasResidualName = "stat.bias_residual"
    static let offsetTable = "item_feature_offset"
    static let bucketTable = "item_feature_bucket"

    /// A fresh model: zero weights, zero bias (or `initialBias`), FM factors N(0, scale²).
    /// - Parameters:
    ///   - itemFeatures: each dataset item's public tokens (`ItemFeatureTable`).
    public static func initial(family: ModelFamily, datasetId: String, itemFeatures: [[String]], hashBits: Int, rank: Int,
                               scale: Float, seed: UInt64, clickThreshold: Float, userIdFeature: Bool, initialBias: Float = 0) -> TensorModel {
        precondition(family == .lr || family == .fm)
        let buckets = 1 << hashBits
        let k = family == .fm ? rank : 0
        var offsets: [Int32] = [0]
        var bucketList: [Int32] = []
        for (item, features) in itemFeatures.enumerated() {
            for token in FeatureHash.itemTokens(item: item, features: features) {
                bucketList.append(FeatureHash.itemBucket(token, buckets: buckets))
            }
            offsets.append(Int32(bucketList.count))
        }
        var tensors: [String: Tensor] = [
            biasName: Tensor(shape: [1], values: [initialBias]),
            weightName: Tensor(shape: [buckets, 1], values: [Float](repeating: 0, count: buckets)),
        ]
        var rows: Set<String> = [weightName]
        if k > 0 {
            var generator = SeededGenerator(seed: seed, stream: 0xF_AC70)
            let values = (0..<(buckets * k)).map { _ in Float(generator.nextGaussian()) * scale }
            tensors[factorName] = Tensor(shape: [buckets, k], values: values)
            rows.insert(factorName)
        }
        let config = ModelConfig(family: family, objective: .bce, dim: max(k, 1), items: buckets, datasetId: datasetId)
        var model = TensorModel(config: config, tensors: tensors, rowTensorNames: rows, settings: [
            "hash": "fnv1a32", "hash_bits": String(hashBits), "rank": String(k), "catalogue_items": String(itemFeatures.count),
            "click_threshold": String(clickThreshold), "user_id_feature": userIdFeature ? "true" : "false",
            "seed": String(seed), "init_scale": String(scale),
        ])
        model.indexTables = [offsetTable: offsets, bucketTable: bucketList]
        return model
    }

    /// Reads a `lr` or `fm` checkpoint and checks its settings and tables.
    /// - Throws: `.shape` for another family or a tensor shaped otherwise; `.corrupt` for
    ///   settings or tables out of range.
    public static func open(_ path: String) throws -> (model: CTRModel, identity: String) {
        let (model, identity) = try TensorModel.open(path)
        guard model.config.family == .lr || model.config.family == .fm else {
            throw FedRecError(.shape, file: path, "is a \(model.config.modelType) model, expected lr or fm")
        }
        return (try CTRModel(model, file: path), identity)
    }

    /// Wraps a tensor model of family `lr` or `fm`, checking it (`file` names it in errors).
    public init(_ model: TensorModel, file: String) throws {
        func setting(_ key: String) throws -> String {
            guard let value = model.settings[key] else { throw FedRecError(.corrupt, file: file, "has no setting \(key)") }
            return value
        }
        guard try setting("hash") == "fnv1a32", let bits = Int(try setting("hash_bits")), (1...30).contains(bits),
            let rank = Int(try setting("rank")), rank >= 0, rank <= FedRecFile.maximumDim,
            let items = Int(try setting("catalogue_items")), items >= 1, items < Int(Int32.max),
            let threshold = Float(try setting("click_threshold")), threshold.isFinite
        else { throw FedRecError(.corrupt, file: file, "has CTR settings out of range (hash, hash_bits, rank, catalogue_items, click_threshold)") }
        let buckets = 1 << bits
        guard model.config.items == buckets, (model.config.family == .fm) == (rank > 0) else {
            throw FedRecError(.shape, file: file, "has \(model.config.items) rows for 2^\(bits) buckets, or a rank \(rank) that is not its family's")
        }
        _ = try model.tensor(Self.biasName, shape: [1], file: file)
        _ = try model.tensor(Self.weightName, shape: [buckets, 1], file: file)
        if rank > 0 { _ = try model.tensor(Self.factorName, shape: [buckets, rank], file: file) }
        let expectedRows: Set<String> = rank > 0 ? [Self.weightName, Self.factorName] : [Self.weightName]
        guard model.rowTensorNames == expectedRows, Set(model.tensors.keys) == expectedRows.union([Self.biasName]) else {
            throw FedRecError(.shape, file: file, "holds tensors \(model.tensors.keys.sorted()), expected \(expectedRows.union([Self.biasName]).sorted())")
        }
        guard let offsets = model.indexTables[Self.offsetTable], let list = model.indexTables[Self.bucketTable],
            offsets.count == items + 1, offsets.first == 0, Int(offsets[items]) == list.count,
            zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }), list.allSatisfy({ $0 >= 0 && Int($0) < buckets })
        else { throw FedRecError(.corrupt, file: file, "item feature tables do not index \(items) items into \(buckets) buckets") }
        self.model = model
        self.buckets = buckets
        self.rank = rank
        self.catalogueItems = items
        self.clickThreshold = threshold
        self.userIdFeature = model.settings["user_id_feature"] == "true"
        itemFeatureOffset = offsets
        itemFeatureBucket = list
        bias = model.tensors[Self.biasName]?.values.first ?? 0
        weights = model.tensors[Self.weightName]?.values ?? []
        factors = model.tensors[Self.factorName]?.values ?? []
    }

    /// The item's buckets.
    @inline(__always)
    public func itemBuckets(_ item: Int) -> ArraySlice<Int32> {
        itemFeatureBucket[Int(itemFeatureOffset[item])..<Int(itemFeatureOffset[item + 1])]
    }

    /// The user's buckets (hashed on the client, from what only the client holds).
    public func userBuckets(id: String, features: [String]) -> [Int32] {
        FeatureHash.userTokens(id: id, features: features, userId: userIdFeature).map { FeatureHash.userBucket($0, buckets: buckets) }
    }

    /// The model's click probability for an example whose active buckets are `active`;
    /// `sums` (at least `rank` floats) is the caller's workspace.
    @inline(__always)
    public func probability(_ active: UnsafeBufferPointer<Int32>, sums: UnsafeMutableBufferPointer<Float>) -> Float {
        weights.withUnsafeBufferPointer { w in
            factors.withUnsafeBufferPointer { v in
                CTRKernels.sigmoid(CTRKernels.logit(bias: bias, active: active, weight: w, factor: v, rank: rank, sums: sums))
            }
        }
    }
}

/// The CTR models' score and its gradient, on contiguous storage.
public enum CTRKernels {
    /// The logit w₀ + Σⱼ w[xⱼ] (+ FM's pairwise term in O(k n)) of one example whose active
    /// features are the indices `active` into `weight` (one value each) and `factor` (`rank`
    /// values each). `sums` (at least `rank` floats) receives s_f = Σⱼ v_{xⱼ,f}, which the
    /// gradient needs.
    @inline(__always)
    public static func logit(bias: Float, active: UnsafeBufferPointer<Int32>, weight: UnsafeBufferPointer<Float>,
                             factor: UnsafeBufferPointer<Float>, rank: Int, sums: UnsafeMutableBufferPointer<Float>) -> Float {
        var z = bias
        for j in active { z += weight[Int(j)] }
        guard rank > 0 else { return z }
        var squares: Float = 0
        for f in 0..<rank { sums[f] = 0 }
        for j in active {
            let base = Int(j) * rank
            for f in 0..<rank {
                let v = factor[base + f]
                sums[f] += v
                squares += v * v
            }
        }
        var pair: Float = 0
        for f in 0..<rank { pair += sums[f] * sums[f] }
        return z + 0.5 * (pair - squares)
    }

    /// The gradient of one example's loss BCE(σ(z), y) + (λ/2) Σ_occurrences (wⱼ² + ‖vⱼ‖²)
    /// with respect to each occurrence's weight and factors, from the values before any
    /// step: `out[q · (rank + 1)]` is ∂/∂w of occurrence q, then its rank factor
    /// derivatives, ∂z/∂v_{j,f} = s_f − v_{j,f} (Rendle 2010, eq. 4). `sums` must hold what
    /// `logit` left there; `g` is ∂BCE/∂z = σ(z) − y (also the bias's gradient).
    @inline(__always)
    public static func gradients(g: Float, active: UnsafeBufferPointer<Int32>, weight: UnsafeBufferPointer<Float>,
                                 factor: UnsafeBufferPointer<Float>, rank: Int, sums: UnsafeBufferPointer<Float>, l2: Float,
                                 into out: UnsafeMutableBufferPointer<Float>) {
        for (q, j) in active.enumerated() {
            let base = q * (rank + 1), row = Int(j) * rank
            out[base] = g + l2 * weight[Int(j)]
            for f in 0..<rank {
                let v = factor[row + f]
                out[base + 1 + f] = g * (sums[f] - v) + l2 * v
            }
        }
    }

    /// The pairwise term Σⱼ<ₗ ⟨v_{xⱼ}, v_{xₗ}⟩ by the naive double sum (tests compare).
    public static func naivePairwise(active: [Int32], factor: [Float], rank: Int) -> Double {
        var total = 0.0
        for a in active.indices {
            for b in active.indices where b > a {
                for f in 0..<rank { total += Double(factor[Int(active[a]) * rank + f]) * Double(factor[Int(active[b]) * rank + f]) }
            }
        }
        return total
    }

    /// σ(z), stable for large |z|.
    @inline(__always)
    public static func sigmoid(_ z: Float) -> Float {
        z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z))
    }

    /// The binary cross-entropy −y log p − (1 − y) log(1 − p) from the logit, stable.
    @inline(__always)
    public static func logLoss(logit z: Float, label y: Float) -> Float {
        max(z, 0) - z * y + log1p(exp(-abs(z)))
    }
}
