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
              fl-init --dataset ml100k --model ncf --ncf-variant neumf --objective bce \\
                  --dim 8 --mlp-dim 16 --layers 32,16,8 -o m0.safetensors
              fl-init --dataset ml100k --model ncf --objective bce \\
                  --pretrain-gmf gmf/model-0020.safetensors \\
                  --pretrain-mlp mlp/model-0020.safetensors --pretrain-alpha 0.5 \\
                  --pretrain-gmf-states gmf/state --pretrain-mlp-states mlp/state \\
                  --pretrain-state-out neumf/state -o neumf/model-0000.safetensors
              fl-init --model fm --dataset ml100k-ctr --dim 8 --hash-bits 18 \\
                  --click-threshold 4 -o model-0000.safetensors
              fl-init --model gfcf --dataset gowalla --eigenvectors 256 \\
                  --filter-weight 0.3 -o model-0000.safetensors

            With --item-text (wals only) the model is content-aware: it gets a text projection W \
            [dim, text dim], zero at first, that fl-aggregate fits to the trained item vectors each \
            round and uses to give items no client trained (cold items) the vector W·t from their \
            text. The table is not copied into the model; its identity is recorded.

            --model ncf: neural collaborative filtering (He et al. 2017), federated as in \
            FedNCF: GMF, MLP or NeuMF (--ncf-variant), --objective bce (sampled negatives) or \
            mse. User vectors stay with the clients; item embeddings, the tower and the \
            prediction layer are averaged. NeuMF can start from a trained GMF and MLP \
            (--pretrain-gmf, --pretrain-mlp; h = [α h_GMF, (1 − α) h_MLP]), and their \
            clients' user states are merged with --pretrain-*-states.

            --model gfcf: a graph filter (GF-CF, Shen et al. 2021) of implicit feedback: \
            clients send their users' item co-occurrences C = Σ r_u r_uᵀ / d_u and item \
            degrees, fl-aggregate --model normalises the sum to P̃ = D^{-1/2} C D^{-1/2} and \
            finds its top --eigenvectors eigenvectors V; a user's items r_u are scored \
            r_u P̃ + α r_u D^{-1/2} V Vᵀ D^{1/2} (α = --filter-weight). One round fits it.

            --model text-lora: LoRA adapters (Hu et al. 2021) of rank --rank on --targets of \
            every layer of the encoder in --base-model, for federated fine-tuning of search \
            (fl-train-local on the dataset's query logs). B starts at zero (the base \
            encoder); A is random from --seed. With --frozen-a (FFA-LoRA, Sun et al. 2024) A \
            stays fixed and is not in the checkpoint: clients train and send B only.
            --task next-item trains recommendation from text instead: the titles of a \
            user's --history latest items are the query, the item that came next the \
            positive, from each client's own training interactions.

              fl-init --dataset mls --model text-lora \
                  --base-model models/all-MiniLM-L6-v2 --rank 8 \
                  --targets query,value --frozen-a --seed 1 -o model-0000.safetensors
            """,
        version: fedrecVersion)

    @Option(help: "Dataset directory (or its dataset.json).") var dataset: String
    @Option(name: [.short, .long], help: "Checkpoint to write (- for stdout).") var output: String
    @Option(help: "Model family: mf (matrix factorisation), ncf (neural CF), gfcf (a graph filter of item co-occurrence), lr (logistic regression) or fm (a factorisation machine) over hashed features, or text-lora (adapters of a text encoder).") var model: ModelFamily = .mf
    @Option(help: "Objective: mse (explicit ratings), bpr, bce or wals (implicit).") var objective: Objective = .mse
    @Option(help: "Embedding dimension d.") var dim = 32
    @Option(help: "Standard deviation of the initial item embeddings.") var initScale: Float = 0.1
    @Option(help: "Seed of the initial embeddings.") var seed: UInt64 = 0
    @Option(help: "Item text embeddings (fl-encode's text_embedding table) for a content-aware wals model.") var itemText: String?
    @OptionGroup(title: "Neural CF (--model ncf)") var ncf: NCFInitArguments
    @OptionGroup(title: "text-lora (--model text-lora)") var textLoRA: TextLoRAInitArguments
    @OptionGroup(title: "CTR models (lr, fm; --dim is fm's rank)") var ctr: CTRInitArguments
    @OptionGroup(title: "Graph filter (--model gfcf; --seed is the eigen solver's)") var graphFilter: GraphFilterInitArguments
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func validate() throws {
        guard dim >= 1 && dim <= 4096 else { throw ValidationError("--dim must be between 1 and 4096") }
        guard initScale >= 0 else { throw ValidationError("--init-scale must be ≥ 0") }
        if model != .ncf && ncf.given { throw ValidationError("--ncf-variant, --layers, --mlp-dim and --pretrain-* need --model ncf") }
        if objective == .filter && model != .gfcf { throw ValidationError("--objective filter is the objective of --model gfcf only") }
    }

    public func run() throws {
        try reportingErrors("fl-init") {
            try FileRoles(inputs: [dataset, itemText, ncf.pretrainGmf, ncf.pretrainMlp, textLoRA.baseModel], outputs: [output]).check()
            let summary: JSONValue
            switch model {
            case .textLoRA:
                return try TextFamilyLink.require("fl-init").initialize(try textLoRA.request(dataset: dataset, output: output, seed: seed, json: format.json))
            case .gfcf:
                if itemText != nil { throw FedRecError(.usage, "--item-text is for mf wals models") }
                return try graphFilter.initialise(dataset: dataset, seed: seed, output: output, json: format.json)
            case .lr, .fm:
                return try ctr.initialise(family: model, dataset: dataset, dim: dim, scale: initScale, seed: seed, output: output, json: format.json)
            case .mf:
                let model = try MFModel.initial(for: try DatasetManifest.load(dataset), objective: objective, dim: dim, scale: initScale, seed: seed, itemText: itemText)
                summary = model.summary(path: output, identity: try model.write(to: output))
            case .ncf:
                let manifest = try DatasetManifest.load(dataset)
                if itemText != nil { throw FedRecError(.usage, "--item-text is for mf wals models") }
                let model = try ncf.model(manifest: manifest, dataset: dataset, objective: objective, dim: dim, scale: initScale, seed: seed)
                summary = model.summary(path: output, identity: try model.write(to: output))
            }
            if format.json && output != "-" { try emit(summary.canonicalText) }
        }
    }
}
