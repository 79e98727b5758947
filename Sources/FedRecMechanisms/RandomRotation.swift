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
        signWords.withUnsafeBufferPointer { signs in
            // D·x: a flip is an XOR of the sign bit, 64 coordinates to a word of signs.
            for w in 0..<signs.count {
                let start = w << 6, end = min(start + 64, dimension)
                guard start < end else { break }
                let word = signs[w]
                for i in start..<end {
                    let flip = (word >> UInt64(i - start) & 1) << 63
                    output[i] = Double(bitPattern: Double(values[i]).bitPattern ^ flip)
                }
            }
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
    ///
    /// The butterflies are those of the textbook radix-2 transform, in the same order per
    /// value, so the result is the same to the bit; only the memory order differs. The
    /// stages within blocks of `block` values run block by block while the block is in cache,
    /// and a block that is all zeros (a client's sparse update, the padding) is skipped, as
    /// it stays zero; the wider stages run three at a time (radix 8) to sweep memory a third
    /// as often.
    /// - Complexity: d'·log₂ d' additions at most.
    public static func walshHadamard(_ x: UnsafeMutableBufferPointer<Double>, block: Int = 1 << 12) {
        let n = x.count
        precondition(n & (n - 1) == 0, "the Walsh–Hadamard transform needs a power-of-two length")
        precondition(block >= 1 && block & (block - 1) == 0, "the block must be a power of two")
        guard n > 1, let base = x.baseAddress else { return }
        let width = min(block, n)
        var start = 0
        while start < n {
            let b = base + start
            var zero = true
            for i in 0..<width where b[i] != 0 {
                zero = false
                break
            }
            if !zero {
                var h = 1
                while h < width {
                    radix2(b, count: width, stride: h)
                    h <<= 1
                }
            }
            start += width
        }
        var h = width
        while h < n {
            if 8 * h <= n {
                radix8(base, count: n, stride: h)
                h <<= 3
            } else if 4 * h <= n {
                radix4(base, count: n, stride: h)
                h <<= 2
            } else {
                radix2(base, count: n, stride: h)
                h <<= 1
            }
        }
    }

    /// One radix-2 stage of stride h over `n` values.
    @inline(__always)
    private static func radix2(_ x: UnsafeMutablePointer<Double>, count n: Int, stride h: Int) {
        var group = 0
        while group < n {
            for i in group..<(group + h) {
                let p = x[i], q = x[i + h]
                x[i] = p + q
                x[i + h] = p - q
            }
            group += 2 * h
        }
    }

    /// The radix-2 stages of strides h and 2h in one sweep.
    private static func radix4(_ x: UnsafeMutablePointer<Double>, count n: Int, stride h: Int) {
        var group = 0
        while group < n {
            for i in group..<(group + h) {
                let a0 = x[i], a1 = x[i + h], a2 = x[i + 2 * h], a3 = x[i + 3 * h]
                let b0 = a0 + a1, b1 = a0 - a1, b2 = a2 + a3, b3 = a2 - a3
                x[i] = b0 + b2
                x[i + h] = b1 + b3
                x[i + 2 * h] = b0 - b2
                x[i + 3 * h] = b1 - b3
            }
            group += 4 * h
        }
    }

    /// The radix-2 stages of strides h, 2h and 4h in one sweep.
    private static func radix8(_ x: UnsafeMutablePointer<Double>, count n: Int, stride h: Int) {
        var group = 0
        while group < n {
            for i in group..<(group + h) {
                let a0 = x[i], a1 = x[i + h], a2 = x[i + 2 * h], a3 = x[i + 3 * h]
                let a4 = x[i + 4 * h], a5 = x[i + 5 * h], a6 = x[i + 6 * h], a7 = x[i + 7 * h]
                // stride h
                let b0 = a0 + a1, b1 = a0 - a1, b2 = a2 + a3, b3 = a2 - a3
                let b4 = a4 + a5, b5 = a4 - a5, b6 = a6 + a7, b7 = a6 - a7
                // stride 2h
                let c0 = b0 + b2, c1 = b1 + b3, c2 = b0 - b2, c3 = b1 - b3
                let c4 = b4 + b6, c5 = b5 + b7, c6 = b4 - b6, c7 = b5 - b7
                // stride 4h
                x[i] = c0 + c4
                x[i + h] = c1 + c5
                x[i + 2 * h] = c2 + c6
                x[i + 3 * h] = c3 + c7
                x[i + 4 * h] = c0 - c4
                x[i + 5 * h] = c1 - c5
                x[i + 6 * h] = c2 - c6
                x[i + 7 * h] = c3 - c7
            }
            group += 8 * h
        }
    }
}
