import FedRecModel
import FedRecFormats

/// The text part of a content-aware implicit ALS model: a linear map W [d, m] from an
/// item's frozen text embedding t_i (m values, `TextEmbeddingTable`) to item-embedding
/// space. Item i's vector is q_i = W t_i + e_i, with the free embedding e_i = v_i* − W t_i
/// for a warm item (v_i* its ALS solution, Hu, Koren & Volinsky 2008) and e_i = 0 for an
/// item no client trained, so cold items still get a vector from their text.
///
/// W is fitted on the server from the federated item solutions v_i* alone (which the
/// server computes anyway from summed statistics): no client data is involved, clients
/// are unchanged and federated ALS stays exactly centralised ALS on the warm items.
public enum TextProjection {
    /// Ridge regression W = argmin Σ_i ‖v_i − W t_i‖² + λ ‖W‖²_F over `items`, solved
    /// as (TᵀT + λI) Wᵀ = TᵀV by Cholesky in Double.
    /// - Parameters:
    ///   - embeddings: item embeddings, items × d row-major (rows `items` are the targets).
    ///   - items: the warm items to fit on.
    ///   - text: the text table (same item indices).
    ///   - l2: λ ≥ 0; with λ = 0, TᵀT must be positive definite.
    /// - Returns: W, d × m row-major, or nil when the system is not positive definite.
    /// - Complexity: O(|items| · m² + m³ + |items| · m · d).
    public static func fit(embeddings: [Float], dim d: Int, items: [Int], text: TextEmbeddingTable, l2: Double) -> [Float]? {
        let m = text.dim
        var a = [Double](repeating: 0, count: m * m)
        var b = [Double](repeating: 0, count: m * d)
        var t = [Double](repeating: 0, count: m)
        text.vectors.withUnsafeBufferPointer { tv in
            embeddings.withUnsafeBufferPointer { q in
                a.withUnsafeMutableBufferPointer { a in
                    b.withUnsafeMutableBufferPointer { b in
                        t.withUnsafeMutableBufferPointer { t in
                            for item in items {
                                for j in 0..<m { t[j] = Double(tv[item * m + j]) }
                                // Upper triangle of TᵀT.
                                for x in 0..<m {
                                    let tx = t[x]
                                    if tx == 0 { continue }
                                    for y in x..<m { a[x * m + y] += tx * t[y] }
                                    for k in 0..<d { b[x * d + k] += tx * Double(q[item * d + k]) }
                                }
                            }
                            for x in 0..<m {
                                for y in 0..<x { a[x * m + y] = a[y * m + x] }
                                a[x * m + x] += l2
                            }
                        }
                    }
                }
            }
        }
        let solved = a.withUnsafeMutableBufferPointer { a in b.withUnsafeMutableBufferPointer { b in Cholesky.solve(a, b, n: m, columns: d) } }
        guard solved else { return nil }
        // b is Wᵀ (m × d); W is d × m.
        var w = [Float](repeating: 0, count: d * m)
        for j in 0..<m { for k in 0..<d { w[k * m + j] = Float(b[j * d + k]) } }
        return w
    }

    /// Writes W t_i into item `item`'s row of `embeddings`.
    /// - Complexity: O(d · m).
    public static func project(_ w: [Float], dim d: Int, text: TextEmbeddingTable, item: Int, into embeddings: inout [Float]) {
        let m = text.dim
        for k in 0..<d {
            var s = 0.0
            for j in 0..<m { s += Double(w[k * m + j]) * Double(text.vectors[item * m + j]) }
            embeddings[item * d + k] = Float(s)
        }
    }
}
