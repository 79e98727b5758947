/// The Gram matrix QᵀQ = Σ_i q_i q_iᵀ of all item embeddings, which every implicit-ALS
/// user solve needs (each unobserved pair is a negative of confidence 1; Hu, Koren &
/// Volinsky 2008, §4). Summing it reads the whole catalogue, O(items · d²), so the server
/// keeps it in each wals checkpoint (`TensorName.itemGram`) and updates it from the rows a
/// round changed; readers then never sum the catalogue.
public enum ItemGram {
    /// Σ_i q_i q_iᵀ over the rows of a row-major matrix, accumulated in Double.
    /// - Complexity: O(rows · dim²).
    public static func compute(_ q: UnsafeBufferPointer<Float>, rows: Int, dim d: Int) -> [Double] {
        var g = [Double](repeating: 0, count: d * d)
        g.withUnsafeMutableBufferPointer { g in
            for i in 0..<rows { addUpper(g, q.baseAddress! + i * d, dim: d, sign: 1) }
            mirror(g, dim: d)
        }
        return g
    }

    /// `gram` with rows `old` replaced by rows `new` (the same items, d values each):
    /// G − Σ old oldᵀ + Σ new newᵀ.
    /// - Complexity: O(changed rows · dim²).
    static func replacing(_ gram: [Double], old: [Float], new: [Float], dim d: Int) -> [Double] {
        precondition(old.count == new.count && gram.count == d * d)
        var g = gram
        g.withUnsafeMutableBufferPointer { g in
            // Work on the upper triangle, then mirror it, so the result stays symmetric.
            for a in 0..<d { for b in 0..<a { g[a * d + b] = 0 } }
            old.withUnsafeBufferPointer { old in
                new.withUnsafeBufferPointer { new in
                    for r in 0..<(old.count / max(d, 1)) {
                        addUpper(g, old.baseAddress! + r * d, dim: d, sign: -1)
                        addUpper(g, new.baseAddress! + r * d, dim: d, sign: 1)
                    }
                }
            }
            mirror(g, dim: d)
        }
        return g
    }

    @inline(__always)
    private static func addUpper(_ g: UnsafeMutableBufferPointer<Double>, _ q: UnsafePointer<Float>, dim d: Int, sign: Double) {
        for a in 0..<d {
            let qa = sign * Double(q[a])
            if qa == 0 { continue }
            for b in a..<d { g[a * d + b] += qa * Double(q[b]) }
        }
    }

    private static func mirror(_ g: UnsafeMutableBufferPointer<Double>, dim d: Int) {
        for a in 0..<d { for b in 0..<a { g[a * d + b] = g[b * d + a] } }
    }
}
