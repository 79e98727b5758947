/// Solves small symmetric positive-definite systems A x = b in place by Cholesky
/// factorisation, in Double for stability. Used for ridge solves of one user or one item
/// (d + 1 unknowns), so a few hundred unknowns at most.
public enum Cholesky {
    /// Overwrites `a` (n × n, row-major, symmetric positive definite) with its Cholesky
    /// factor and `b` with the solution.
    /// - Returns: false if `a` is not positive definite (b is then left unspecified).
    /// - Complexity: O(n³/3).
    @discardableResult
    public static func solve(_ a: UnsafeMutableBufferPointer<Double>, _ b: UnsafeMutableBufferPointer<Double>, n: Int) -> Bool {
        guard factor(a, n: n) else { return false }
        // Forward: L y = b.
        for i in 0..<n {
            var s = b[i]
            for k in 0..<i { s -= a[i * n + k] * b[k] }
            b[i] = s / a[i * n + i]
        }
        // Backward: Lᵀ x = y.
        for i in stride(from: n - 1, through: 0, by: -1) {
            var s = b[i]
            for k in (i + 1)..<max(i + 1, n) { s -= a[k * n + i] * b[k] }
            b[i] = s / a[i * n + i]
        }
        return true
    }

    /// Solves A X = B for `columns` right-hand sides at once: `b` is n × columns,
    /// row-major, and is overwritten with X. One factorisation serves every column.
    /// - Returns: false if `a` is not positive definite.
    /// - Complexity: O(n³/3 + n² · columns).
    @discardableResult
    public static func solve(_ a: UnsafeMutableBufferPointer<Double>, _ b: UnsafeMutableBufferPointer<Double>, n: Int, columns m: Int) -> Bool {
        guard factor(a, n: n) else { return false }
        // Forward: L Y = B, row by row over all columns.
        for i in 0..<n {
            for k in 0..<i {
                let l = a[i * n + k]
                if l == 0 { continue }
                for c in 0..<m { b[i * m + c] -= l * b[k * m + c] }
            }
            let diagonal = a[i * n + i]
            for c in 0..<m { b[i * m + c] /= diagonal }
        }
        // Backward: Lᵀ X = Y.
        for i in stride(from: n - 1, through: 0, by: -1) {
            for k in (i + 1)..<max(i + 1, n) {
                let l = a[k * n + i]
                if l == 0 { continue }
                for c in 0..<m { b[i * m + c] -= l * b[k * m + c] }
            }
            let diagonal = a[i * n + i]
            for c in 0..<m { b[i * m + c] /= diagonal }
        }
        return true
    }

    /// Overwrites the lower triangle of `a` with L, where A = L Lᵀ.
    /// - Returns: false if `a` is not positive definite.
    static func factor(_ a: UnsafeMutableBufferPointer<Double>, n: Int) -> Bool {
        for j in 0..<n {
            var diagonal = a[j * n + j]
            for k in 0..<j { diagonal -= a[j * n + k] * a[j * n + k] }
            guard diagonal > 0 else { return false }
            let root = diagonal.squareRoot()
            a[j * n + j] = root
            for i in (j + 1)..<max(j + 1, n) {
                var s = a[i * n + j]
                for k in 0..<j { s -= a[i * n + k] * a[j * n + k] }
                a[i * n + j] = s / root
            }
        }
        return true
    }
}
