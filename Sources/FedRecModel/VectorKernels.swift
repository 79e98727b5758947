/// Small dense kernels for the hot loops of ALS and scoring, written over raw pointers
/// with 8-wide SIMD so they vectorise; sums run in a fixed order, so results are
/// bit-identical run to run. `@inlinable`: the training and aggregation layers call them in
/// their innermost loops, from other modules.
public enum VectorKernels {
    /// acc[a·n + b] += scale · x[a] · x[b] for all a, b < n (a rank-one update of an
    /// n × n row-major matrix).
    /// - Complexity: O(n²).
    @inlinable @inline(__always)
    public static func addOuter(_ acc: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, n: Int, scale: Float) {
        for a in 0..<n { addScaled(acc + a * n, x, n: n, scale: scale * x[a]) }
    }

    /// acc[i] += scale · x[i] for i < n.
    @inlinable @inline(__always)
    public static func addScaled(_ acc: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, n: Int, scale: Float) {
        let wide = n & ~7
        var i = 0
        while i < wide {
            let current = UnsafeRawPointer(acc + i).loadUnaligned(as: SIMD8<Float>.self)
            let xs = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(acc + i).storeBytes(of: current + scale * xs, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            acc[i] += scale * x[i]
            i += 1
        }
    }

    /// Σ a[i] · b[i] for i < n.
    @inlinable @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, n: Int) -> Float {
        let wide = n & ~7
        var sum = SIMD8<Float>(repeating: 0)
        var i = 0
        while i < wide {
            sum += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var total = sum.sum()
        while i < n {
            total += a[i] * b[i]
            i += 1
        }
        return total
    }
}
