/// Small dense kernels for the hot loops of ALS, NCF and scoring, written over raw pointers
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

    /// acc[j] += Σ_r scales[r · scaleStride] · rows[r · rowStride + j] for j < n and
    /// r < count: a row of a small matrix product, the terms of each acc[j] added in r
    /// order (as the scalar loop `for r { acc[j] += scales[r] * rows[r][j] }` adds them),
    /// 32, 16 or 8 columns at a time held in registers.
    /// - Complexity: O(n · count).
    @inlinable
    public static func addScaledRows(_ acc: UnsafeMutablePointer<Float>, n: Int, rows: UnsafePointer<Float>, rowStride: Int,
                                     scales: UnsafePointer<Float>, scaleStride: Int, count: Int) {
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
        @inline(__always) func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self) }
        var j = 0
        while j + 32 <= n {
            var a0 = load(acc + j), a1 = load(acc + j + 8), a2 = load(acc + j + 16), a3 = load(acc + j + 24)
            var row = rows + j, scale = scales
            for _ in 0..<count {
                let s = scale.pointee
                a0 += s * load(row)
                a1 += s * load(row + 8)
                a2 += s * load(row + 16)
                a3 += s * load(row + 24)
                row += rowStride
                scale += scaleStride
            }
            store(a0, acc + j); store(a1, acc + j + 8); store(a2, acc + j + 16); store(a3, acc + j + 24)
            j += 32
        }
        if j + 16 <= n {
            var a0 = load(acc + j), a1 = load(acc + j + 8)
            var row = rows + j, scale = scales
            for _ in 0..<count {
                let s = scale.pointee
                a0 += s * load(row)
                a1 += s * load(row + 8)
                row += rowStride
                scale += scaleStride
            }
            store(a0, acc + j); store(a1, acc + j + 8)
            j += 16
        }
        if j + 8 <= n {
            var a0 = load(acc + j)
            var row = rows + j, scale = scales
            for _ in 0..<count {
                a0 += scale.pointee * load(row)
                row += rowStride
                scale += scaleStride
            }
            store(a0, acc + j)
            j += 8
        }
        while j < n {
            var a = acc[j]
            var row = rows + j, scale = scales
            for _ in 0..<count {
                a += scale.pointee * row.pointee
                row += rowStride
                scale += scaleStride
            }
            acc[j] = a
            j += 1
        }
    }

    /// x[i] = 0 where pre[i] ≤ 0, for i < n (the error through a ReLU of pre-activation pre).
    @inlinable
    public static func zeroWhereNotPositive(_ x: UnsafeMutablePointer<Float>, _ pre: UnsafePointer<Float>, n: Int) {
        var i = 0
        while i + 8 <= n {
            let p = UnsafeRawPointer(pre + i).loadUnaligned(as: SIMD8<Float>.self)
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: v.replacing(with: 0, where: p .<= 0), as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            if pre[i] <= 0 { x[i] = 0 }
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
