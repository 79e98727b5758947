import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecMechanisms
import FedRecTraining
import FedRecWire

extension ALSContributionBounds.ItemGramMode: ExpressibleByArgument {}

/// `fl-train-local`'s privacy options: Poisson client sampling and local DP.
struct SamplingArguments: ParsableArguments {
    @Option(help: "Poisson client sampling: each client trains this round with probability q, decided by HMAC(seed, round, client), so every shard agrees. Recorded as sample_rate and population. (Fixed-size sampling would need another privacy analysis.)")
    var sampleRate: Double?

    @Option(help: "A secret file holding the sampling key (a decimal 64-bit number, e.g. from /dev/urandom, mode 600), shared by a run's shards so a rerun draws the same sample. Default: a fresh key from the system CSPRNG.")
    var sampleKeyFile: String?

    @Option(help: "Tests only: a known sampling seed. The sample is then public and amplifies nothing (the update says sampling_key=test).")
    var testSampleSeed: UInt64?

    @Option(help: ArgumentHelp("Deprecated: --test-sample-seed (a known seed), or --sample-key-file for a secret one.", visibility: .hidden))
    var sampleSeed: UInt64?

    @Flag(help: "Local DP: each client clips its delta to --clip C and adds Gaussian noise of std z·C to every coordinate of the model before it leaves the client (needs --weighting uniform).")
    var localDp = false

    @Option(help: "Noise multiplier z of --local-dp.")
    var noiseMultiplier: Double?

    @Option(help: "δ at which each client's local-DP ε is reported.")
    var delta: Double = 1e-5

    @Option(help: ArgumentHelp("Tests only: seed the local-DP noise; the update is marked private=false.", visibility: .hidden))
    var noiseSeed: UInt64?

    @Option(help: "Private ALS (Chien et al. 2021): each user contributes statistics for at most K of their items (drawn uniformly), so fl-dp-noise can release the sum. Needs --algorithm als, --weighting uniform and --dp-user-clip.")
    var dpMaxItems: Int?

    @Option(help: "Private ALS: clip the user vector in the shared statistics to this L2 norm Γ (the user's own vector is not clipped).")
    var dpUserClip: Double?

    @Option(help: "Private ALS, explicit: clip each rating's residual to ±R in the shared statistics (default: 2).")
    var dpResidualClip: Double?

    @Option(help: "Private implicit ALS: share and noise each item's Gram (noised, as Chien et al.), or let the server estimate it from the item's count and the users' mean Gram (mean: less sensitivity and noise).")
    var dpItemGram: ALSContributionBounds.ItemGramMode?

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
        if (dpMaxItems != nil) != (dpUserClip != nil) { throw ValidationError("--dp-max-items and --dp-user-clip go together") }
        if let dpMaxItems, dpMaxItems < 1 { throw ValidationError("--dp-max-items must be at least 1") }
        for (name, value) in [("--dp-user-clip", dpUserClip), ("--dp-residual-clip", dpResidualClip)] {
            if let value, !(value > 0 && value.isFinite) { throw ValidationError("\(name) must be a positive number") }
        }
        if dpItemGram != nil && dpMaxItems == nil { throw ValidationError("--dp-item-gram goes with --dp-max-items") }
        if dpResidualClip != nil && dpMaxItems == nil { throw ValidationError("--dp-residual-clip goes with --dp-max-items") }
        let keys = [sampleKeyFile != nil, testSampleSeed != nil, sampleSeed != nil].filter { $0 }.count
        if keys > 1 { throw ValidationError("give one of --sample-key-file and --test-sample-seed") }
        if keys > 0 && sampleRate == nil { throw ValidationError("--sample-key-file and --test-sample-seed go with --sample-rate") }
    }

    /// Copies these settings into `options`, reading the key file, and says on stderr
    /// (one line) when the sample is not secret or its key is fresh.
    func apply(to options: inout TrainingOptions, quiet: Bool) throws {
        options.sampleRate = sampleRate
        if let dpMaxItems, let dpUserClip {
            options.alsBounds = ALSContributionBounds(
                maxItems: dpMaxItems, userClip: dpUserClip, residualClip: dpResidualClip ?? 2, alpha: Double(options.alpha),
                itemGram: dpItemGram ?? .noised)
        }
        var stderr = StandardError()
        if let sampleKeyFile {
            options.sampleSeed = try SamplingKey.read(sampleKeyFile)
            options.sampleKeySource = .secret
        } else if let seed = testSampleSeed ?? sampleSeed {
            options.sampleSeed = seed
            options.sampleKeySource = .test
            let flag = testSampleSeed != nil ? "--test-sample-seed" : "--sample-seed (deprecated)"
            print("fl-train-local: warning: \(flag) makes the sample public: sampling amplifies no privacy (sampling_key=test)", to: &stderr)
        } else if sampleRate != nil {
            options.sampleSeed = nil
            if !quiet { print("fl-train-local: sampling with a fresh secret key from the system CSPRNG (sampling_key=fresh)", to: &stderr) }
        }
        if localDp { options.localNoiseMultiplier = noiseMultiplier ?? 0 }
        options.localDelta = delta
        options.localNoiseSeed = noiseSeed
    }
}
