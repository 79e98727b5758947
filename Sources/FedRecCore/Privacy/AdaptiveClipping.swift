#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
/// Pure functions: the caller draws the count noise from a `NoiseSource`.
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
