/// Scores every item for batches of users with a `GraphFilterModel`:
/// s_u = r_u P̃ + α r_u D_I^{-1/2} V Vᵀ D_I^{1/2} (GF-CF, Shen et al. 2021, eq. 13), with
/// r_u the user's own (training) items, known only on the client. The linear part gathers
/// the user's rows of P̃; the low-pass part projects the user on the first k' eigenvectors
/// (t = Σ_{i∈u} d_i^{-1/2} v_i) and takes t · v_j √d_j for every item j, a batch of users
/// at a time so each row of V is read once per batch. One scorer per thread: its
/// workspace is reused.
public final class GraphFilterScorer {
    public let model: GraphFilterModel
    /// α in use (the model's, or a caller's choice).
    public let filterWeight: Float
    /// k' ≤ k, the eigenvectors in use.
    public let eigenvectors: Int
    let inverseRoot: [Float]
    let root: [Float]
    var projection: [Float] = []

    /// - Parameters:
    ///   - filterWeight: α instead of the model's setting.
    ///   - eigenvectors: use only the first k' of the model's k eigenvectors.
    public init(model: GraphFilterModel, filterWeight: Float? = nil, eigenvectors: Int? = nil) {
        self.model = model
        self.filterWeight = filterWeight ?? model.settings.filterWeight
        self.eigenvectors = min(eigenvectors ?? model.eigenvectorCount, model.eigenvectorCount)
        inverseRoot = model.itemDegree.map { $0 > 0 ? 1 / $0.squareRoot() : 0 }
        root = model.itemDegree.map { $0.squareRoot() }
    }

    /// Writes the scores of `users` (each a list of item indices below the model's items)
    /// into `scores`, `users.count` rows of `items` values.
    public func score(users: [[Int32]], into scores: inout [Float]) {
        let n = model.config.items, k = model.eigenvectorCount, kk = eigenvectors, batch = users.count
        if scores.count != batch * n { scores = [Float](repeating: 0, count: batch * n) }
        if projection.count < batch * max(kk, 1) { projection = [Float](repeating: 0, count: batch * max(kk, 1)) }
        let filter = model.filter
        scores.withUnsafeMutableBufferPointer { out in
            filter.offsets.withUnsafeBufferPointer { offsets in
                filter.columns.withUnsafeBufferPointer { columns in
                    filter.values.withUnsafeBufferPointer { values in
                        for (b, items) in users.enumerated() {
                            let row = out.baseAddress! + b * n
                            for j in 0..<n { row[j] = 0 }
                            for item in items {
                                let i = Int(item)
                                for e in offsets[i]..<offsets[i + 1] { row[Int(columns[e])] += values[e] }
                            }
                        }
                    }
                }
            }
            guard filterWeight != 0, kk > 0 else { return }
            model.eigenvectors.withUnsafeBufferPointer { v in
                projection.withUnsafeMutableBufferPointer { t in
                    for (b, items) in users.enumerated() {
                        let tb = t.baseAddress! + b * kk
                        for f in 0..<kk { tb[f] = 0 }
                        for item in items {
                            let i = Int(item), w = inverseRoot[i]
                            if w == 0 { continue }
                            VectorKernels.addScaled(tb, v.baseAddress! + i * k, n: kk, scale: w)
                        }
                    }
                    for j in 0..<n {
                        let scale = filterWeight * root[j]
                        if scale == 0 { continue }
                        let vj = v.baseAddress! + j * k
                        for b in 0..<batch {
                            out[b * n + j] += scale * VectorKernels.dot(t.baseAddress! + b * kk, vj, n: kk)
                        }
                    }
                }
            }
        }
    }
}
