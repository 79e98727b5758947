import ArgumentParser
import FedRecCore

/// `fl-train-local`'s privacy options: Poisson client sampling and local DP.
struct SamplingArguments: ParsableArguments {
    @Option(help: "Poisson client sampling: each client trains this round with probability q, decided by HMAC(seed, round, client), so every shard agrees. Recorded as sample_rate and population. (Fixed-size sampling would need another privacy analysis.)")
    var sampleRate: Double?

    @Option(help: "Key of the sampling decisions (default: --seed). Keep it secret: the privacy amplification of sampling assumes nobody knows who was drawn.")
    var sampleSeed: UInt64?

    @Flag(help: "Local DP: each client clips its delta to --clip C and adds Gaussian noise of std z·C to every coordinate of the model before it leaves the client (needs --weighting uniform).")
    var localDp = false

    @Option(help: "Noise multiplier z of --local-dp.")
    var noiseMultiplier: Double?

    @Option(help: "δ at which each client's local-DP ε is reported.")
    var delta: Double = 1e-5

    @Option(help: ArgumentHelp("Tests only: seed the local-DP noise; the update is marked private=false.", visibility: .hidden))
    var noiseSeed: UInt64?

    func validate() throws {
        if let sampleRate, !(0...1).contains(sampleRate) { throw ValidationError("--sample-rate must be in [0, 1]") }
        if localDp {
            guard let noiseMultiplier, noiseMultiplier > 0, noiseMultiplier.isFinite else {
                throw ValidationError("--local-dp needs --noise-multiplier z > 0")
            }
        } else if noiseMultiplier != nil {
            throw ValidationError("--noise-multiplier applies to --local-dp; central noise is added by fl-dp-noise")
        }
        guard delta > 0, delta < 1 else { throw ValidationError("--delta must be in (0, 1)") }
    }

    /// Copies these settings into `options`.
    func apply(to options: inout TrainingOptions) {
        options.sampleRate = sampleRate
        options.sampleSeed = sampleSeed ?? options.seed
        if localDp { options.localNoiseMultiplier = noiseMultiplier ?? 0 }
        options.localDelta = delta
        options.localNoiseSeed = noiseSeed
    }
}
