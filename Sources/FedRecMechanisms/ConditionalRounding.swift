import FedRecSupport

/// Conditional randomised rounding (Kairouz, Liu & Steinke ICML 2021, arXiv:2102.06387,
/// §4.1 and Proposition 22): each coordinate of x (in grid units) is rounded to ⌊x⌋ + 1 with
/// probability x - ⌊x⌋ (to 2^-32) and to ⌊x⌋ otherwise (unbiased), and the whole draw is repeated until
/// the rounded vector's L2 norm is at most `bound`. The bound is what the accountant uses as
/// the sensitivity of one client's integer vector, so it holds for every vector sent, by
/// construction; with the bound `DistributedGaussian.roundedL2Bound` a draw is accepted with
/// probability at least 1 - β.
public enum ConditionalRounding {
    /// Rounds `values` into `output` (same count), drawing from `source` (the system CSPRNG,
    /// or a named test seed).
    /// - Returns: the number of draws it took.
    /// - Throws: `.badData` for a value that is not finite or beyond ±2^52; `.usage` for a
    ///   bound of 2^26 or more (its square would leave the doubles' exact integers), or if
    ///   no draw of `maximumAttempts` met the bound (the bound is below the vector's own
    ///   norm, which a clipped vector never is).
    @discardableResult
    public static func round(
        _ values: UnsafeBufferPointer<Double>, bound: Double, into output: UnsafeMutableBufferPointer<Int64>,
        source: any NoiseSource, maximumAttempts: Int = 1000
    ) throws -> Int {
        precondition(values.count == output.count, "round: \(values.count) values into \(output.count)")
        guard bound >= 0, bound < 0x1p26 else {
            throw FedRecError(.usage, "a conditional-rounding norm bound must be in [0, 2^26), not \(bound)")
        }
        // One branch-free pass (NaN fails the comparison), the index only looked for on failure.
        var inRange = true
        for x in values { inRange = inRange && abs(x) < 0x1p52 }
        if !inRange, let i = values.firstIndex(where: { !(abs($0) < 0x1p52) }) {
            throw FedRecError(.badData, "coordinate \(i) to round is \(values[i])")
        }
        let limit = bound * bound
        // Two 32-bit draws a word: a coordinate rounds up with probability ⌈f·2^32⌉/2^32 for
        // its fractional part f, unbiased to 2^-32 (the norm bound, not the draw, carries the
        // privacy guarantee).
        let chunk = 1024
        let words = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: chunk / 2)
        defer {
            words.update(repeating: 0)
            words.deallocate()
        }
        guard let x = values.baseAddress, let out = output.baseAddress else { return 1 }
        for attempt in 1...maximumAttempts {
            // Four partial sums of squares (independent chains); each is an exact integer while
            // it stays below 2^53, and so is their total, which is compared with bound² < 2^52:
            // a sum that passed 2^53 is above the bound however it was rounded.
            var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
            var start = 0
            while start < values.count {
                let n = min(chunk, values.count - start)
                source.fill(UnsafeMutableBufferPointer(rebasing: words[0..<((n + 1) / 2)]))
                let v = x + start, k = out + start
                var j = 0
                while j + 4 <= n {
                    let w0 = words[j >> 1], w1 = words[(j >> 1) + 1]
                    let k0 = roundUp(v[j], draw: w0 & 0xFFFF_FFFF), k1 = roundUp(v[j + 1], draw: w0 >> 32)
                    let k2 = roundUp(v[j + 2], draw: w1 & 0xFFFF_FFFF), k3 = roundUp(v[j + 3], draw: w1 >> 32)
                    k[j] = Int64(k0)
                    k[j + 1] = Int64(k1)
                    k[j + 2] = Int64(k2)
                    k[j + 3] = Int64(k3)
                    s0 += k0 * k0
                    s1 += k1 * k1
                    s2 += k2 * k2
                    s3 += k3 * k3
                    j += 4
                }
                while j < n {
                    let r = roundUp(v[j], draw: words[j >> 1] >> UInt64((j & 1) << 5) & 0xFFFF_FFFF)
                    k[j] = Int64(r)
                    s0 += r * r
                    j += 1
                }
                start += n
            }
            if (s0 + s1) + (s2 + s3) <= limit { return attempt }
        }
        throw FedRecError(.usage, "conditional rounding met the norm bound \(bound) in none of \(maximumAttempts) draws")
    }

    /// ⌊v⌋ + 1 if the 32-bit `draw`, as a fraction of 2^32, is below v - ⌊v⌋, else ⌊v⌋ (|v| < 2^52,
    /// checked by the caller, so the result is an exact integer).
    @inline(__always)
    private static func roundUp(_ v: Double, draw: UInt64) -> Double {
        let floor = v.rounded(.down)
        return Double(Int64(bitPattern: draw)) * 0x1p-32 < v - floor ? floor + 1 : floor
    }
}
