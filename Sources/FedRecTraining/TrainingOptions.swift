import FedRecWire
import FedRecMechanisms

/// How a client trains in one round.
public struct TrainingOptions: Sendable, Equatable {
    /// What clients send: SGD parameter deltas, or alternating-least-squares statistics.
    public typealias Algorithm = UpdateAlgorithm
    /// The client's optimiser for local SGD steps.
    public enum Optimizer: String, Sendable, CaseIterable { case sgd, adam, adagrad }
    /// How each client's contribution is weighted in the sum.
    public typealias Weighting = ContributionWeighting
    /// Where private user parameters come from at the start of a round.
    public enum UserParameters: String, Sendable, CaseIterable {
        /// Kept in the shard's state file between rounds.
        case state
        /// Rebuilt from the client's own data against the current global model, every
        /// round (Federated Reconstruction, Singhal et al. 2021); no state file needed.
        case reconstruct
    }

    public var algorithm: Algorithm = .sgd
    public var epochs = 1
    public var batchSize = 1
    public var learningRate: Float = 0.01
    /// L2 regularisation λ.
    public var l2: Float = 0.02
    /// L2 regularisation of biases in the ALS solves (nil: the same as `l2`).
    public var l2Bias: Float?
    public var optimizer: Optimizer = .sgd
    /// FedProx proximal weight μ (Li et al. 2020); 0 disables it.
    public var proxMu: Float = 0
    /// Sampled negatives per positive for BCE (BPR uses one per positive).
    public var negatives = 4
    /// Confidence weight α for implicit ALS: an observed pair has confidence 1 + α, every
    /// other pair 1 (Hu, Koren, Volinsky 2008, with one interaction per observed pair).
    public var alpha: Float = 10
    public var weighting: Weighting = .examples
    public var userParameters: UserParameters = .state
    /// SGD epochs over the user parameters alone when they are reconstructed by SGD
    /// (BPR, BCE); MSE and ALS reconstruct in closed form.
    public var reconstructionEpochs = 5
    /// Clip each client's whole contribution to this L2 norm (0: no clipping).
    public var clip: Double = 0
    /// Scale of N(0, scale²) initial user embeddings.
    public var initScale: Float = 0.1
    public var seed: UInt64 = 0
    /// Poisson client sampling rate q (`PoissonSampling`); nil: every client trains.
    public var sampleRate: Double?
    /// Key of the sampling decisions; must be secret for the privacy guarantee. nil: the
    /// trainer draws one from the system CSPRNG (`SamplingKeySource.fresh`).
    public var sampleSeed: UInt64?
    /// Where `sampleSeed` came from, recorded in the update (`sampling_key`).
    public var sampleKeySource: SamplingKeySource = .test
    /// Local DP: noise multiplier z of the Gaussian each client adds to its clipped dense
    /// delta before it leaves the client (0: off; needs `clip` > 0 and uniform weighting).
    public var localNoiseMultiplier: Double = 0
    /// δ at which each client's local-DP ε is reported.
    public var localDelta: Double = 1e-5
    /// Tests only: seed the local-DP noise (the update is then marked `private=false`).
    public var localNoiseSeed: UInt64?
    /// Private ALS: per-user bounds on the statistics (Chien et al. 2021), so that
    /// `fl-dp-noise` can release their sum; nil: unbounded (not releasable).
    public var alsBounds: ALSContributionBounds?
    /// Compress each client's SGD update on the wire (`UpdateCompression`); nil: the
    /// shard's plain sum.
    public var compression: UpdateCompression?
    /// Tests only: seed the compression's stochastic rounding (nil: ChaCha20 keyed from the
    /// system CSPRNG).
    public var compressionSeed: UInt64?

    public init() {}
}

extension TrainingOptions {
    /// The round's Poisson client sampling (nil without `sampleRate`) and where its key
    /// came from: `sampleSeed` as given, or, without one, a secret drawn from the system
    /// CSPRNG (`.fresh`), since the sample must be unpredictable for sampling to amplify
    /// privacy.
    public func poissonSampling() throws -> (sampling: PoissonSampling, key: SamplingKeySource)? {
        try Self.poissonSampling(rate: sampleRate, seed: sampleSeed, source: sampleKeySource)
    }

    /// `poissonSampling()` for a trainer that keeps the three settings apart.
    public static func poissonSampling(rate: Double?, seed: UInt64?, source: SamplingKeySource) throws -> (sampling: PoissonSampling, key: SamplingKeySource)? {
        guard let rate else { return nil }
        guard let seed else {
            var generator = SystemRandomNumberGenerator()
            return (try PoissonSampling(rate: rate, seed: generator.next()), .fresh)
        }
        return (try PoissonSampling(rate: rate, seed: seed), source)
    }
}
