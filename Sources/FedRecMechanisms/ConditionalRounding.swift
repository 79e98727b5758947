import FedRecSupport

/// Conditional randomised rounding (Kairouz, Liu & Steinke ICML 2021, arXiv:2102.06387,
/// §4.1 and Proposition 22): each coordinate of x (in grid units) is rounded to ⌊x⌋ + 1 with
/// probability x - ⌊x⌋ and to ⌊x⌋ otherwise (unbiased), and the whole draw is repeated until
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
        for (i, x) in values.enumerated() where !x.isFinite || abs(x) >= 0x1p52 {
            throw FedRecError(.badData, "coordinate \(i) to round is \(x)")
        }
        let limit = bound * bound
        var bits = RandomBits(source)
        for attempt in 1...maximumAttempts {
            var squares = 0.0
            for i in 0..<values.count {
                let x = values[i]
                let floor = x.rounded(.down)
                let draw = Double(bits.nextWord() >> 11) * 0x1p-53
                let k = Int64(floor) + (draw < x - floor ? 1 : 0)
                output[i] = k
                // Exact while the sum stays below 2^53: it is compared with bound² < 2^52, and
                // a sum that passed 2^53 is above it however it was rounded.
                squares += Double(k) * Double(k)
            }
            if squares <= limit { return attempt }
        }
        throw FedRecError(.usage, "conditional rounding met the norm bound \(bound) in none of \(maximumAttempts) draws")
    }
}
