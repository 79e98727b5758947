import Testing
@testable import FedRecModel
import FedRecSupport

@Suite("Vector kernels: the SIMD paths give the scalar loops' values bit for bit")
struct VectorKernelsTests {
    func random(_ count: Int, _ g: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in Float(g.nextGaussian()) }
    }

    @Test("addScaledRows sums each column in row order, for every width and block tail", arguments: [0, 1, 5, 8, 13, 16, 24, 31, 32, 33, 48, 57])
    func addScaledRows(n: Int) {
        var g = SeededGenerator(seed: UInt64(n) + 1)
        for count in [0, 1, 7] {
            let rowStride = n + 3, scaleStride = 2
            let rows = random(max(count * rowStride, 1), &g), scales = random(max(count * scaleStride, 1), &g)
            let start = random(n, &g)
            // The plain loop: acc[j] += scales[r] · rows[r][j], r = 0, 1, … in turn.
            var expected = start
            for j in 0..<n {
                for r in 0..<count { expected[j] += scales[r * scaleStride] * rows[r * rowStride + j] }
            }
            var acc = start
            acc.withUnsafeMutableBufferPointer { a in
                VectorKernels.addScaledRows(a.baseAddress!, n: n, rows: rows, rowStride: rowStride, scales: scales, scaleStride: scaleStride, count: count)
            }
            #expect(acc.map(\.bitPattern) == expected.map(\.bitPattern), "n \(n), count \(count)")
        }
    }

    @Test("zeroWhereNotPositive zeroes where the pre-activation is ≤ 0, and only there")
    func zeroWhereNotPositive() {
        var g = SeededGenerator(seed: 3)
        var pre = random(21, &g)
        pre[4] = 0
        pre[9] = -0.0
        let x = random(21, &g)
        var out = x
        out.withUnsafeMutableBufferPointer { VectorKernels.zeroWhereNotPositive($0.baseAddress!, pre, n: 21) }
        for i in 0..<21 { #expect(out[i] == (pre[i] > 0 ? x[i] : 0)) }
        #expect(pre.contains { $0 > 0 } && pre.contains { $0 < 0 })
    }
}
