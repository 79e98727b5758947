import FedRecSupport

/// Exact sampler of the discrete Gaussian N_Z(0, σ²): P(k) ∝ exp(-k² / (2σ²)) on the
/// integers, by Algorithm 1 of Canonne, Kamath and Steinke 2020, "The Discrete Gaussian
/// for Differential Privacy" (NeurIPS 2020, arXiv:2004.00010).
///
/// Why: a floating-point Gaussian's low-order bits are not distributed as the real
/// Gaussian's, and Mironov 2012 ("On Significance of the Least Significant Bits for
/// Differential Privacy", CCS 2012) shows they can reveal the unnoised value. Here every
/// decision is made with integer arithmetic on a rational σ² = N / 2^k: discrete Laplace
/// proposals by rejection, Bernoulli(exp(-γ)) for rational γ by the alternating-series
/// loop of CKS20 (Algorithm 1's subroutines), and Bernoulli(n/d) by comparing uniform bits
/// with the binary expansion of n/d (two random bits on average). No floating point takes
/// part in the decision path.
///
/// Privacy: N_Z(0, σ²) added to an integer query with L2 sensitivity Δ satisfies
/// (Δ²/(2σ²))-concentrated DP (CKS20, Thm. 4), the RDP curve of the continuous Gaussian of
/// the same σ, so the accountant's numbers apply with z = σ/Δ. For d coordinates the
/// multivariate bound (CKS20, Thm. 14) adds a term τ·d with τ = 10 Σ_{k≥1} e^{-2π²σ²k/(k+1)},
/// negligible once σ ≥ 4 grid units (τ < 1e-60); `DiscreteGaussian.init` accepts σ ≥ 1/2
/// but callers noising many coordinates should keep σ/granularity well above 4.
///
/// Range: 1/2 ≤ σ < 2^24 grid units; N < 2^48. Within it every intermediate fits 128 bits
/// except for proposals |y| ≥ 2^14·max(σ, 1), which are rejected outright (see `sample`).
/// Exactness therefore holds up to a total variation distance below e^-16000.
public struct DiscreteGaussian: Sendable, Equatable {
    /// σ² = varianceNumerator / 2^varianceDenominatorLog2, exactly.
    public let varianceNumerator: UInt64
    public let varianceDenominatorLog2: Int
    /// CKS20's discrete Laplace scale t = ⌊σ⌋ + 1.
    let t: UInt64

    /// A sampler for the exact rational variance N / 2^k.
    /// - Throws: `FedRecError(.usage)` unless 1/4 ≤ σ² < 2^48, 0 < N < 2^48 and 0 ≤ k ≤ 60.
    public init(varianceNumerator n: UInt64, varianceDenominatorLog2 k: Int) throws {
        guard k >= 0, k <= 60, n > 0, n < 1 << 48 else {
            throw FedRecError(.usage, "discrete Gaussian variance \(n)/2^\(k) is out of range")
        }
        let variance = Double(n) * Double(sign: .plus, exponent: -k, significand: 1)
        guard variance >= 0.25, variance < 0x1p48 else {
            throw FedRecError(.usage, "discrete Gaussian sigma must be in [1/2, 2^24) grid units, got variance \(variance)")
        }
        varianceNumerator = n
        varianceDenominatorLog2 = k
        // s = ⌊√(N/D)⌋: the largest s with s²·D ≤ N, from an estimate then exact checks.
        let d = UInt128(1) << k
        var s = UInt128(variance.squareRoot())
        while (s + 1) * (s + 1) * d <= UInt128(n) { s += 1 }
        while s > 0 && s * s * d > UInt128(n) { s -= 1 }
        t = UInt64(s) + 1
    }

    /// A sampler whose variance is σ² rounded *up* to 48 significant bits: N / 2^k ≥ σ²
    /// exactly (σ's double is squared in 128-bit integer arithmetic, then rounded up), and
    /// larger by a relative 2^-47 at most. More noise than asked never weakens the guarantee.
    /// - Parameter sigma: standard deviation in grid units, 1/2 ≤ σ < 2^24.
    public init(sigma: Double) throws {
        guard sigma.isFinite, sigma >= 0.5, sigma < 0x1p24 else {
            throw FedRecError(.usage, "discrete Gaussian sigma must be in [1/2, 2^24) grid units, got \(sigma)")
        }
        // σ = m · 2^e exactly (m < 2^53), so σ² = m² · 2^(2e) with m² < 2^106.
        let m = UInt128(sigma.significandBitPattern | (1 << 52))
        let e = Int(sigma.exponent) - 52
        let square = m * m
        let squareBits = 128 - square.leadingZeroBitCount
        // Keep the top 48 bits of m²; the dropped bits round the numerator up.
        let drop = squareBits - 48
        var n = square >> drop
        if n << drop != square { n += 1 }
        // σ² = m² · 2^(2e) ≤ n · 2^(drop + 2e); the denominator exponent is -(drop + 2e).
        var k = -(drop + 2 * e)
        if n == 1 << 48 { n >>= 1; k -= 1 }  // rounding carried into a 49th bit
        try self.init(varianceNumerator: UInt64(n), varianceDenominatorLog2: k)
    }

    /// σ² as a double (for reports; sampling uses the exact rational).
    public var variance: Double {
        Double(varianceNumerator) * Double(sign: .plus, exponent: -varianceDenominatorLog2, significand: 1)
    }

    /// One draw of N_Z(0, σ²). Draw many at once with `sample(into:from:)`: this call
    /// fetches a fresh block of random words each time.
    public func sample(_ source: any NoiseSource) -> Int64 {
        var bits = RandomBits(source)
        return sample(&bits)
    }

    /// Fills `output` with independent draws.
    /// - Complexity: O(output.count); about 1.3–1.6 discrete Laplace proposals per draw.
    ///   Measured (release build, one core of the 2-core dev VM, `SystemNoiseSource`):
    ///   3.5–3.7 million draws per second for σ from 1 to 10⁴; the time goes to the
    ///   data-dependent branches of the bitwise Bernoulli trials, ChaCha20 takes ~5 %.
    public func sample(into output: inout [Int64], from source: any NoiseSource) {
        var bits = RandomBits(source)
        for i in output.indices { output[i] = sample(&bits) }
    }

    func sample(_ bits: inout RandomBits) -> Int64 {
        let n = UInt128(varianceNumerator)
        // D = N/σ² ≤ 2^50 and t ≤ 2σ (or t = 1 for σ < 1), so D·t < 2^75 and
        // 2·N·D·t² = 2N²(t/σ)² < 2^101: γ's denominator, far below the 2^126 that the
        // bitwise Bernoulli needs.
        let dt = (UInt128(1) << varianceDenominatorLog2) * UInt128(t)
        let denominator = 2 * n * dt * UInt128(t)
        while true {
            let y = bits.discreteLaplace(scale: t)
            // Accept with probability exp(-(|y| - σ²/t)² / (2σ²)) (CKS20, Algorithm 1).
            // γ = (|y|·D·t - N)² / (2·N·D·t²), all integers.
            let (scaled, overflow1) = UInt128(y.magnitude).multipliedReportingOverflow(by: dt)
            if overflow1 { continue }
            let a = scaled >= n ? scaled - n : n - scaled
            // a ≥ 2^64 needs |y| ≥ 2^64 σ² / (N t) > 2^16 σ²/t ≥ 2^14 t, a discrete Laplace
            // proposal of probability < e^{-16384}; rejecting it (rather than finishing the
            // exact test, which would all but surely reject too) moves the output
            // distribution by less than that in total variation.
            if a >> 64 != 0 { continue }
            let numerator = a * a
            if bits.bernoulliExp(numerator: numerator, denominator: denominator) { return y }
        }
    }
}

/// Random bits drawn from a `NoiseSource` a few at a time, with the exact Bernoulli and
/// discrete Laplace samplers of CKS20 on top. Words are fetched 512 at a time so that the
/// source (an existential, one dynamic call per block) costs nothing per draw.
struct RandomBits {
    let source: any NoiseSource
    private var words = [UInt64](repeating: 0, count: 512)
    private var wordIndex = 512
    private var word: UInt64 = 0
    private var available = 0

    init(_ source: any NoiseSource) { self.source = source }

    @inline(__always)
    mutating func nextWord() -> UInt64 {
        if wordIndex == words.count {
            words.withUnsafeMutableBufferPointer { source.fill($0) }
            wordIndex = 0
        }
        let w = words[wordIndex]
        wordIndex += 1
        return w
    }

    @inline(__always)
    mutating func bit() -> Bool {
        if available == 0 {
            word = nextWord()
            available = 64
        }
        let b = word & 1 == 1
        word >>= 1
        available -= 1
        return b
    }

    /// Uniform in 0..<bound (Lemire 2019, unbiased), from whole words.
    @inline(__always)
    mutating func uniform(below bound: UInt64) -> UInt64 {
        var m = nextWord().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = nextWord().multipliedFullWidth(by: bound) }
        }
        return m.high
    }

    /// Bernoulli(n/d) for 0 ≤ n, 0 < d < 2^(bits-1): compares a uniform U = 0.b₁b₂… with the
    /// binary expansion of n/d digit by digit (long division) and stops at the first
    /// difference; U < n/d iff there U has 0 and n/d has 1. Two bits on average, exact.
    @inline(__always)
    mutating func bernoulli<T: FixedWidthInteger & UnsignedInteger>(_ n: T, _ d: T) -> Bool {
        if n == 0 { return false }
        if n >= d { return true }
        var r = n
        while true {
            r <<= 1
            let digit = r >= d
            if digit { r -= d }
            let b = bit()
            if b != digit { return digit }
            if r == 0 { return false }  // n/d's expansion ended: U ≥ n/d
        }
    }

    /// Bernoulli(exp(-n/d)) for 0 ≤ n/d ≤ 1 (CKS20, Algorithm 1's subroutine): K counts the
    /// successes of Bernoulli(γ/K), K = 1, 2, …; the result is whether the run stopped at an
    /// odd K, which has probability Σ_{k odd} γ^{k-1}/(k-1)! - γ^k/k! = e^{-γ}.
    @inline(__always)
    mutating func bernoulliExpSmall<T: FixedWidthInteger & UnsignedInteger>(_ n: T, _ d: T) -> Bool {
        var k: T = 1
        while true {
            // Bernoulli(γ/K) = Bernoulli(γ) ∧ Bernoulli(1/K), or one draw if d·K fits.
            let (dk, overflow) = d.multipliedReportingOverflow(by: k)
            let success = overflow || dk >> (T.bitWidth - 2) != 0
                ? bernoulli(n, d) && bernoulli(1 as T, k)
                : bernoulli(n, dk)
            if !success { break }
            k += 1
        }
        return k & 1 == 1
    }

    /// Bernoulli(exp(-1)).
    @inline(__always)
    mutating func bernoulliExpMinusOne() -> Bool {
        var k: UInt64 = 1
        while bernoulli(1, k) { k += 1 }  // K = 1 always succeeds, then 1/2, 1/3, …
        return k & 1 == 1
    }

    /// Bernoulli(exp(-n/d)) for any rational γ = n/d ≥ 0: ⌊γ⌋ independent Bernoulli(e⁻¹)
    /// must all succeed, then Bernoulli(exp(-(γ - ⌊γ⌋))) (CKS20, Algorithm 1's subroutine).
    @inline(__always)
    mutating func bernoulliExp(numerator n: UInt128, denominator d: UInt128) -> Bool {
        // Peel off whole units by subtraction rather than a 128-bit division: most γ are
        // below 1, and each unit passes only with probability e⁻¹.
        var rest = n
        while rest >= d {
            if !bernoulliExpMinusOne() { return false }
            rest -= d
        }
        return bernoulliExpSmall(rest, d)
    }

    /// Discrete Laplace with scale t: P(x) ∝ exp(-|x|/t) (CKS20, Algorithm 2 with s = 1):
    /// x = U + t·V with U uniform in 0..<t accepted with probability exp(-U/t) and V
    /// geometric with ratio e⁻¹; a random sign, rejecting "-0" so that 0 is not counted twice.
    @inline(__always)
    mutating func discreteLaplace(scale t: UInt64) -> Int64 {
        while true {
            let u = uniform(below: t)
            if !bernoulliExpSmall(u, t) { continue }
            var v: UInt64 = 0
            while bernoulliExpMinusOne() { v += 1 }
            let x = u + t * v
            let negative = bit()
            if negative && x == 0 { continue }
            return negative ? -Int64(x) : Int64(x)
        }
    }
}

/// Noise on a grid for floating-point coordinates.
///
/// A float coordinate x becomes m = round(x / g) (nearest, ties to even) on the grid of
/// spacing g = `granularity`, then m + k with k ~ N_Z(0, (σ/g)²), and the output is the
/// float nearest g·(m + k). The released value is a function of the integer m + k alone,
/// so it is post-processing of a discrete Gaussian release and its low-order bits carry
/// nothing about x (Mironov 2012's attack needs the noise's float pattern; there is none).
/// A power-of-two g keeps g·(m + k) exact while |m + k| < 2^24.
///
/// Effect on the guarantee:
/// - σ²/g² is rounded up to N / 2^k with a 48-bit N (`DiscreteGaussian(sigma:)`, after
///   σ/g is itself rounded up by one ulp), so the noise variance is at least the asked
///   one and at most a relative 2^-46 above it. σ/g must lie in [1/2, 2^24).
/// - Rounding to the grid changes the sensitivity: one client's delta of L2 norm ≤ C moves
///   each rounded coordinate by at most its own change plus g, so Δ_grid ≤ C + g·√d for d
///   coordinates (`gridSensitivity`). Account with z = σ / Δ_grid, or choose g ≤ C / (100 √d)
///   to lose at most 1 %.
/// - The discrete Gaussian gives the Gaussian's RDP for each coordinate (CKS20, Thm. 4) and,
///   for d coordinates, the same up to the τ·d term of CKS20 Thm. 14, negligible for σ/g ≥ 4.
public enum GridNoise {
    /// The L2 sensitivity of a sum of clipped deltas after rounding to a grid of spacing g:
    /// C + g·√d.
    public static func gridSensitivity(clip: Double, granularity: Double, dimension: Int) -> Double {
        clip + granularity * Double(dimension).squareRoot()
    }

    /// Adds discrete Gaussian noise of standard deviation `sigma` (in the values' units) on
    /// the grid of spacing `granularity`, in place.
    /// - Throws: `FedRecError(.badData)` for a non-finite value or one too large for the
    ///   grid (|x/g| ≥ 2^62); `FedRecError(.usage)` for σ/g outside [1/2, 2^24).
    /// - Complexity: O(values.count).
    public static func addNoise(
        to values: inout [Float], sigma: Double, granularity: Double, source: any NoiseSource
    ) throws {
        guard granularity > 0, granularity.isFinite, sigma > 0, sigma.isFinite else {
            throw FedRecError(.usage, "noise needs a positive sigma and granularity, got \(sigma) and \(granularity)")
        }
        let sampler = try DiscreteGaussian(sigma: (sigma / granularity).nextUp)
        var bits = RandomBits(source)
        for i in values.indices {
            let x = Double(values[i])
            guard x.isFinite else {
                throw FedRecError(.badData, "coordinate \(i) is not finite (\(values[i]))")
            }
            let onGrid = (x / granularity).rounded(.toNearestOrEven)
            guard abs(onGrid) < 0x1p62 else {
                throw FedRecError(.badData, "coordinate \(i) = \(values[i]) is too large for granularity \(granularity)")
            }
            let m = Int64(onGrid) + sampler.sample(&bits)
            values[i] = Float(granularity * Double(m))
        }
    }
}
