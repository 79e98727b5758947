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
    /// Where the key of Poisson sampling came from (`SamplingKeySource`): `fresh` (drawn
    /// by the shard's process from the system CSPRNG), `secret` (a key file shared by a
    /// run's shards) or `test` (a known seed: the sample is public, so sampling amplifies
    /// nothing).
    public static let samplingKey = "sampling_key"
    /// `dp_mechanism` of a private ALS release (`PrivateALSRelease`).
    public static let alsGaussianMechanism = "als_gaussian"
    /// σ: the noise standard deviation every value of a private ALS release got (of a
    /// distributed-DP release: the sum's, √s·σ'·γ).
    public static let noiseStddev = "dp_noise_stddev"
    /// `dp_mechanism` of a distributed-DP release (`DistributedGaussian`), unmasked by
    /// `fl-secagg unmask`.
    public static let distributedGaussianMechanism = "distributed_discrete_gaussian"
    /// Distributed DP: the noise shares (parties) in the sum.
    public static let parties = "dp_parties"

    /// The keys every central release sets: its mechanism, z, q, the grid g and whether the
    /// noise (and sample) were private.
    public static func release(mechanism name: String, noiseMultiplier z: Double, sampleRate q: Double, granularity g: Double, isPrivate: Bool) -> [String: String] {
        [mechanism: name, noiseMultiplier: "\(z)", sampleRate: "\(q)", granularity: "\(g)", DPMetadata.isPrivate: isPrivate ? "true" : "false"]
    }

    /// Whether a sum's metadata says it holds private ALS statistics (central, or distributed
    /// over statistics bounded per user).
    public static func isPrivateALS(_ extra: [String: String]) -> Bool {
        extra[mechanism] == alsGaussianMechanism
            || (extra[mechanism] == distributedGaussianMechanism && extra[ALSContributionBounds.maxItemsKey] != nil)
    }
}

/// Where the key of a round's Poisson sampling came from; recorded in updates as
/// `sampling_key`. Amplification by subsampling holds only when nobody but the sampler
/// knows the key.
public enum SamplingKeySource: String, Sendable, CaseIterable {
    /// Drawn from the system CSPRNG by the process that samples, never written anywhere.
    case fresh
    /// Read from a secret key file (`fl-train-local --sample-key-file`), so a rerun of a
    /// round draws the same sample.
    case secret
    /// A seed given on the command line for tests: known, hence not private.
    case test

    /// Whether the sample is unpredictable to anyone without access to the key.
    public var isSecret: Bool { self != .test }
}
