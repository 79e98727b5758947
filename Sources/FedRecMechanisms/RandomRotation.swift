import FedRecSupport

/// The random rotation of distributed DP (Kairouz, Liu & Steinke ICML 2021, "The
/// Distributed Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation",
/// arXiv:2102.06387, §4.2): x ↦ H·D·x / √d', with D a diagonal of random signs and H the
/// d' × d' Walsh–Hadamard matrix, d' the power of two at or above the vector's length
/// (zeros pad it). It is orthogonal, so it keeps L2 norms (the sensitivity), and it spreads
/// a vector's mass evenly over its coordinates, so that a few large values do not wrap the
/// modulus after rounding and noise.
///
/// The signs come from a public seed recorded in the round (`seed`): every party and the
/// server rotate alike, and the rotation of a sum is the sum of the rotations. Privacy does
/// not rest on the seed; the conditional rounding bounds the rotated vector's norm whatever it
/// is.
public struct RandomRotation: Sendable, Equatable {
    public let seed: UInt64
    /// d: the length of the vectors rotated.
    public let dimension: Int
    /// d' = 2^⌈log₂ d⌉.
    public let paddedDimension: Int
    /// One bit per padded coordinate: 1 flips its sign.
    let signWords: [UInt64]

    /// The rotation of vectors of `dimension` values (1 ≤ d ≤ 2^30) for `seed`.
    public init(seed: UInt64, dimension: Int) throws {
        guard dimension >= 1, dimension <= 1 << 30 else {
            throw FedRecError(.usage, "a random rotation needs 1...2^30 coordinates, not \(dimension)")
        }
        self.seed = seed
        self.dimension = dimension
        paddedDimension = Self.paddedDimension(dimension)
        var generator = SeededGenerator(seed: seed, stream: 0x726F_7461_7465)  // "rotate"
        signWords = (0..<((paddedDimension + 63) / 64)).map { _ in generator.next() }
    }

    /// 2^⌈log₂ d⌉.
    public static func paddedDimension(_ d: Int) -> Int {
        var p = 1
        while p < d { p <<= 1 }
        return p
    }

    @inline(__always)
    func flips(_ i: Int) -> Bool { signWords[i >> 6] >> UInt64(i & 63) & 1 == 1 }

    /// H·D·x / √d' of `values` (d values), scaled by `scale`, into `output` (d' values).
    public func rotate(_ values: UnsafeBufferPointer<Float>, scale: Double = 1, into output: UnsafeMutableBufferPointer<Double>) {
        precondition(values.count == dimension && output.count == paddedDimension, "rotate: wrong lengths")
        for i in 0..<dimension {
            let x = Double(values[i])
            output[i] = flips(i) ? -x : x
        }
        for i in dimension..<paddedDimension { output[i] = 0 }
        Self.walshHadamard(output)
        let factor = scale / Double(paddedDimension).squareRoot()
        for i in 0..<paddedDimension { output[i] *= factor }
    }

    /// The inverse, D·H·y / √d' (H is symmetric and H·H = d'·I), scaled by `scale`, in place;
    /// the first d values of `rotated` are the result.
    public func invert(_ rotated: UnsafeMutableBufferPointer<Double>, scale: Double = 1) {
        precondition(rotated.count == paddedDimension, "invert: wrong length")
        Self.walshHadamard(rotated)
        let factor = scale / Double(paddedDimension).squareRoot()
        for i in 0..<paddedDimension {
            let y = rotated[i] * factor
            rotated[i] = flips(i) ? -y : y
        }
    }

    /// The unnormalised fast Walsh–Hadamard transform in place (Sylvester order): y = H·x
    /// with H[i][j] = (-1)^popcount(i & j). The length must be a power of two.
    /// - Complexity: d'·log₂ d' additions.
    public static func walshHadamard(_ x: UnsafeMutableBufferPointer<Double>) {
        let n = x.count
        precondition(n & (n - 1) == 0, "the Walsh–Hadamard transform needs a power-of-two length")
        var h = 1
        while h < n {
            var start = 0
            while start < n {
                for i in start..<(start + h) {
                    let a = x[i], b = x[i + h]
                    x[i] = a + b
                    x[i + h] = a - b
                }
                start += 2 * h
            }
            h <<= 1
        }
    }
}
