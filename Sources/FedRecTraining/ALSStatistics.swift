import FedRecData
import FedRecModel
import FedRecWire
import FedRecSupport

/// The client side of `ALSStatistics`: what one solved user adds to the sums.
extension ALSStatistics {
    /// Adds one user's statistics (the user already solved: `embedding`, `bias`).
    /// - Parameter residualClip: Γ_r of private ALS: explicit targets and residuals are
    ///   clipped to ±Γ_r (`ALSContributionBounds`); nil: not clipped.
    /// - Parameter itemGram: false: leave the item Grams out (private ALS's mean-field
    ///   item Gram, which the server estimates from counts).
    static func accumulate(user train: Interactions, embedding p: [Float], bias: Float, model: ModelView, alpha: Float,
                           rows: RowAccumulator, dense: inout [Float], weight: Float, residualClip: Float? = nil,
                           itemGram: Bool = true) {
        func bounded(_ value: Float) -> Float {
            guard let residualClip else { return value }
            return min(max(value, -residualClip), residualClip)
        }
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
                        rhsWeight = bounded(r - model.globalBias - bias)
                        let dot = VectorKernels.dot(x.baseAddress!, model.items.embedding(Int(item)), n: d)
                        dense[0] += bounded(r - bias - model.items.bias(Int(item)) - dot)
                        dense[1] += 1
                    }
                    rows.withSlot(slot) { v in
                        if itemGram { VectorKernels.addScaled(v.baseAddress!, outer.baseAddress!, n: n * n, scale: gramWeight) }
                        VectorKernels.addScaled(v.baseAddress! + n * n, x.baseAddress!, n: n, scale: rhsWeight)
                    }
                }
            }
        }
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
