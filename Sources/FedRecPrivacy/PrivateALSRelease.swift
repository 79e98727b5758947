import FedRecMechanisms
import FedRecModel
import FedRecSupport
import FedRecWire

/// Private ALS at the server (Chien et al., "Private Alternating Least Squares", ICML
/// 2021): the round's summed ALS statistics, from users whose contributions are bounded
/// (`ALSContributionBounds`), get Gaussian noise of standard deviation z·Δ on every value
/// a release shows, for every item of the catalogue (a row left out would tell that
/// nobody touched it). Symmetric Grams are noised on their upper triangle and mirrored;
/// each item's count (`row_weight`) is noised with the same σ and is what the server step
/// reads to skip items drowned by the noise. One release is one Gaussian mechanism of
/// sensitivity Δ, charged like a sampled Gaussian at the round's sampling rate (1 when
/// every client takes part).
public enum PrivateALSRelease {
    /// Values one release noises for a model: per item the Gram's upper triangle, the
    /// right-hand side and the count; then the dense part (its triangle for WALS).
    public static func coordinates(_ config: ModelConfig, sharesItemGram: Bool = true) -> Int {
        let sizes = ReleaseVector.ALSSizes(config, sharesItemGram: sharesItemGram)
        return config.items * sizes.perItem + sizes.dense
    }

    /// The per-user bounds a sum of ALS statistics records.
    /// - Throws: `.usage` for statistics that record none (trained without them).
    public static func bounds(of header: UpdateHeader) throws -> ALSContributionBounds {
        guard let bounds = try ALSContributionBounds(metadata: header.extra) else {
            throw FedRecError(.usage, "the ALS statistics are not bounded per user; train with fl-train-local --dp-max-items K --dp-user-clip G")
        }
        return bounds
    }

    /// The noised statistics of every item and the noised dense part.
    /// - Returns: the noised sum, the grid spacing and σ.
    /// - Throws: `.usage` for a sum that is not bounded ALS statistics or already noised;
    ///   `.shape` for tensors that do not fit the model.
    public static func noisedSum(
        _ sum: ModelUpdate, noiseMultiplier z: Double, source: any NoiseSource
    ) throws -> (update: ModelUpdate, granularity: Double, sigma: Double) {
        let h = sum.header
        guard h.extra[DPMetadata.mechanism] == nil else { throw FedRecError(.usage, "the sum is already noised") }
        guard h.algorithm == .als else { throw FedRecError(.usage, "private ALS releases ALS statistics, not \(h.algorithm) deltas") }
        let bounds = try bounds(of: h)
        guard h.weighting == .uniform else { throw FedRecError(.usage, "private ALS needs --weighting uniform, got \(h.weighting)") }
        guard z > 0, z.isFinite else { throw FedRecError(.usage, "need a positive noise multiplier, got \(z)") }
        // One vector of every released value, untouched items' zeros included.
        var values = try ReleaseVector.packALS(sum, bounds: bounds)
        let delta = bounds.sensitivity(h.config)
        let g = try DPNoise.addNoise(to: &values, clip: delta, noiseMultiplier: z, source: source)
        let sigma = DPNoise.sigma(clip: delta, noiseMultiplier: z, granularity: g, coordinates: values.count)
        var update = try ReleaseVector.unpackALS(values, header: h, bounds: bounds)
        update.header.extra.merge(DPMetadata.release(
            mechanism: LedgerEntry.alsGaussian, noiseMultiplier: z, sampleRate: h.sampleRate ?? 1, granularity: g,
            isPrivate: source.isCryptographicallySecure && !h.hasPublicSample)) { _, new in new }
        update.header.extra[DPMetadata.noiseStddev] = "\(sigma)"
        return (update, g, sigma)
    }
}
