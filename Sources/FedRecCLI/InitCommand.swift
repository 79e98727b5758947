import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecFormats
import FedRecData
import FedRecModel

/// `fl-init`: a fresh model checkpoint for a dataset.
public struct InitCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-init",
        abstract: "Create a fresh model checkpoint (round 0) for a dataset.",
        usage: "fl-init [<options>] --dataset <dataset> --output <output>",
        discussion: """
            Item embeddings are drawn from N(0, scale²) with the seed; biases start at zero and \
            the global bias at the middle of the rating scale. User embeddings are not in the \
            model: they are private to clients.

            Examples:
              fl-init --dataset ml100k --objective mse --dim 32 -o model-0000.safetensors
              fl-init --dataset ml100k --objective bpr --dim 64 --seed 7 -o m0.safetensors
              fl-init --dataset ml100k --objective wals --item-text item-text.safetensors \\
                  -o model-0000.safetensors
              fl-init --model fm --dataset ml100k-ctr --dim 8 --hash-bits 18 \\
                  --click-threshold 4 -o model-0000.safetensors

            With --item-text (wals only) the model is content-aware: it gets a text projection W \
            [dim, text dim], zero at first, that fl-aggregate fits to the trained item vectors each \
            round and uses to give items no client trained (cold items) the vector W·t from their \
            text. The table is not copied into the model; its identity is recorded.
            """,
        version: fedrecVersion)

    @Option(help: "Model family: mf (matrix factorisation), lr (logistic regression) or fm (a factorisation machine) over hashed features.")
    var model: ModelFamily = .mf
    @Option(help: "Dataset directory (or its dataset.json).") var dataset: String
    @Option(name: [.short, .long], help: "Checkpoint to write (- for stdout).") var output: String
    @Option(help: "Objective: mse (explicit ratings), bpr, bce or wals (implicit).") var objective: Objective = .mse
    @Option(help: "Embedding dimension d.") var dim = 32
    @Option(help: "Standard deviation of the initial item embeddings.") var initScale: Float = 0.1
    @Option(help: "Seed of the initial embeddings.") var seed: UInt64 = 0
    @Option(help: "Item text embeddings (fl-encode's text_embedding table) for a content-aware wals model.") var itemText: String?
    @OptionGroup(title: "CTR models (lr, fm; --dim is fm's rank)") var ctr: CTRInitArguments
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func validate() throws {
        guard dim >= 1 && dim <= 4096 else { throw ValidationError("--dim must be between 1 and 4096") }
        guard initScale >= 0 else { throw ValidationError("--init-scale must be ≥ 0") }
    }

    public func run() throws {
        try reportingErrors("fl-init") {
            try FileRoles(inputs: [dataset, itemText], outputs: [output]).check()
            switch model {
            case .lr, .fm:
                try ctr.initialise(family: model, dataset: dataset, dim: dim, scale: initScale, seed: seed, output: output, json: format.json)
                return
            case .mf: break
            default: throw FedRecError(.usage, "fl-init --model \(model.rawValue) is not supported yet")
            }
            let manifest = try DatasetManifest.load(dataset)
            let model = try MFModel.initial(for: manifest, objective: objective, dim: dim, scale: initScale, seed: seed, itemText: itemText)
            let identity = try model.write(to: output)
            if format.json && output != "-" {
                try emit(model.summary(path: output, identity: identity).canonicalText)
            }
        }
    }
}
