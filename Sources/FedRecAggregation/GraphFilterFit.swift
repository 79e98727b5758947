import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecWire

/// The server step of a graph filter (`GraphFilterModel`): from the round's summed
/// co-occurrence C and item degrees d, P̃_ij = C_ij / √(d_i d_j) (both triangles), and
/// its top-k eigenvectors by randomised subspace iteration (`TopEigenpairs`) with the
/// model's settings. Deterministic: the same sum and settings give the same model.
public enum GraphFilterFit {
    /// The next model: `modelPath`'s settings fitted to `sum`.
    /// - Throws: `.mismatch` when the sum was computed from another model or round;
    ///   `.shape` when it is of another dataset or shape.
    public static func apply(_ sum: ItemPairSum, sumFile: String, to modelPath: String, threads: Int) throws -> GraphFilterModel {
        let (model, identity) = try GraphFilterModel.open(modelPath)
        try sum.header.requireComputed(from: model.config, identity: identity, round: model.round, modelPath: modelPath, sumFile: sumFile)
        let filter = normalisedFilter(sum)
        let (values, vectors) = TopEigenpairs.compute(
            filter, count: model.eigenvectorCount, oversampling: model.settings.oversampling, iterations: model.settings.powerIterations,
            seed: model.settings.seed, threads: threads)
        var next = GraphFilterModel(
            config: model.config, round: model.round + 1, itemDegree: sum.itemCount.map { Float($0) }, filter: filter,
            eigenvectors: vectors, eigenvalues: values.map { Float($0) }, settings: model.settings)
        next.notes = model.notes
        return next
    }

    /// P̃ = D^{-1/2} C D^{-1/2} with both triangles, from C's upper triangle: row i holds
    /// first the entries (j, i) of the rows j < i, then its own (i, j ≥ i), so every row's
    /// columns ascend.
    static func normalisedFilter(_ sum: ItemPairSum) -> SparseSymmetricMatrix {
        let n = sum.itemCount.count
        let inverseRoot = sum.itemCount.map { $0 > 0 ? 1 / $0.squareRoot() : 0 }
        var rowLength = [Int](repeating: 0, count: n)
        for i in 0..<n {
            for e in sum.offsets[i]..<sum.offsets[i + 1] {
                rowLength[i] += 1
                let j = Int(sum.columns[e])
                if j != i { rowLength[j] += 1 }
            }
        }
        var offsets = [Int](repeating: 0, count: n + 1)
        for i in 0..<n { offsets[i + 1] = offsets[i] + rowLength[i] }
        var columns = [Int32](repeating: 0, count: offsets[n])
        var values = [Float](repeating: 0, count: offsets[n])
        var cursor = Array(offsets.dropLast())
        for i in 0..<n {
            for e in sum.offsets[i]..<sum.offsets[i + 1] {
                let j = Int(sum.columns[e])
                let v = Float(sum.values[e] * inverseRoot[i] * inverseRoot[j])
                columns[cursor[i]] = Int32(j)
                values[cursor[i]] = v
                cursor[i] += 1
                if j != i {
                    columns[cursor[j]] = Int32(i)
                    values[cursor[j]] = v
                    cursor[j] += 1
                }
            }
        }
        return SparseSymmetricMatrix(size: n, offsets: offsets, columns: columns, values: values)
    }
}
