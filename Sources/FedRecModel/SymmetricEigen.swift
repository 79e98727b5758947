/// Eigenvalues and eigenvectors of small dense symmetric matrices by the cyclic Jacobi
/// method (Golub & Van Loan, Matrix Computations, 4th ed., §8.5): rotations zero each
/// off-diagonal entry in turn until the off-diagonal mass is negligible. Accurate to
/// working precision for every eigenvalue, small or large; O(n³) a sweep, a handful of
/// sweeps, so for the few hundred unknowns of a Rayleigh–Ritz step.
public enum SymmetricEigen {
    /// The eigen decomposition of `a` (n × n, row-major, symmetric; only used, not kept).
    /// - Returns: eigenvalues descending, and the eigenvectors as the columns of an n × n
    ///   row-major matrix in the same order (column j belongs to value j).
    /// - Complexity: O(n³) per sweep; sweeps stop when the off-diagonal Frobenius norm is
    ///   below 1e-15 of the whole, or after 60.
    public static func decompose(_ a: [Double], n: Int) -> (values: [Double], vectors: [Double]) {
        precondition(a.count == n * n, "a must be n × n")
        var m = a
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        var total = 0.0
        for x in m { total += x * x }
        m.withUnsafeMutableBufferPointer { m in
            v.withUnsafeMutableBufferPointer { v in
                for _ in 0..<60 {
                    var off = 0.0
                    for p in 0..<n { for q in (p + 1)..<max(p + 1, n) { off += 2 * m[p * n + q] * m[p * n + q] } }
                    if off <= 1e-30 * total || off == 0 { break }
                    for p in 0..<n {
                        for q in (p + 1)..<max(p + 1, n) {
                            let apq = m[p * n + q]
                            if apq == 0 { continue }
                            // The rotation (c, s) that zeroes m[p][q] (Golub & Van Loan, Alg. 8.5.1).
                            let tau = (m[q * n + q] - m[p * n + p]) / (2 * apq)
                            let t = (tau >= 0 ? 1.0 : -1.0) / (abs(tau) + (1 + tau * tau).squareRoot())
                            let c = 1 / (1 + t * t).squareRoot(), s = t * c
                            // m ← Jᵀ m J, on rows and columns p and q.
                            for k in 0..<n {
                                let mkp = m[k * n + p], mkq = m[k * n + q]
                                m[k * n + p] = c * mkp - s * mkq
                                m[k * n + q] = s * mkp + c * mkq
                            }
                            for k in 0..<n {
                                let mpk = m[p * n + k], mqk = m[q * n + k]
                                m[p * n + k] = c * mpk - s * mqk
                                m[q * n + k] = s * mpk + c * mqk
                            }
                            for k in 0..<n {
                                let vkp = v[k * n + p], vkq = v[k * n + q]
                                v[k * n + p] = c * vkp - s * vkq
                                v[k * n + q] = s * vkp + c * vkq
                            }
                        }
                    }
                }
            }
        }
        let order = (0..<n).sorted { m[$0 * n + $0] > m[$1 * n + $1] || (m[$0 * n + $0] == m[$1 * n + $1] && $0 < $1) }
        var vectors = [Double](repeating: 0, count: n * n)
        for (j, source) in order.enumerated() {
            for i in 0..<n { vectors[i * n + j] = v[i * n + source] }
        }
        return (order.map { m[$0 * n + $0] }, vectors)
    }
}
