import FedRecData
import FedRecModel
import FedRecWire

/// The client side of `ALSStatistics`: what one solved user adds to the sums.
extension ALSStatistics {
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
