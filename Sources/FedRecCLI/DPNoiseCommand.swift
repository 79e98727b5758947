import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecMechanisms
import FedRecPrivacy

/// `fl-dp-noise`: client-level differential privacy for a round's sum, its accountant and
/// its calibration.
public struct DPNoiseCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-dp-noise",
        abstract: "Add client-level differential-privacy noise to a round's sum; account and calibrate ε.",
        discussion: """
            What is protected: any one user's (client's) entire data. Whether a client took \
            part at all, and everything it did, changes the probability of any released model \
            by at most a factor e^ε (plus a probability δ): that is the (ε, δ) guarantee, for \
            all rounds the ledger records together. It is not about single ratings: all of a \
            client's data is covered at once. With one client per user (cross-device), the \
            unit of privacy is a user's whole history.

            What a given ε needs in practice (bench/RESULTS.md): many users per item, not \
            only many users. At ε = 8 private ALS keeps 75 % of the non-private federated \
            model's Recall@20 on Gowalla (29,858 users, a median item has 12), 62 % of its \
            HR@10 on Amazon Beauty (22,363 users, median item 9) and 99.6 % of its accuracy \
            on Jester (24,983 users, 100 jokes each rated by thousands); on a synthetic \
            population with 500 items it keeps 88 % from 10,000 users on, 27 % at 1,000. \
            With a few hundred users (MovieLens-100K) a private model ranks like popularity; \
            at ε = 1 it is below popularity on all three real sets.

            How: each sampled client (Poisson, rate q) clips its whole delta to L2 norm C; the \
            sum of a round gets Gaussian noise of standard deviation z·C on every coordinate \
            of the model (touched or not), drawn exactly from a discrete Gaussian \
            (Canonne-Kamath-Steinke 2020) on a fine grid with a CSPRNG, so the floating-point \
            attack of Mironov 2012 does not apply. The server divides by the fixed q·N \
            (fl-aggregate --fixed-denominator). The accountant is Rényi DP of the \
            subsampled Gaussian (Mironov-Talwar-Zhang 2019) converted with the tight bound \
            of Canonne-Kamath-Steinke 2020, as Google's dp_accounting does.

            Threat model and limits: the server is honest but curious and runs fl-dp-noise \
            itself, so the noise adder is trusted; whoever sees the sums before noise (the \
            server, the shard hosts) sees un-noised, sparse data that reveals which items \
            clients touched, unless secure aggregation hides them. The released models and \
            noised sums are what is private. The accounting assumes Poisson sampling with a \
            secret seed (fixed-size sampling needs another analysis), uniform weighting \
            (--weighting uniform) and clipping (--clip C); the population N is treated as \
            public. --seed is for tests only and marks the output private=false. Clients \
            who trust no server use fl-train-local --local-dp instead.

            Private ALS (Chien, Jain, Krichene, Rendle, Song, Thakurta, Zhang 2021): a sum \
            of ALS statistics trained with fl-train-local --dp-max-items K --dp-user-clip G \
            (each user shares at most K items' statistics, with their vector clipped to \
            norm G; explicit residuals clipped to ±R) gets noise of std z·Δ on every \
            value of every item (Gram triangle, right-hand side, count) and on the dense \
            part, Δ = the L2 sensitivity of one user's share from K, G, R and α \
            (docs/FORMATS.md). A user's own vector is solved on all of their data and \
            never leaves them (joint DP: only what is shared is private). Every client \
            takes part (q = 1) unless the round was sampled. fl-aggregate solves the \
            noised items with a noise-aware ridge and skips those whose noised count is \
            under --dp-min-count (default 3σ). With --dp-item-gram mean (implicit ALS) \
            the items' Grams are not shared: the server estimates each from the item's \
            noised count and the users' mean Gram, which removes their α²G⁴ from Δ.

            Adaptive clipping (--adaptive-clip; Andrew, Thakkar, McMahan, Ramaswamy 2021): \
            instead of a fixed C, the clip follows the γ quantile of the clients' update \
            norms (--target-quantile, default 0.5). The sum records how many clients fitted \
            under C; fl-dp-noise releases that count with discrete Gaussian noise of std σ_b \
            (--clip-noise-std, default q·N/20) and computes the next round's clip \
            C·exp(−η(b̃ − γ)) (--clip-lr η, default 0.2), b̃ the noised fraction. It writes \
            it to --clip-out and into the noised sum (dp_next_clip). The pair costs what z \
            alone costs: the sum gets z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2) > z, the ledger charges z, \
            so ε is that of fixed clipping with the same z. It needs 2σ_b > z.

            Distributed DP (no trusted noise adder): with secure aggregation the parties \
            add the noise themselves (fl-train-local --ddp-epsilon; Kairouz, Liu & Steinke \
            2021), so the server never holds an un-noised sum, only the unmasked noised \
            one; fl-secagg unmask --ledger records it here as distributed_discrete_gaussian \
            (the discrete Gaussian sum's RDP with its τ term) and fl-dp-noise account \
            composes it with every other line. The guarantee then holds as long as the \
            parties the noise was calibrated for (--ddp-min-parties) add their shares: a \
            server that colludes with parties learns their updates, not the others'.

            Population: what a given ε needs (bench/RESULTS.md) — at ε = 8 private ALS \
            keeps 27 % / 88 % of the non-private model at 1,000 / 10,000 synthetic users, \
            75 % on Gowalla's 29,858; with a few hundred users expect popularity level.

            Exit 87 when a release would exceed --budget-epsilon: nothing is written and the \
            ledger is untouched.

            Crashes: the noise is drawn from a secret per-release key, kept in LEDGER.keys \
            (mode 600) from before the ledger line until the output is in place. A rerun \
            after a kill in between (same round, same sum, same settings) writes the very \
            same noised sum and charges nothing more.

            Examples:
              fl-dp-noise sum-0003.safetensors -o noised-0003.safetensors \\
                  --ledger run/ledger.jsonl --noise-multiplier 1.1 --budget-epsilon 8 \\
                  --delta 1e-5
              fl-aggregate noised-0003.safetensors --model model-0003.safetensors \\
                  --fixed-denominator 94.3 -o model-0004.safetensors
              fl-dp-noise account --sample-rate 0.1 --noise-multiplier 1.1 --rounds 100 \\
                  --delta 1e-5
              fl-dp-noise account --ledger run/ledger.jsonl --delta 1e-5
              fl-dp-noise calibrate --epsilon 8 --delta 1e-5 --rounds 100 --sample-rate 0.1
              fl-dp-noise sum-0003.safetensors -o noised-0003.safetensors \\
                  --ledger run/ledger.jsonl --noise-multiplier 1.1 --budget-epsilon 8 \\
                  --delta 1e-5 --adaptive-clip --target-quantile 0.5 --clip-lr 0.2 \\
                  --clip-out run/clip-0004
              fl-train-local ... --clip "$(cat run/clip-0004)"  # round 4 trains with it
            """,
        version: fedrecVersion,
        subcommands: [DPNoiseRelease.self, DPAccount.self, DPCalibrate.self],
        defaultSubcommand: DPNoiseRelease.self)

    public init() {}
}

/// `fl-dp-noise [noise]`: noise one round's sum and record it in the ledger.
public struct DPNoiseRelease: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "noise",
        abstract: "Noise a round's sum (uniform weighting, clipped, sampled) and record the release in the ledger.",
        usage: """
            fl-dp-noise [noise] [<options>] <sum> --output <output> --ledger <ledger>
              --noise-multiplier <noise-multiplier>
            """)

    @Argument(help: "The round's sum (kind sum or update), made by fl-aggregate from the clients' updates.") var sum: String
    @Option(name: [.short, .long], help: "The noised sum to write (a file; it appears only after the ledger line is on disk).") var output: String
    @Option(help: "The privacy ledger (JSON lines, created if missing).") var ledger: String
    @Option(help: "z: noise standard deviation over the clip norm C (from calibrate).") var noiseMultiplier: Double
    @Option(help: "Refuse (exit 87) a release that would bring ε above this.") var budgetEpsilon: Double?
    @Option(help: "δ of the budget and of the reported ε.") var delta: Double?
    @Option(help: "The fixed denominator q·N (default: from the sum's sample_rate and population).") var expectedClients: Double?
    @Option(help: "Tests only: seeded, NOT private noise (the output says private=false).") var seed: UInt64?
    @OptionGroup(title: "Adaptive clipping") var adaptive: AdaptiveClipArguments
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func validate() throws {
        guard noiseMultiplier > 0, noiseMultiplier.isFinite else { throw ValidationError("--noise-multiplier must be positive") }
        if budgetEpsilon != nil && delta == nil { throw ValidationError("--budget-epsilon needs --delta") }
        if let delta, !(delta > 0 && delta < 1) { throw ValidationError("--delta must be in (0, 1)") }
        if let expectedClients, !(expectedClients > 0) { throw ValidationError("--expected-clients must be positive") }
    }

    public func run() throws {
        try reportingErrors("fl-dp-noise") {
            try FileRoles(inputs: [sum], outputs: [output, adaptive.clipOut], updatedInPlace: [ledger]).check()
            var options = DPReleaseOptions(noiseMultiplier: noiseMultiplier, ledger: ledger)
            options.delta = delta
            options.expectedClients = expectedClients
            options.adaptiveClip = try adaptive.settings()
            options.nextClipOutput = adaptive.clipOut
            if let budgetEpsilon, let delta { options.budget = try PrivacyBudget(epsilon: budgetEpsilon, delta: delta) }
            let source: any NoiseSource = seed.map { SeededNoiseSource(seed: $0) } ?? SystemNoiseSource()
            let report = try CentralRelease.release(sumPath: sum, output: output, options: options, source: source)
            var stderr = StandardError()
            if !report.isPrivate { print("fl-dp-noise: warning: seeded noise, the output is NOT private", to: &stderr) }
            if format.json {
                try emit(report.json(output: output, noiseMultiplier: noiseMultiplier).canonicalText)
            } else if !format.quiet {
                print("fl-dp-noise: \(report.summaryLine)", to: &stderr)
            }
        }
    }
}

/// `fl-dp-noise --adaptive-clip` and its settings. Combinations are checked in `run()`
/// (`settings()`), so a bad one is one line on stderr (exit 64), like every other error.
public struct AdaptiveClipArguments: ParsableArguments {
    @Flag(help: "Adaptive clipping (Andrew et al. 2021): also release the noised clipped count and compute the next clip.")
    var adaptiveClip = false
    @Option(help: "γ: the quantile of client update norms the clip tracks (default 0.5).") var targetQuantile: Double?
    @Option(help: "η: the clip's geometric learning rate (default 0.2).") var clipLr: Double?
    @Option(help: "σ_b: noise std of the clipped count (default q·N/20; needs 2σ_b > z).") var clipNoiseStd: Double?
    @Option(help: "Write the next round's clip here (one line), before the noised sum appears.") var clipOut: String?

    public init() {}

    /// The settings, or nil without `--adaptive-clip`.
    /// - Throws: `FedRecError(.usage)` for a setting without `--adaptive-clip` or out of range.
    func settings() throws -> AdaptiveClipSettings? {
        guard adaptiveClip else {
            if targetQuantile != nil || clipLr != nil || clipNoiseStd != nil || clipOut != nil {
                throw FedRecError(.usage, "--target-quantile, --clip-lr, --clip-noise-std and --clip-out need --adaptive-clip")
            }
            return nil
        }
        if clipOut == "-" { throw FedRecError(.usage, "--clip-out must be a file (it is written before the noised sum appears)") }
        return try AdaptiveClipSettings(
            targetQuantile: targetQuantile ?? 0.5, learningRate: clipLr ?? 0.2, countNoiseStddev: clipNoiseStd)
    }
}

/// `fl-dp-noise account`: ε of a ledger, or of T rounds of (q, z).
public struct DPAccount: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "account",
        abstract: "Print ε for a ledger, or for --rounds T of --sample-rate q and --noise-multiplier z.",
        usage: """
            fl-dp-noise account --ledger <ledger> --delta <delta> [--json]
            fl-dp-noise account --sample-rate <sample-rate>
              --noise-multiplier <noise-multiplier> --rounds <rounds> --delta <delta>
              [--json]
            """)

    @Option(help: "A privacy ledger; its chain is verified.") var ledger: String?
    @Option(help: "Poisson sampling rate q.") var sampleRate: Double?
    @Option(help: "Noise multiplier z.") var noiseMultiplier: Double?
    @Option(help: "Number of rounds T.") var rounds: Int?
    @Option(help: "δ.") var delta: Double
    @Flag(help: "Print a JSON object (epsilon, delta, order, ...) instead of ε alone.") var json = false

    public init() {}

    public func validate() throws {
        let manual = sampleRate != nil || noiseMultiplier != nil || rounds != nil
        if ledger != nil && manual { throw ValidationError("give --ledger, or --sample-rate, --noise-multiplier and --rounds, not both") }
        if ledger == nil && (sampleRate == nil || noiseMultiplier == nil || rounds == nil) {
            throw ValidationError("give --ledger, or all of --sample-rate, --noise-multiplier and --rounds")
        }
    }

    public func run() throws {
        try reportingErrors("fl-dp-noise") {
            let account: PrivacyAccount
            if let ledger {
                account = try PrivacyAccount(ledger: try PrivacyLedger.read(path: ledger), delta: delta)
            } else if let sampleRate, let noiseMultiplier, let rounds {
                account = try PrivacyAccount(sampleRate: sampleRate, noiseMultiplier: noiseMultiplier, rounds: rounds, delta: delta)
            } else {
                throw FedRecError(.usage, "nothing to account")
            }
            try emit(json ? account.json.canonicalText : "\(account.epsilon)")
        }
    }
}

/// `fl-dp-noise calibrate`: the noise multiplier for a target (ε, δ).
public struct DPCalibrate: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Print the smallest noise multiplier z whose T rounds at rate q stay within (ε, δ).",
        usage: """
            fl-dp-noise calibrate --epsilon <epsilon> --delta <delta>
              --rounds <rounds> --sample-rate <sample-rate>
            """)

    @Option(help: "Target ε.") var epsilon: Double
    @Option(help: "δ.") var delta: Double
    @Option(help: "Number of rounds T.") var rounds: Int
    @Option(help: "Poisson sampling rate q.") var sampleRate: Double

    public init() {}

    public func run() throws {
        try reportingErrors("fl-dp-noise") {
            let z = try RDPAccountant().calibrateNoiseMultiplier(
                targetEpsilon: epsilon, delta: delta, sampleRate: sampleRate, steps: rounds)
            try emit("\(z)")
        }
    }
}
