/// Metadata keys that noised sums and local-DP updates carry (docs/FORMATS.md).
public enum DPMetadata {
    /// `subsampled_gaussian` on a sum noised by `fl-dp-noise`.
    public static let mechanism = "dp_mechanism"
    /// z: the noise's standard deviation is z times the grid sensitivity C + g·√D.
    public static let noiseMultiplier = "noise_multiplier"
    /// q the accountant used.
    public static let sampleRate = "dp_sample_rate"
    /// q·N: the fixed denominator to apply the sum with.
    public static let expectedClients = "dp_expected_clients"
    /// `false` when the noise came from a test seed: such a file has no privacy at all.
    public static let isPrivate = "private"
    /// g: the grid the discrete Gaussian noise lives on.
    public static let granularity = "dp_granularity"
    /// SHA-256 of the ledger line that records this release.
    public static let ledgerHead = "dp_ledger_head"
    /// ε of everything the ledger records, this release included, at `dp_delta`.
    public static let epsilon = "dp_epsilon"
    public static let delta = "dp_delta"
    /// Local DP (`fl-train-local --local-dp`): z of each client's own release.
    public static let localNoiseMultiplier = "local_dp_noise_multiplier"
    /// ε of one client's release in one round (q = 1, one step) at `local_dp_delta`.
    public static let localEpsilon = "local_dp_epsilon"
    public static let localDelta = "local_dp_delta"
    /// Adaptive clipping (`fl-dp-noise --adaptive-clip`): z of the pair (update sum and
    /// clipped count) that the ledger charges; `noise_multiplier` is then the sum's own z_Δ.
    public static let totalNoiseMultiplier = "dp_total_noise_multiplier"
    /// σ_b: the noise standard deviation of the centred clipped count.
    public static let countNoiseStddev = "dp_count_noise_stddev"
    /// b̃: the released (noised) fraction of clients whose update norm was at most `clip`.
    public static let clipFraction = "dp_clip_fraction"
    /// γ and η of the clip update.
    public static let targetQuantile = "dp_target_quantile"
    public static let clipLearningRate = "dp_clip_lr"
    /// C·exp(−η(b̃ − γ)): the clip the next round's clients use.
    public static let nextClip = "dp_next_clip"
}

/// The Gaussian noise both DP modes add: exact discrete Gaussian on a fine power-of-two
/// grid (`GridNoise`, Canonne-Kamath-Steinke 2020), so the floating-point attack of
/// Mironov 2012 does not apply.
public enum DPNoise {
    /// The grid spacing g for noising `coordinates` values clipped (jointly) at L2 norm
    /// `clip` with noise multiplier z: the largest power of two with g·√D ≤ C/1000 (grid
    /// rounding then costs at most 0.1 % of sensitivity), doubled while σ/g would reach
    /// 2^23 (the sampler's range is below 2^24 grid units).
    public static func granularity(clip: Double, noiseMultiplier z: Double, coordinates: Int) -> Double {
        let root = Double(max(coordinates, 1)).squareRoot()
        var g = Double(sign: .plus, exponent: Int((clip / (1000 * root)).exponent), significand: 1)
        while z * (clip + g * root) / g >= 0x1p23 { g *= 2 }
        return g
    }

    /// σ = z · (C + g·√D): the noise that gives noise multiplier z against the sensitivity
    /// of a sum rounded to the grid (`GridNoise.gridSensitivity`).
    public static func sigma(clip: Double, noiseMultiplier z: Double, granularity g: Double, coordinates: Int) -> Double {
        z * GridNoise.gridSensitivity(clip: clip, granularity: g, dimension: coordinates)
    }

    /// Adds N_Z(0, σ²) on the grid to every value, with σ and g chosen as above.
    /// - Returns: the granularity used.
    @discardableResult
    public static func addNoise(
        to values: inout [Float], clip: Double, noiseMultiplier z: Double, source: any NoiseSource
    ) throws -> Double {
        let g = granularity(clip: clip, noiseMultiplier: z, coordinates: values.count)
        let s = sigma(clip: clip, noiseMultiplier: z, granularity: g, coordinates: values.count)
        try GridNoise.addNoise(to: &values, sigma: s, granularity: g, source: source)
        return g
    }

    /// ε of one Gaussian release with noise multiplier z and no sampling (local DP).
    public static func singleReleaseEpsilon(noiseMultiplier z: Double, delta: Double) throws -> Double {
        try RDPAccountant().epsilon(sampleRate: 1, noiseMultiplier: z, steps: 1, delta: delta).epsilon
    }
}
