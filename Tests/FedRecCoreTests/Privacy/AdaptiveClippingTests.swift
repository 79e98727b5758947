import Foundation
import Testing
@testable import FedRecCore

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
}
