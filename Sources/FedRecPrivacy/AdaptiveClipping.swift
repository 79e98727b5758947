#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecMechanisms
import FedRecSupport

/// Adaptive clipping: the clip norm C follows a target quantile γ of the clients' update
/// norms, privately (Andrew, Thakkar, McMahan, Ramaswamy 2021, "Differentially Private
/// Learning with Adaptive Clipping", NeurIPS 2021, arXiv:1905.03871).
///
/// Each participating client also reports bᵢ = 1 if ‖Δᵢ‖ ≤ C (its update was not clipped).
/// The server releases the noised fraction b̃ and moves C geometrically:
/// C ← C · exp(-η_C (b̃ - γ)) (the paper's Eq. 2 / Algorithm 1). As in tensorflow_privacy's
/// `QuantileEstimatorQuery`, the bits are centred (bᵢ - ½ ∈ {-½, ½}) so that the count has
/// sensitivity ½: b̃ = (Σ(bᵢ - ½) + N(0, σ_b²)) / m̄ + ½ with m̄ the *expected* number of
/// clients, clamped to [0, 1] (post-processing).
///
/// Releasing b̃ costs privacy too. The paper's Theorem 1: a round that adds noise z_Δ·C to
/// the update sum and σ_b to the count is a Gaussian mechanism with noise multiplier
/// z = (z_Δ⁻² + (2σ_b)⁻²)^(-1/2). To spend a total z, the update noise must therefore be
/// z_Δ = (z⁻² - (2σ_b)⁻²)^(-1/2), which needs 2σ_b > z; the paper suggests σ_b = m̄/20.
/// The ledger records the total z; the accountant needs nothing else.
///
/// The formulas are pure functions; `AdaptiveClipPlan` applies them to one release
/// (`fl-dp-noise --adaptive-clip`), drawing the count noise from a `NoiseSource`.
public enum AdaptiveClipping {
    /// The update-sum noise multiplier z_Δ = (z⁻² - (2σ_b)⁻²)^(-1/2) that, together with count
    /// noise σ_b, spends exactly the total noise multiplier z (Andrew et al. 2021, Thm. 1).
    /// - Throws: `FedRecError(.usage)` unless z > 0 and 2σ_b > z.
    public static func updateNoiseMultiplier(total z: Double, countNoiseStddev sigmaB: Double) throws -> Double {
        guard z > 0, z.isFinite, sigmaB > 0, 2 * sigmaB > z else {
            throw FedRecError(.usage,
                "the clipped-count noise stddev must exceed half the noise multiplier (2 * \(sigmaB) <= \(z))")
        }
        if sigmaB.isInfinite { return z }
        return 1 / (1 / (z * z) - 1 / (4 * sigmaB * sigmaB)).squareRoot()
    }

    /// The total noise multiplier z = (z_Δ⁻² + (2σ_b)⁻²)^(-1/2) of a round with update noise
    /// z_Δ and count noise σ_b (Andrew et al. 2021, Thm. 1).
    public static func totalNoiseMultiplier(update zDelta: Double, countNoiseStddev sigmaB: Double) -> Double {
        1 / (1 / (zDelta * zDelta) + 1 / (4 * sigmaB * sigmaB)).squareRoot()
    }

    /// The released fraction of clients whose update norm was at most C:
    /// b̃ = clamp((unclipped - participants/2 + noise) / expectedClients + 1/2, 0, 1).
    /// - Parameters:
    ///   - unclipped: participants with ‖Δᵢ‖ ≤ C.
    ///   - participants: clients in this round's sum.
    ///   - expectedClients: m̄ = q·N, the fixed denominator (Poisson sampling).
    ///   - noise: a draw of N(0, σ_b²), from a secure source.
    public static func noisedUnclippedFraction(
        unclipped: Int, participants: Int, expectedClients: Double, noise: Double
    ) -> Double {
        precondition(unclipped >= 0 && unclipped <= participants && expectedClients > 0)
        let centred = Double(unclipped) - Double(participants) / 2 + noise
        return min(1, max(0, centred / expectedClients + 0.5))
    }

    /// The next clip norm C · exp(-η (b̃ - γ)): grows when fewer than a γ fraction of updates
    /// fit under C, shrinks when more do; fixed where b̃ = γ.
    /// - Parameters:
    ///   - current: C > 0.
    ///   - noisedFraction: b̃ from `noisedUnclippedFraction`.
    ///   - targetQuantile: γ ∈ [0, 1] (the paper uses 0.5 by default).
    ///   - learningRate: η_C > 0 (0.2 in the paper).
    public static func nextClip(
        current: Double, noisedFraction: Double, targetQuantile: Double, learningRate: Double
    ) -> Double {
        precondition(current > 0 && learningRate > 0 && (0...1).contains(targetQuantile))
        return current * exp(-learningRate * (noisedFraction - targetQuantile))
    }
}

/// The settings of adaptive clipping in a central release (`fl-dp-noise --adaptive-clip`):
/// the target quantile γ, the clip learning rate η_C and the count noise σ_b.
public struct AdaptiveClipSettings: Sendable, Equatable {
    /// γ: the fraction of clients whose update should fit under the clip (Andrew et al.'s
    /// default 0.5: the median norm).
    public var targetQuantile: Double
    /// η_C of the geometric update (the paper's default 0.2).
    public var learningRate: Double
    /// σ_b, the standard deviation of the noise on the centred clipped count; nil: m̄/20,
    /// the paper's suggestion, with m̄ = q·N the expected clients of a round.
    public var countNoiseStddev: Double?

    /// - Throws: `FedRecError(.usage)` unless 0 ≤ γ ≤ 1, η > 0 and σ_b > 0 (all finite).
    public init(targetQuantile: Double = 0.5, learningRate: Double = 0.2, countNoiseStddev: Double? = nil) throws {
        guard targetQuantile.isFinite, (0...1).contains(targetQuantile) else {
            throw FedRecError(.usage, "--target-quantile must be in [0, 1], got \(targetQuantile)")
        }
        guard learningRate.isFinite, learningRate > 0 else {
            throw FedRecError(.usage, "--clip-lr must be positive, got \(learningRate)")
        }
        if let sigmaB = countNoiseStddev, !(sigmaB.isFinite && sigmaB > 0) {
            throw FedRecError(.usage, "--clip-noise-std must be positive, got \(sigmaB)")
        }
        self.targetQuantile = targetQuantile
        self.learningRate = learningRate
        self.countNoiseStddev = countNoiseStddev
    }

    /// The noise split of one release that spends the total noise multiplier z.
    /// - Parameters:
    ///   - z: the total noise multiplier the ledger charges (from `fl-dp-noise calibrate`).
    ///   - expectedClients: m̄ = q·N, for the default σ_b = m̄/20.
    /// - Throws: `FedRecError(.usage)` when 2σ_b ≤ z (the count would need more than the whole
    ///   budget) or σ_b is outside the exact sampler's range.
    public func plan(totalNoiseMultiplier z: Double, expectedClients: Double) throws -> AdaptiveClipPlan {
        let sigmaB = countNoiseStddev ?? expectedClients / 20
        guard 2 * sigmaB > z else {
            throw FedRecError(.usage,
                "adaptive clipping needs 2 * clip noise std > noise multiplier, got 2 * \(sigmaB) <= \(z)\(countNoiseStddev == nil ? " (the default std is q*N/20 = \(sigmaB); give a larger --clip-noise-std)" : "")")
        }
        // The count noise is drawn in half units (see `AdaptiveClipPlan.step`).
        guard 2 * sigmaB >= 0.5, 2 * sigmaB < 0x1p24 else {
            throw FedRecError(.usage, "--clip-noise-std must be in [1/4, 2^23), got \(sigmaB)")
        }
        let zDelta = try AdaptiveClipping.updateNoiseMultiplier(total: z, countNoiseStddev: sigmaB)
        return AdaptiveClipPlan(settings: self, totalNoiseMultiplier: z, updateNoiseMultiplier: zDelta, countNoiseStddev: sigmaB)
    }
}

/// One release's adaptive-clipping parameters: the total z it is charged, split into the
/// update sum's z_Δ and the count's σ_b so that the pair costs z (Andrew et al. 2021, Thm. 1).
public struct AdaptiveClipPlan: Sendable, Equatable {
    public var settings: AdaptiveClipSettings
    /// z: what the ledger records and the accountant charges for the pair.
    public var totalNoiseMultiplier: Double
    /// z_Δ = (z⁻² − (2σ_b)⁻²)^(-1/2): the noise multiplier of the update sum.
    public var updateNoiseMultiplier: Double
    /// σ_b: the standard deviation of the noise on the centred count Σ(bᵢ − ½).
    public var countNoiseStddev: Double

    /// The released fraction b̃ and the next round's clip, from the clients of this round.
    ///
    /// The centred count Σ(bᵢ − ½) = u − m/2 lies on the grid ½ℤ, so the noise is an exact
    /// discrete Gaussian (Canonne, Kamath, Steinke 2020) on that grid: k ~ N_Z(0, (2σ_b)²)
    /// half units, i.e. standard deviation σ_b. Noise on ℤ would not do: the released value's
    /// fractional part would then reveal the parity of the number of participants m. In half
    /// units the count has sensitivity 1 and noise 2σ_b: the noise multiplier 2σ_b that
    /// Theorem 1 composes with z_Δ.
    /// - Parameters:
    ///   - clip: C, the clip this round's clients used.
    ///   - unclipped: u = Σbᵢ, participants whose update norm was at most C.
    ///   - participants: m, the clients in the sum.
    ///   - expectedClients: m̄ = q·N, the fixed denominator.
    ///   - source: the noise source (cryptographically secure unless testing).
    public func step(
        clip: Double, unclipped: Int, participants: Int, expectedClients: Double, source: any NoiseSource
    ) throws -> AdaptiveClipStep {
        guard clip > 0, clip.isFinite else { throw FedRecError(.usage, "adaptive clipping needs a clip C > 0, got \(clip)") }
        guard unclipped >= 0, unclipped <= participants, expectedClients > 0 else {
            throw FedRecError(.badData, "clipped count out of range: \(participants - unclipped) clipped of \(participants) clients")
        }
        let k = try DiscreteGaussian(sigma: 2 * countNoiseStddev).sample(source)
        let fraction = AdaptiveClipping.noisedUnclippedFraction(
            unclipped: unclipped, participants: participants, expectedClients: expectedClients, noise: Double(k) / 2)
        let next = AdaptiveClipping.nextClip(
            current: clip, noisedFraction: fraction, targetQuantile: settings.targetQuantile,
            learningRate: settings.learningRate)
        let count = Double(2 * unclipped - participants + Int(k)) / 2
        return AdaptiveClipStep(clip: clip, noisedCount: count, noisedFraction: fraction, nextClip: next)
    }
}

/// What one adaptive-clipping release computed: all of it is safe to release (b̃ is
/// noised, C' is post-processing of b̃ and public C).
public struct AdaptiveClipStep: Sendable, Equatable {
    /// C: the clip of this round.
    public var clip: Double
    /// Σ(bᵢ − ½) + noise: the centred count with its noise, exactly (a multiple of ½).
    public var noisedCount: Double
    /// b̃ = clamp(noisedCount / m̄ + ½, 0, 1): the noised fraction of clients whose update fit under C.
    public var noisedFraction: Double
    /// C' = C·exp(−η(b̃ − γ)): the clip for the next round.
    public var nextClip: Double
}
