import FedRecSupport

/// The leading eigenpairs of a large sparse symmetric positive semi-definite matrix by
/// randomised subspace iteration with a Rayleigh–Ritz step (Halko, Martinsson & Tropp,
/// SIAM Review 2011, Algorithms 4.4 and 5.3): a seeded Gaussian block of k + p vectors is
/// multiplied by the matrix q + 1 times, orthonormalised after each product, and the
/// matrix projected on the block is diagonalised exactly (`SymmetricEigen`).
///
/// Only products with the matrix are needed: q + 2 sparse block products and q + 2
/// orthonormalisations of an n × (k + p) block, O((q + 2)(nnz + n (k + p)) (k + p)). The
/// error in the k-th vector falls as (λ_{k+p+1}/λ_k)^(2q+1).
public enum TopEigenpairs {
    /// The `count` largest eigenvalues (descending) of `matrix` and their eigenvectors as
    /// the rows of an n × count row-major matrix (vector j is column j).
    /// - Parameters:
    ///   - oversampling: p, extra vectors carried to sharpen the last ones kept.
    ///   - iterations: q, the power iterations after the first product.
    ///   - seed: the starting block's seed (deterministic: same inputs, same vectors).
    ///   - threads: workers of the block products.
    public static func compute(_ matrix: SparseSymmetricMatrix, count: Int, oversampling: Int, iterations: Int, seed: UInt64,
                               threads: Int) -> (values: [Double], vectors: [Float]) {
        let n = matrix.size
        let k = min(count, n)
        guard k > 0 else { return ([], []) }
        let b = min(n, k + max(0, oversampling))
        var generator = SeededGenerator(seed: seed)
        var block = [Float](repeating: 0, count: n * b)
        for i in 0..<block.count { block[i] = Float(gaussian(&generator)) }
        orthonormalise(&block, rows: n, width: b, generator: &generator)
        for _ in 0...max(0, iterations) {
            block = matrix.multiply(block, width: b, threads: threads)
            orthonormalise(&block, rows: n, width: b, generator: &generator)
        }
        // Rayleigh–Ritz: T = Qᵀ M Q (b × b), T = U Λ Uᵀ, vectors Q U.
        let product = matrix.multiply(block, width: b, threads: threads)
        var t = [Double](repeating: 0, count: b * b)
        block.withUnsafeBufferPointer { q in
            product.withUnsafeBufferPointer { mq in
                for r in 0..<n {
                    let qr = q.baseAddress! + r * b, mr = mq.baseAddress! + r * b
                    for i in 0..<b {
                        let a = Double(qr[i])
                        if a == 0 { continue }
                        for j in 0..<b { t[i * b + j] += a * Double(mr[j]) }
                    }
                }
            }
        }
        for i in 0..<b { for j in (i + 1)..<max(i + 1, b) { let s = (t[i * b + j] + t[j * b + i]) / 2; t[i * b + j] = s; t[j * b + i] = s } }
        let (values, u) = SymmetricEigen.decompose(t, n: b)
        var vectors = [Float](repeating: 0, count: n * k)
        var row = [Double](repeating: 0, count: k)
        for r in 0..<n {
            for j in 0..<k { row[j] = 0 }
            for i in 0..<b {
                let q = Double(block[r * b + i])
                if q == 0 { continue }
                for j in 0..<k { row[j] += q * u[i * b + j] }
            }
            for j in 0..<k { vectors[r * k + j] = Float(row[j]) }
        }
        return (Array(values.prefix(k)), vectors)
    }

    /// Orthonormalises the columns of `block` (rows × width, row-major) in place by
    /// modified Gram–Schmidt, twice ("twice is enough", Giraud et al. 2005), in Double. A
    /// column that vanishes (the block spans more than the matrix's range) is replaced by
    /// a fresh random one, orthogonalised in turn.
    static func orthonormalise(_ block: inout [Float], rows n: Int, width b: Int, generator: inout SeededGenerator) {
        var columns = [[Double]](repeating: [], count: b)
        for j in 0..<b { columns[j] = (0..<n).map { Double(block[$0 * b + j]) } }
        for j in 0..<b {
            var attempts = 0
            while true {
                let before = norm(columns[j])
                for _ in 0..<2 {
                    for i in 0..<j {
                        var dot = 0.0
                        for r in 0..<n { dot += columns[i][r] * columns[j][r] }
                        for r in 0..<n { columns[j][r] -= dot * columns[i][r] }
                    }
                }
                let after = norm(columns[j])
                if after > 1e-10 * max(before, 1e-300) && after > 0 {
                    for r in 0..<n { columns[j][r] /= after }
                    break
                }
                attempts += 1
                precondition(attempts < 8, "a random vector stayed in the span of the others")
                columns[j] = (0..<n).map { _ in gaussian(&generator) }
            }
        }
        for j in 0..<b { for r in 0..<n { block[r * b + j] = Float(columns[j][r]) } }
    }

    static func norm(_ x: [Double]) -> Double {
        var s = 0.0
        for v in x { s += v * v }
        return s.squareRoot()
    }

    /// A standard normal deviate (Box–Muller on two uniform draws).
    static func gaussian(_ generator: inout SeededGenerator) -> Double {
        let u1 = Double(generator.next() >> 11) * 0x1p-53, u2 = Double(generator.next() >> 11) * 0x1p-53
        return (-2 * log(max(u1, 0x1p-53))).squareRoot() * cos(2 * Double.pi * u2)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
