import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecMechanisms
import FedRecSupport

@Suite("Distributed discrete Gaussian: rotation, conditional rounding, accounting, calibration")
struct DistributedGaussianTests {
    // MARK: Rotation

    @Test("the fast Walsh–Hadamard transform is the Sylvester matrix (-1)^popcount(i & j)", arguments: [1, 2, 8, 32])
    func hadamardMatrix(n: Int) {
        var generator = SeededGenerator(seed: UInt64(n))
        let x = (0..<n).map { _ in Double(generator.next() % 2001) - 1000 }
        expectSylvesterProduct(x, block: 1 << 12)
    }

    @Test(
        "the blocked transform (in-cache stages, zero blocks skipped, radix-8/4/2 sweeps) is the Sylvester matrix",
        arguments: [(64, 2), (128, 4), (256, 1), (512, 8), (1024, 4096)])
    func blockedHadamardMatrix(n: Int, block: Int) {
        var generator = SeededGenerator(seed: UInt64(n + block))
        // Every other block of 4 is zero, so skipped blocks sit beside dense ones.
        let x = (0..<n).map { i in (i / 4) % 2 == 1 ? 0 : Double(generator.next() % 2001) - 1000 }
        expectSylvesterProduct(x, block: block)
    }

    /// The transform of `x` (with `block`) equals H·x computed from the definition,
    /// H[i][j] = (-1)^popcount(i & j), exactly (integer inputs, sums far below 2^53).
    private func expectSylvesterProduct(_ x: [Double], block: Int) {
        var y = x
        y.withUnsafeMutableBufferPointer { RandomRotation.walshHadamard($0, block: block) }
        for i in x.indices {
            var expected = 0.0
            for j in x.indices { expected += ((i & j).nonzeroBitCount % 2 == 0 ? 1 : -1) * x[j] }
            #expect(y[i] == expected)
        }
    }

    @Test("a rotation keeps the norm, pads to a power of two and is undone by its inverse")
    func rotationIsOrthogonal() throws {
        let rotation = try RandomRotation(seed: 7, dimension: 1000)
        #expect(rotation.paddedDimension == 1024)
        var generator = SeededGenerator(seed: 3)
        let x = (0..<1000).map { _ in Float(generator.nextUnitFloat() * 2 - 1) }
        var y = [Double](repeating: 0, count: 1024)
        x.withUnsafeBufferPointer { input in y.withUnsafeMutableBufferPointer { rotation.rotate(input, scale: 4, into: $0) } }
        let normX = x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let normY = y.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        #expect(abs(normY - 4 * normX) < 1e-9 * normY)
        // Spread: no rotated coordinate carries much more than its share of the norm.
        #expect(y.map(abs).max()! < 6 * normY / 32)
        y.withUnsafeMutableBufferPointer { rotation.invert($0, scale: 0.25) }
        for i in 0..<1000 { #expect(abs(y[i] - Double(x[i])) < 1e-12) }
        for i in 1000..<1024 { #expect(abs(y[i]) < 1e-12) }
        // The same seed rotates alike; another seed does not.
        let again = try RandomRotation(seed: 7, dimension: 1000), other = try RandomRotation(seed: 8, dimension: 1000)
        #expect(again == rotation && other != rotation)
    }

    // MARK: Conditional rounding

    @Test("conditional rounding rounds each coordinate to a neighbour, unbiased, and never exceeds its bound")
    func conditionalRounding() throws {
        let source = SeededNoiseSource(seed: 11)
        let x = (0..<64).map { Double($0) * 0.37 - 11.3 }
        let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let bound = DistributedGaussian.roundedL2Bound(scaledNorm: norm, beta: DistributedGaussian.defaultBeta, dimension: 64)
        var out = [Int64](repeating: 0, count: 64)
        var mean = [Double](repeating: 0, count: 64)
        var attempts = 0
        let trials = 4000
        for _ in 0..<trials {
            attempts += try x.withUnsafeBufferPointer { input in
                try out.withUnsafeMutableBufferPointer { try ConditionalRounding.round(input, bound: bound, into: $0, source: source) }
            }
            #expect(out.reduce(0.0) { $0 + Double($1 * $1) } <= bound * bound)
            for i in 0..<64 {
                #expect(out[i] == Int64(x[i].rounded(.down)) || out[i] == Int64(x[i].rounded(.up)))
                mean[i] += Double(out[i]) / Double(trials)
            }
        }
        // With β = e^-1/2 a draw is kept with probability ≥ 1 - β (KLS21 Prop. 22).
        #expect(Double(trials) / Double(attempts) >= 1 - DistributedGaussian.defaultBeta - 0.05)
        // Each coordinate's rounding has variance ≤ 1/4: the mean of 4000 is within 4·0.5/√4000
        // = 0.032 of x (the conditioning on the norm shifts it by far less at this bound).
        for i in 0..<64 { #expect(abs(mean[i] - x[i]) < 0.04) }
        // A bound below the vector's own norm can never be met: refused, not looped forever.
        #expect(throws: FedRecError.self) {
            try x.withUnsafeBufferPointer { input in
                try out.withUnsafeMutableBufferPointer {
                    try ConditionalRounding.round(input, bound: norm / 2, into: $0, source: source, maximumAttempts: 20)
                }
            }
        }
    }

    // MARK: Accounting against an independent implementation

    /// (c/γ, β, d', σ', parties, rounds, δ) → Δ₂, τ, RDP(2), RDP(32), ε, from
    /// KnownAnswers/ddg_reference.py (50-digit mpmath, KLS21's statements).
    static let reference: [(scaled: Double, beta: Double, d: Int, sigma: Double, n: Int, rounds: Int, delta: Double,
                            l2: Double, tau: Double, rdp2: Double, rdp32: Double, epsilon: Double)] = [
        (100, 0, 1024, 2, 10, 1, 1e-5, 132.0, 7.1571796476092403e-17, 435.60000000000007, 6969.6000000000001, 316.22126007165337),
        (100, exp(-0.5), 1024, 2, 10, 1, 1e-5, 101.84301645179212, 7.1571796476092403e-17, 259.30000000000007, 4148.8000000000001, 204.58053359954908),
        (1000, exp(-0.5), 65536, 30, 100, 5, 1e-6, 1008.7179982532284, 0, 11.305688888888889, 180.89102222222222, 66.140277878351309),
        (50, exp(-0.5), 256, 0.6, 3, 1, 1e-5, 51.205468457968432, 0.37398253406817255, 2523.51730649923, 38940.183973165897, 1542.7955640780906),
        (100, exp(-0.5), 1024, 60, 10, 1, 1e-5, 101.84301645179212, 0, 0.28811111111111111, 4.6097777777777778, 2.3431795752978677),
        (1, exp(-0.5), 16, 0.6, 3, 1, 1e-5, 2.8284271247461901, 0.37398253406817255, 13.391127952498168, 124.50223906360928, 21.70914037135438),
        (20, exp(-0.5), 64, 0.5, 2000, 3, 1e-6, 20.976176963403031, 147.41680765439067, 9435.5556898810027, 9448.7556898810027, 28313.160944001516),
    ]

    @Test("Δ₂, τ, the RDP curve and ε match KLS21's formulas computed independently", arguments: 0..<7)
    func accountingMatchesReference(index: Int) throws {
        let r = Self.reference[index]
        // γ = 1/4 and c = 4·c/γ... any split of c/γ gives the same accounting.
        let mechanism = try DistributedGaussian(sensitivity: r.scaled / 4, granularity: 0.25, beta: r.beta, dimension: r.d, localSigma: r.sigma)
        #expect(abs(mechanism.roundedL2Bound - r.l2) <= 1e-12 * r.l2)
        let tau = DistributedGaussian.tau(localSigma: r.sigma, parties: r.n)
        // Beyond k = 1000 the tail is bounded from above (never under-counted): within 1e-3
        // relative of the exact sum at n = 2000, exact below.
        if r.n > 1001 {
            #expect(tau >= r.tau && tau <= r.tau * (1 + 1e-3))
        } else {
            #expect(abs(tau - r.tau) <= 1e-12 * max(r.tau, 1e-300))
        }
        let curve = mechanism.rdp(parties: r.n, orders: [2, 32])
        let tolerance = r.n > 1001 ? 1e-3 : 1e-12
        #expect(abs(curve[0] - r.rdp2) <= tolerance * r.rdp2)
        #expect(abs(curve[1] - r.rdp32) <= tolerance * r.rdp32)
        let eps = try mechanism.epsilon(parties: r.n, rounds: r.rounds, delta: r.delta)
        #expect(abs(eps - r.epsilon) <= (r.n > 1001 ? 1e-3 : 1e-10) * r.epsilon)
    }

    @Test("with a large σ' the distributed mechanism costs what the continuous Gaussian of σ = √n·σ' does")
    func approachesTheGaussian() throws {
        // τ vanishes and β = 0 gives Δ₂ = c/γ + √d': the curve is α·Δ₂²/(2nσ'²), the
        // Gaussian's of noise multiplier z = √n·σ'/Δ₂ (Mironov 2017, Prop. 7).
        let mechanism = try DistributedGaussian(sensitivity: 1000, granularity: 1, beta: 0, dimension: 64, localSigma: 400)
        let z = (10.0).squareRoot() * 400 / (1000 + 8)
        let gaussian = try RDPAccountant().rdp(sampleRate: 1, noiseMultiplier: z)
        let distributed = mechanism.rdp(parties: 10, orders: RDPAccountant().orders)
        for (a, b) in zip(gaussian, distributed) { #expect(abs(a - b) <= 1e-12 * a) }
    }

    // MARK: Calibration

    @Test("calibration gives the least σ' that keeps the promise with t parties, on the finest grid the bits hold")
    func calibration() throws {
        let target = DistributedGaussianTarget(
            epsilon: 3, delta: 1e-5, rounds: 4, sensitivity: 0.5, dimension: 3000, maximumParties: 100, minimumParties: 80,
            clients: 100, modulusBits: 18)
        let mechanism = try DistributedGaussian.calibrate(target)
        #expect(mechanism.dimension == 4096)
        let eps = try mechanism.epsilon(parties: 80, tauParties: 100, rounds: 4, delta: 1e-5)
        #expect(eps <= 3 && eps > 3 * (1 - 1e-6))
        // More survivors than t only add noise: ε falls.
        #expect(try mechanism.epsilon(parties: 100, rounds: 4, delta: 1e-5) < eps)
        // A slightly smaller σ' breaks the promise.
        var weaker = mechanism
        weaker.localSigma *= 1 - 1e-5
        #expect(try weaker.epsilon(parties: 80, tauParties: 100, rounds: 4, delta: 1e-5) > 3)
        // k = 4 standard deviations of the sum fit 2^18 on this grid and not on one twice as fine.
        func range(_ g: Double) throws -> Double {
            let sigma = try #require(try DistributedGaussian.localSigma(for: target, granularity: g, dimension: 4096, accountant: RDPAccountant()))
            let signal = 0.5 * 100 / g
            return 8 * (signal * signal / 4096 + 100.0 / 4 + 100 * sigma * sigma).squareRoot()
        }
        #expect(try range(mechanism.granularity) <= 0x1p18)
        #expect(try range(mechanism.granularity / 2) > 0x1p18)
        // Too few bits for the clients: refused with the advice.
        var tight = target
        tight.modulusBits = 6
        #expect(throws: FedRecError.self) { try DistributedGaussian.calibrate(tight) }
    }
}
