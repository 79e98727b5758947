import ArgumentParser
import FedRecCore
import FedRecTraining
import FedRecWire

/// Local training settings; `fl-eval` and `fl-recommend` take the same ones to rebuild
/// user parameters exactly as training does.
public struct TrainingArguments: ParsableArguments {
    public init() {}

    @Option(help: "What clients send: sgd (parameter deltas) or als (least-squares statistics; federated ALS equals centralised ALS).")
    var algorithm: TrainingOptions.Algorithm = .sgd

    @Option(help: "Local epochs per round.")
    var epochs = 1

    @Option(help: "Local minibatch size (default: 1).")
    var batchSize: Int?

    @Option(name: .customLong("lr"), help: "Local learning rate (default: 0.01).")
    var learningRate: Float?

    @Option(help: "L2 regularisation λ (ALS: weighted by the row's count for explicit data; default: 0.02).")
    var l2: Float?

    @Option(help: "L2 regularisation of biases in ALS solves (default: --l2).")
    var l2Bias: Float?

    @Option(help: "Local optimiser: sgd, adam or adagrad (default: sgd; lr and fm: sgd or adagrad).")
    var optimizer: TrainingOptions.Optimizer?

    @Option(help: "FedProx proximal weight μ (0: off).")
    var proxMu: Float = 0

    @Option(help: "Sampled negatives per positive for BCE (default: 4).")
    var negatives: Int?

    @Option(help: "Confidence weight α of implicit ALS (1 + α on observed pairs; default: 10).")
    var alpha: Float?

    @Option(help: "Client weight in the sum: examples (n_k) or uniform.")
    var weighting: TrainingOptions.Weighting = .examples

    @Flag(help: "Rebuild user parameters from each client's data every round (Federated Reconstruction) instead of keeping them in a state file.")
    public var reconstruct = false

    @Option(help: "SGD epochs over user parameters alone when reconstructing BPR/BCE users (default: 5).")
    var reconstructionEpochs: Int?

    @Option(help: "Clip each client's whole contribution to this L2 norm (0: off).")
    var clip: Double = 0

    @Option(help: "Scale of the N(0, scale²) initial user embeddings (default: 0.1).")
    var initScale: Float?

    @Option(help: "Seed for shuffling, negatives and initial user embeddings (default: 0).")
    var seed: UInt64?

    @Option(help: ArgumentHelp(
        "Compress each client's SGD update (mf, ncf) on the wire: f32 (none: each client's rows and float32 values apart, the baseline), q8 or q4 (QSGD, unbiased stochastic levels, a float32 L2-norm scale a row; with --secagg-session: s levels on the shared scale --secagg-clip, masked at the roster's bits), or topk:RATIO (the ⌈RATIO·n⌉ largest of n values, with error feedback kept in --state; not with secure aggregation). Not with --clip. fl-eval ignores it.",
        valueName: "f32|q8|q4|topk:RATIO"))
    var compress: UpdateCompression?

    @Option(help: "Tests only: seed the stochastic rounding of --compress (default: the system CSPRNG).")
    var compressSeed: UInt64?

    public func validate() throws {
        let options = self.options
        guard epochs >= 0, options.batchSize >= 1, options.negatives >= 1, options.reconstructionEpochs >= 0 else {
            throw ValidationError("--epochs and --reconstruction-epochs must be ≥ 0, --batch-size and --negatives ≥ 1")
        }
        guard options.learningRate > 0, options.l2 >= 0, proxMu >= 0, clip >= 0, options.alpha >= 0, options.initScale >= 0 else {
            throw ValidationError("--lr must be positive; --l2, --prox-mu, --clip, --alpha and --init-scale non-negative")
        }
    }

    /// The settings: the flags given, defaults for the others.
    public var options: TrainingOptions {
        var o = TrainingOptions()
        o.algorithm = algorithm
        o.epochs = epochs
        if let batchSize { o.batchSize = batchSize }
        if let learningRate { o.learningRate = learningRate }
        if let l2 { o.l2 = l2 }
        o.l2Bias = l2Bias
        if let optimizer { o.optimizer = optimizer }
        o.proxMu = proxMu
        if let negatives { o.negatives = negatives }
        if let alpha { o.alpha = alpha }
        o.weighting = weighting
        o.userParameters = reconstruct ? .reconstruct : .state
        if let reconstructionEpochs { o.reconstructionEpochs = reconstructionEpochs }
        o.clip = clip
        if let initScale { o.initScale = initScale }
        if let seed { o.seed = seed }
        o.compression = compress
        o.compressionSeed = compressSeed
        return o
    }

    /// The user-side settings given on the command line (the others are defaults), so a
    /// model's recorded ones can stand in for them. `--reconstruct` counts here; whether
    /// `--state-dir` was given is the caller's to add.
    public var explicitUserSide: Set<UserSideSettings.Field> {
        var fields: Set<UserSideSettings.Field> = []
        if reconstruct { fields.insert(.userParameters) }
        if l2 != nil { fields.insert(.l2) }
        if l2Bias != nil { fields.insert(.l2Bias) }
        if alpha != nil { fields.insert(.alpha) }
        if reconstructionEpochs != nil { fields.insert(.reconstructionEpochs) }
        if learningRate != nil { fields.insert(.learningRate) }
        if optimizer != nil { fields.insert(.optimizer) }
        if batchSize != nil { fields.insert(.batchSize) }
        if negatives != nil { fields.insert(.negatives) }
        if initScale != nil { fields.insert(.initScale) }
        if seed != nil { fields.insert(.seed) }
        return fields
    }
}

extension UpdateCompression: ExpressibleByArgument {
    public init?(argument: String) {
        guard let parsed = try? UpdateCompression(parsing: argument) else { return nil }
        self = parsed
    }
}
