import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecMechanisms
import FedRecSupport

/// Exact moments of N_Z(0, σ²) by summation over |k| ≤ 40σ + 20 (the tail beyond is below
/// e^-800 of the mass).
func discreteGaussianMoments(variance: Double) -> (pmf: (Int) -> Double, variance: Double, fourth: Double) {
    let sigma = variance.squareRoot()
    let limit = Int(40 * sigma) + 20
    var mass = 0.0, second = 0.0, fourth = 0.0
    for k in -limit...limit {
        let w = exp(-Double(k * k) / (2 * variance))
        let k2 = Double(k * k)
        mass += w
        second += k2 * w
        fourth += k2 * k2 * w
    }
    let total = mass
    return ({ k in exp(-Double(k * k) / (2 * variance)) / total }, second / mass, fourth / mass)
}

@Suite("Discrete Gaussian")
struct DiscreteGaussianTests {
    @Test("σ is turned into an exact rational σ² rounded up", arguments: [0.5, 1.0, 3.7, 50.0, 12345.678])
    func rationalVariance(sigma: Double) throws {
        let sampler = try DiscreteGaussian(sigma: sigma)
        #expect(sampler.varianceNumerator < 1 << 48 && sampler.varianceNumerator >= 1 << 47)
        // N / 2^k ≥ m² 2^(2e) exactly: compare N·2^(-2e-k)… in 128-bit integers.
        let m = UInt128(sigma.significandBitPattern | (1 << 52))
        let e = Int(sigma.exponent) - 52
        let shift = -2 * e - sampler.varianceDenominatorLog2  // N·2^shift vs m²
        let n = UInt128(sampler.varianceNumerator)
        if shift >= 0 { #expect(n << shift >= m * m) } else { #expect(n >= (m * m) >> -shift) }
        #expect(sampler.variance >= sigma * sigma * (1 - 1e-15))
        #expect((sampler.variance - sigma * sigma) / (sigma * sigma) < 0x1p-46)
        #expect(sampler.t == UInt64(sigma.rounded(.down)) + 1)
    }

    @Test("σ = 1 is exactly 2^47 / 2^47; out-of-range σ is refused")
    func exactOne() throws {
        let one = try DiscreteGaussian(sigma: 1)
        #expect(one.varianceNumerator == 1 << 47 && one.varianceDenominatorLog2 == 47)
        #expect(throws: FedRecError.self) { try DiscreteGaussian(sigma: 0.25) }
        #expect(throws: FedRecError.self) { try DiscreteGaussian(sigma: 0x1p24) }
        #expect(throws: FedRecError.self) { try DiscreteGaussian(sigma: .nan) }
        #expect(throws: FedRecError.self) { try DiscreteGaussian(varianceNumerator: 1, varianceDenominatorLog2: 3) }
    }

    @Test("Bernoulli(n/d) and Bernoulli(exp(-γ)) have the right rates")
    func bernoulli() {
        var bits = RandomBits(SeededNoiseSource(seed: 7))
        let n = 200_000
        func check(_ p: Double, _ draw: (inout RandomBits) -> Bool) {
            var hits = 0
            for _ in 0..<n where draw(&bits) { hits += 1 }
            let se = (p * (1 - p) / Double(n)).squareRoot()
            #expect(abs(Double(hits) / Double(n) - p) <= zOneInAMillion * se, "p = \(p): \(hits)/\(n)")
        }
        check(1.0 / 3) { $0.bernoulli(UInt64(1), UInt64(3)) }
        check(0.7) { $0.bernoulli(UInt128(7), UInt128(10)) }
        check(exp(-1)) { $0.bernoulliExpMinusOne() }
        check(exp(-0.3)) { $0.bernoulliExpSmall(UInt64(3), UInt64(10)) }
        check(exp(-2.5)) { $0.bernoulliExp(numerator: 5, denominator: 2) }
    }

    @Test("mean 0 and the exact discrete variance, 200 000 draws", arguments: [0.5, 1.0, 3.7, 50.0])
    func moments(sigma: Double) throws {
        let sampler = try DiscreteGaussian(sigma: sigma)
        let exact = discreteGaussianMoments(variance: sampler.variance)
        let n = 200_000
        var draws = [Int64](repeating: 0, count: n)
        sampler.sample(into: &draws, from: SeededNoiseSource(seed: 2020 + UInt64(sigma * 10)))
        let mean = draws.reduce(0.0) { $0 + Double($1) } / Double(n)
        // The mean is 0 by symmetry, so Σk²/n is an unbiased variance estimate with
        // variance (μ₄ - v²)/n.
        let secondMoment = draws.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n)
        let varianceSE = ((exact.fourth - exact.variance * exact.variance) / Double(n)).squareRoot()
        #expect(abs(mean) <= zOneInAMillion * (exact.variance / Double(n)).squareRoot(), "mean \(mean)")
        #expect(abs(secondMoment - exact.variance) <= zOneInAMillion * varianceSE,
                "σ=\(sigma): empirical \(secondMoment), exact \(exact.variance), σ² \(sampler.variance)")
        // N_Z's variance is below σ² (CKS20, Prop. 19); visibly so for small σ.
        #expect(exact.variance <= sampler.variance)
        if sigma == 0.5 {
            #expect(exact.variance < 0.216 && exact.variance > 0.214)
            #expect(sampler.variance - secondMoment > 10 * varianceSE, "σ = 0.5 must not look like variance σ²")
        }
    }

    @Test("probabilities of -3…3 at σ = 1 match exp(-k²/2)/Z")
    func pmf() throws {
        let sampler = try DiscreteGaussian(sigma: 1)
        let exact = discreteGaussianMoments(variance: 1)
        let n = 200_000
        var draws = [Int64](repeating: 0, count: n)
        sampler.sample(into: &draws, from: SeededNoiseSource(seed: 99))
        var counts: [Int64: Int] = [:]
        for d in draws { counts[d, default: 0] += 1 }
        for k in -3...3 {
            let p = exact.pmf(k)
            let se = (p * (1 - p) / Double(n)).squareRoot()
            let observed = Double(counts[Int64(k), default: 0]) / Double(n)
            #expect(abs(observed - p) <= zOneInAMillion * se, "k=\(k): \(observed) vs \(p)")
        }
    }

    @Test("seeded draws repeat; system draws are secure and differ")
    func sources() throws {
        let sampler = try DiscreteGaussian(sigma: 3.7)
        var a = [Int64](repeating: 0, count: 1000), b = a
        sampler.sample(into: &a, from: SeededNoiseSource(seed: 5))
        sampler.sample(into: &b, from: SeededNoiseSource(seed: 5))
        #expect(a == b)
        let system = SystemNoiseSource()
        #expect(system.isCryptographicallySecure && !SeededNoiseSource(seed: 1).isCryptographicallySecure)
        sampler.sample(into: &a, from: system)
        sampler.sample(into: &b, from: system)
        #expect(a != b)
        // Many refills: the keystream words are not stuck.
        var seen = Set<UInt64>()
        for _ in 0..<30_000 { seen.insert(system.next()) }
        #expect(seen.count == 30_000)
    }

    @Test("grid noise: outputs on the grid, deterministic with a seed, bad values refused")
    func gridNoise() throws {
        let g = 0x1p-10
        var values: [Float] = [0, 1, -2.5, 0.0001, 3.14159]
        var again = values
        try GridNoise.addNoise(to: &values, sigma: 0.05, granularity: g, source: SeededNoiseSource(seed: 3))
        try GridNoise.addNoise(to: &again, sigma: 0.05, granularity: g, source: SeededNoiseSource(seed: 3))
        #expect(values == again)
        for v in values { #expect((Double(v) / g).rounded() == Double(v) / g) }
        var bad: [Float] = [1, .nan]
        #expect(throws: FedRecError.self) {
            try GridNoise.addNoise(to: &bad, sigma: 0.05, granularity: g, source: SeededNoiseSource(seed: 3))
        }
        #expect(throws: FedRecError.self) {
            try GridNoise.addNoise(to: &values, sigma: 0.05, granularity: 1, source: SeededNoiseSource(seed: 3))
        }
        #expect(GridNoise.gridSensitivity(clip: 1, granularity: 0.001, dimension: 10_000) == 1.1)
        // Noise of the right size: σ = 0.05 over 20 000 zeros.
        var zeros = [Float](repeating: 0, count: 20_000)
        try GridNoise.addNoise(to: &zeros, sigma: 0.05, granularity: g, source: SeededNoiseSource(seed: 4))
        let variance = zeros.reduce(0.0) { $0 + Double($1) * Double($1) } / 20_000
        #expect(abs(variance - 0.0025) < zOneInAMillion * 0.0025 * (2.0 / 20_000).squareRoot())
    }
}
