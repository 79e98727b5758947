import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecPrivacy
import FedRecSupport
import FedRecMechanisms

@Suite("Adaptive clipping")
struct AdaptiveClippingTests {
    @Test("noise split: z_Δ = (z⁻² - (2σ_b)⁻²)^(-1/2) and back")
    func split() throws {
        // z = 1, σ_b = 1: z_Δ = (1 - 1/4)^(-1/2) = 2/√3.
        let zDelta = try AdaptiveClipping.updateNoiseMultiplier(total: 1, countNoiseStddev: 1)
        #expect(abs(zDelta - 2 / 3.0.squareRoot()) < 1e-15)
        for (z, sigmaB) in [(0.8, 5.0), (1.1, 50.0), (3.0, 1.6)] {
            let d = try AdaptiveClipping.updateNoiseMultiplier(total: z, countNoiseStddev: sigmaB)
            #expect(d > z)
            #expect(abs(AdaptiveClipping.totalNoiseMultiplier(update: d, countNoiseStddev: sigmaB) - z) < 1e-12 * z)
        }
        #expect(throws: FedRecError.self) { try AdaptiveClipping.updateNoiseMultiplier(total: 2, countNoiseStddev: 1) }
        #expect(throws: FedRecError.self) { try AdaptiveClipping.updateNoiseMultiplier(total: 0, countNoiseStddev: 1) }
    }

    @Test("noised fraction is centred, uses the expected count and is clamped")
    func fraction() {
        #expect(AdaptiveClipping.noisedUnclippedFraction(unclipped: 30, participants: 40, expectedClients: 40, noise: 0) == 0.75)
        // 45 participants where 40 were expected: (30 - 22.5 + 2)/40 + 0.5.
        #expect(AdaptiveClipping.noisedUnclippedFraction(unclipped: 30, participants: 45, expectedClients: 40, noise: 2)
            == (30 - 22.5 + 2) / 40 + 0.5)
        #expect(AdaptiveClipping.noisedUnclippedFraction(unclipped: 40, participants: 40, expectedClients: 40, noise: 100) == 1)
        #expect(AdaptiveClipping.noisedUnclippedFraction(unclipped: 0, participants: 40, expectedClients: 40, noise: -100) == 0)
    }

    @Test("geometric update: C·exp(-η(b̃ - γ)), fixed at the quantile")
    func update() {
        #expect(AdaptiveClipping.nextClip(current: 2, noisedFraction: 0.5, targetQuantile: 0.5, learningRate: 0.2) == 2)
        #expect(AdaptiveClipping.nextClip(current: 2, noisedFraction: 0.9, targetQuantile: 0.5, learningRate: 0.2) == 2 * exp(-0.08))
        #expect(AdaptiveClipping.nextClip(current: 2, noisedFraction: 0.1, targetQuantile: 0.5, learningRate: 0.2) > 2)
    }

    @Test("the clip norm tracks the target quantile of the update norms")
    func tracksQuantile() {
        // Norms uniform on (0, 10): the 0.8 quantile is 8. Small noise, 500 clients a round.
        var generator = SeededGenerator(seed: 11)
        var clip = 0.1
        let m = 500
        for _ in 0..<300 {
            let unclipped = (0..<m).reduce(0) { count, _ in count + (generator.nextUnitDouble() * 10 <= clip ? 1 : 0) }
            let noise = generator.nextGaussian() * Double(m) / 20
            let b = AdaptiveClipping.noisedUnclippedFraction(
                unclipped: unclipped, participants: m, expectedClients: Double(m), noise: noise)
            clip = AdaptiveClipping.nextClip(current: clip, noisedFraction: b, targetQuantile: 0.8, learningRate: 0.2)
        }
        #expect(abs(clip - 8) < 1, "clip \(clip)")
    }

    @Test("the release's noise split: z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2), σ_b defaults to q·N/20")
    func plan() throws {
        // z = 1.2, q·N = 50: σ_b = 2.5, z_Δ = (1/1.44 − 1/25)^(−1/2) = 1.2361285…
        let p = try AdaptiveClipSettings().plan(totalNoiseMultiplier: 1.2, expectedClients: 50)
        #expect(p.countNoiseStddev == 2.5)
        #expect(abs(p.updateNoiseMultiplier - 1 / (1 / 1.44 - 1 / 25.0).squareRoot()) < 1e-14)
        #expect(abs(p.updateNoiseMultiplier - 1.2361285) < 1e-6)
        #expect(p.totalNoiseMultiplier == 1.2 && p.settings.targetQuantile == 0.5 && p.settings.learningRate == 0.2)
        // An explicit σ_b wins; 2σ_b ≤ z cannot pay for the count.
        let explicit = try AdaptiveClipSettings(countNoiseStddev: 10).plan(totalNoiseMultiplier: 1.2, expectedClients: 50)
        #expect(explicit.countNoiseStddev == 10)
        #expect(throws: FedRecError.self) { try AdaptiveClipSettings().plan(totalNoiseMultiplier: 1.2, expectedClients: 12) }
        #expect(throws: FedRecError.self) { try AdaptiveClipSettings(countNoiseStddev: 0.6).plan(totalNoiseMultiplier: 1.2, expectedClients: 500) }
        for bad in [(-0.1, 0.2, 1.0), (1.1, 0.2, 1.0), (0.5, 0, 1.0), (0.5, 0.2, 0), (0.5, .nan, 1.0)] {
            #expect(throws: FedRecError.self) { try AdaptiveClipSettings(targetQuantile: bad.0, learningRate: bad.1, countNoiseStddev: bad.2) }
        }
    }

    /// The count noise: k ~ N_Z(0, (2σ_b)²) half units. Over 4,000 draws the std's relative
    /// standard error is √(1/(2·4000)) ≈ 1.1 %; the bound is 5 of them. Released counts land on
    /// ½ℤ with integer and half-integer values about equally often whatever the parity of m
    /// (noise on ℤ would give only half-integers for odd m): each share is 0.5 ± 5·0.008.
    @Test("the clipped count gets discrete Gaussian noise of std σ_b on the ½ grid, hiding the parity of m", arguments: [1000, 1001])
    func countNoise(participants m: Int) throws {
        let p = try AdaptiveClipSettings(countNoiseStddev: 10).plan(totalNoiseMultiplier: 1, expectedClients: 1000)
        let source = SeededNoiseSource(seed: 5)
        let draws = 4000
        var sum = 0.0, squares = 0.0, integers = 0
        for _ in 0..<draws {
            let step = try p.step(clip: 1, unclipped: 500, participants: m, expectedClients: 1000, source: source)
            let noise = step.noisedCount - (500 - Double(m) / 2)
            #expect((2 * step.noisedCount).rounded() == 2 * step.noisedCount)
            #expect(step.noisedFraction == min(1, max(0, step.noisedCount / 1000 + 0.5)))
            sum += noise
            squares += noise * noise
            if step.noisedCount.rounded() == step.noisedCount { integers += 1 }
        }
        let mean = sum / Double(draws)
        let std = (squares / Double(draws) - mean * mean).squareRoot()
        #expect(abs(mean) < 5 * 10 / Double(draws).squareRoot())
        #expect(abs(std / 10 - 1) < 5 * (0.5 / Double(draws)).squareRoot(), "std \(std)")
        #expect(abs(Double(integers) / Double(draws) - 0.5) < 0.04, "\(integers) integers")
    }

    /// Norms ~ Exponential(1): the γ quantile is −ln(1 − γ). 1,000 clients a round, σ_b = 50
    /// (q·N/20), η = 0.2, from C = 0.01. At the fixed point log C wanders with a std of about
    /// 3–4 % (an AR(1) with the noise on b̃ ≈ 0.05); the bound is 12 %.
    @Test("through the release's own step, the clip converges to the target quantile of the norms", arguments: [0.5, 0.9])
    func converges(gamma: Double) throws {
        let p = try AdaptiveClipSettings(targetQuantile: gamma).plan(totalNoiseMultiplier: 1, expectedClients: 1000)
        let source = SeededNoiseSource(seed: 7)
        var generator = SeededGenerator(seed: 8)
        var clip = 0.01
        var history: [Double] = []
        for _ in 0..<400 {
            let unclipped = (0..<1000).reduce(0) { n, _ in n + (-log(1 - generator.nextUnitDouble()) <= clip ? 1 : 0) }
            clip = try p.step(clip: clip, unclipped: unclipped, participants: 1000, expectedClients: 1000, source: source).nextClip
            history.append(clip)
        }
        let target = -log(1 - gamma)
        #expect(abs(clip / target - 1) < 0.12, "clip \(clip), quantile \(target)")
        // On the way up it only grows: every round with b̃ < γ raises it.
        #expect(history[0] > 0.01 && history[1] > history[0])
    }
}
