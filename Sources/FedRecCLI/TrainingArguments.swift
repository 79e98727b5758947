import ArgumentParser
import FedRecCore

/// Local training settings; `fl-eval` and `fl-recommend` take the same ones to rebuild
/// user parameters exactly as training does.
public struct TrainingArguments: ParsableArguments {
    public init() {}

    @Option(help: "What clients send: sgd (parameter deltas) or als (least-squares statistics; federated ALS equals centralised ALS).")
    var algorithm: TrainingOptions.Algorithm = .sgd

    @Option(help: "Local epochs per round.")
    var epochs = 1

    @Option(help: "Local minibatch size.")
    var batchSize = 1

    @Option(name: .customLong("lr"), help: "Local learning rate.")
    var learningRate: Float = 0.01

    @Option(help: "L2 regularisation λ (ALS: weighted by the row's count for explicit data).")
    var l2: Float = 0.02

    @Option(help: "L2 regularisation of biases in ALS solves (default: --l2).")
    var l2Bias: Float?

    @Option(help: "Local optimiser: sgd or adam.")
    var optimizer: TrainingOptions.Optimizer = .sgd

    @Option(help: "FedProx proximal weight μ (0: off).")
    var proxMu: Float = 0

    @Option(help: "Sampled negatives per positive for BCE.")
    var negatives = 4

    @Option(help: "Confidence weight α of implicit ALS (1 + α on observed pairs).")
    var alpha: Float = 10

    @Option(help: "Client weight in the sum: examples (n_k) or uniform.")
    var weighting: TrainingOptions.Weighting = .examples

    @Flag(help: "Rebuild user parameters from each client's data every round (Federated Reconstruction) instead of keeping them in a state file.")
    public var reconstruct = false

    @Option(help: "SGD epochs over user parameters alone when reconstructing BPR/BCE users.")
    var reconstructionEpochs = 5

    @Option(help: "Clip each client's whole contribution to this L2 norm (0: off).")
    var clip: Double = 0

    @Option(help: "Scale of the N(0, scale²) initial user embeddings.")
    var initScale: Float = 0.1

    @Option(help: "Seed for shuffling, negatives and initial user embeddings.")
    var seed: UInt64 = 0

    public func validate() throws {
        guard epochs >= 0, batchSize >= 1, negatives >= 1, reconstructionEpochs >= 0 else {
            throw ValidationError("--epochs and --reconstruction-epochs must be ≥ 0, --batch-size and --negatives ≥ 1")
        }
        guard learningRate > 0, l2 >= 0, proxMu >= 0, clip >= 0, alpha >= 0, initScale >= 0 else {
            throw ValidationError("--lr must be positive; --l2, --prox-mu, --clip, --alpha and --init-scale non-negative")
        }
    }

    public var options: TrainingOptions {
        var o = TrainingOptions()
        o.algorithm = algorithm
        o.epochs = epochs
        o.batchSize = batchSize
        o.learningRate = learningRate
        o.l2 = l2
        o.l2Bias = l2Bias
        o.optimizer = optimizer
        o.proxMu = proxMu
        o.negatives = negatives
        o.alpha = alpha
        o.weighting = weighting
        o.userParameters = reconstruct ? .reconstruct : .state
        o.reconstructionEpochs = reconstructionEpochs
        o.clip = clip
        o.initScale = initScale
        o.seed = seed
        return o
    }
}
