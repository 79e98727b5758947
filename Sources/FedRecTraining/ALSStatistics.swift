import FedRecData
import FedRecFormats
import FedRecModel
import FedRecWire
import FedRecSupport

/// The client side of `ALSStatistics`: what one solved user adds to the sums.
extension ALSStatistics {
    /// Adds one user's statistics (the user already solved: `embedding`, `bias`) to
    /// `rows`, whose slots hold the packed Gram block, then the right-hand side.
    /// - Parameter residualClip: Γ_r of private ALS: explicit targets and residuals are
    ///   clipped to ±Γ_r (`ALSContributionBounds`); nil: not clipped.
    /// - Parameter itemGram: false: leave the item Grams out (private ALS's mean-field
    ///   item Gram, which the server estimates from counts).
    static func accumulate(user train: Interactions, embedding p: [Float], bias: Float, model: ModelView, alpha: Float,
                           rows: RowAccumulator, dense: inout [Float], weight: Float, residualClip: Float? = nil,
                           itemGram: Bool = true) {
        let n = systemWidth(model.config), t = packedCount(n)
        var x = [Float](repeating: 0, count: n)
        var entries: [(item: Int32, rhsWeight: Float)] = []
        let gramWeight = contribute(user: train, embedding: p, bias: bias, model: model, alpha: alpha, dense: &dense,
                                    residualClip: residualClip, x: &x) { entries.append(($0, $1)) }
        // The user's packed outer product is the same for every item it rated: form it once.
        var outer = [Float](repeating: 0, count: t)
        outer.withUnsafeMutableBufferPointer { o in
            x.withUnsafeBufferPointer { x in addPackedOuter(o.baseAddress!, x.baseAddress!, n: n, scale: 1) }
        }
        outer.withUnsafeBufferPointer { outer in
            x.withUnsafeBufferPointer { x in
                for (item, rhsWeight) in entries {
                    let slot = rows.slot(item)
                    rows.countClient(slot: slot, weight: weight)
                    rows.withSlot(slot) { v in
                        if itemGram { VectorKernels.addScaled(v.baseAddress!, outer.baseAddress!, n: t, scale: gramWeight) }
                        VectorKernels.addScaled(v.baseAddress! + t, x.baseAddress!, n: n, scale: rhsWeight)
                    }
                }
            }
        }
    }

    /// What one solved user contributes, apart from the item rows: sets `x` (p, then 1
    /// for the bias when explicit), adds the user's share of the dense part, and hands
    /// each rated item with the weight of x in its right-hand side to `entry`, in the
    /// user's order.
    /// - Returns: the weight of x xᵀ in the Gram of each item the user rated (α for
    ///   WALS, c − 1 with c = 1 + α; 1 explicit).
    static func contribute(user train: Interactions, embedding p: [Float], bias: Float, model: ModelView, alpha: Float,
                           dense: inout [Float], residualClip: Float?, x: inout [Float],
                           entry: (_ item: Int32, _ rhsWeight: Float) -> Void) -> Float {
        func bounded(_ value: Float) -> Float {
            guard let residualClip else { return value }
            return min(max(value, -residualClip), residualClip)
        }
        let d = model.config.dim
        let wals = model.config.objective == .wals
        let n = wals ? d : d + 1
        for k in 0..<n { x[k] = k < d ? p[k] : 1 }
        if wals {
            // The dense Σ p pᵀ is the full d × d matrix.
            var outer = [Float](repeating: 0, count: n * n)
            outer.withUnsafeMutableBufferPointer { o in
                x.withUnsafeBufferPointer { x in VectorKernels.addOuter(o.baseAddress!, x.baseAddress!, n: n, scale: 1) }
            }
            for i in 0..<(d * d) { dense[i] += outer[i] }
        }
        x.withUnsafeBufferPointer { x in
            for (e, item) in train.items.enumerated() {
                if wals {
                    entry(item, 1 + alpha)
                } else {
                    let r = train.ratings[e]
                    let dot = VectorKernels.dot(x.baseAddress!, model.items.embedding(Int(item)), n: d)
                    dense[0] += bounded(r - bias - model.items.bias(Int(item)) - dot)
                    dense[1] += 1
                    entry(item, bounded(r - model.globalBias - bias))
                }
            }
        }
        return wals ? alpha : 1
    }
}

/// A shard's ALS statistics gathered by item, for a shard's update written at once: each
/// user's x and each rating (item, user, weight of x in the right-hand side) are kept,
/// a few bytes a rating, and the item rows are then formed one item at a time in ascending
/// order, every item's users in the order they were read, and the Gram blocks streamed to
/// a `SpilledTensor`. Memory follows the shard's ratings, not the catalogue times the
/// Gram's size, and every row holds the bits `accumulate` gives it (the same sums in the
/// same order).
final class ALSItemCollector {
    let n: Int
    let items: Int
    let itemGram: Bool
    private var gramWeight: Float = 1
    private var xs: [Float] = []
    private var userWeight: [Float] = []
    private var entryItem: [Int32] = []
    private var entryUser: [Int32] = []
    private var entryRHS: [Float] = []
    private var x: [Float]

    init(config: ModelConfig, itemGram: Bool) {
        n = ALSStatistics.systemWidth(config)
        items = config.items
        self.itemGram = itemGram
        x = [Float](repeating: 0, count: n)
    }

    /// Adds one solved user (as `ALSStatistics.accumulate` does), counted with `weight`.
    func add(user train: Interactions, embedding p: [Float], bias: Float, model: ModelView, alpha: Float,
             dense: inout [Float], weight: Float, residualClip: Float?) {
        let user = Int32(userWeight.count)
        gramWeight = ALSStatistics.contribute(user: train, embedding: p, bias: bias, model: model, alpha: alpha, dense: &dense,
                                              residualClip: residualClip, x: &x) { item, rhsWeight in
            entryItem.append(item)
            entryUser.append(user)
            entryRHS.append(rhsWeight)
        }
        xs += x
        userWeight.append(weight)
    }

    /// The touched rows in ascending order, their client counts and weights, and
    /// right-hand sides (n values a row); the packed Gram blocks go to `gram`, a row at a
    /// time, which is finished on return.
    func rows(gram: SpilledTensor) throws -> (rows: [Int32], clients: [Int32], weights: [Float], rhs: [Float]) {
        let t = ALSStatistics.packedCount(n)
        // A stable counting sort of the ratings by item: each item's users stay in order.
        var start = [Int32](repeating: 0, count: items + 1)
        for item in entryItem { start[Int(item) + 1] += 1 }
        for i in 0..<items { start[i + 1] += start[i] }
        var next = start
        var order = [Int32](repeating: 0, count: entryItem.count)
        for (e, item) in entryItem.enumerated() {
            order[Int(next[Int(item)])] = Int32(e)
            next[Int(item)] += 1
        }
        var rows: [Int32] = [], clients: [Int32] = [], weights: [Float] = [], rhs: [Float] = []
        var block = [Float](repeating: 0, count: t)
        var right = [Float](repeating: 0, count: n)
        try xs.withUnsafeBufferPointer { xs in
            for item in 0..<items where start[item + 1] > start[item] {
                var count: Int32 = 0, weight: Float = 0
                for k in 0..<t { block[k] = 0 }
                for k in 0..<n { right[k] = 0 }
                block.withUnsafeMutableBufferPointer { block in
                    right.withUnsafeMutableBufferPointer { right in
                        for o in Int(start[item])..<Int(start[item + 1]) {
                            let e = Int(order[o]), user = Int(entryUser[e])
                            count += 1
                            weight += userWeight[user]
                            let x = xs.baseAddress! + user * n
                            if itemGram { ALSStatistics.addPackedOuter(block.baseAddress!, x, n: n, scale: gramWeight) }
                            VectorKernels.addScaled(right.baseAddress!, x, n: n, scale: entryRHS[e])
                        }
                    }
                }
                rows.append(Int32(item))
                clients.append(count)
                weights.append(weight)
                rhs += right
                try block.withUnsafeBytes { try gram.append($0) }
            }
        }
        try gram.finish()
        return (rows, clients, weights, rhs)
    }
}

extension ALSStatistics {
    /// The user's interactions, or K of them drawn uniformly without replacement (a
    /// partial Fisher–Yates shuffle) when there are more: private ALS's cap on the items
    /// one user contributes to (Chien et al. 2021). Which K depends only on the user's own
    /// data and the generator, so the sensitivity bound holds whatever is drawn.
    static func bounded(_ train: Interactions, maxItems: Int, using generator: inout SeededGenerator) -> Interactions {
        guard train.count > maxItems else { return train }
        var order = Array(0..<train.count)
        for i in 0..<maxItems {
            let j = i + generator.nextIndex(below: train.count - i)
            order.swapAt(i, j)
        }
        let kept = order[0..<maxItems].sorted()
        return Interactions(items: kept.map { train.items[$0] }, ratings: kept.map { train.ratings[$0] }, times: kept.map { train.times[$0] })
    }

    /// `p` scaled to L2 norm at most `clip` (a hair below it, so Float rounding cannot
    /// take the norm past the bound the sensitivity assumes).
    static func clipped(_ p: [Float], to clip: Float) -> [Float] {
        let norm = p.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        guard norm > Double(clip) * (1 - 0x1p-20) else { return p }
        let scale = Double(clip) / norm * (1 - 0x1p-18)
        return p.map { Float(Double($0) * scale) }
    }
}
