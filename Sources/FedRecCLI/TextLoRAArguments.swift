import ArgumentParser
import FedRecSupport


/// fl-init's text-lora options.
public struct TextLoRAInitArguments: ParsableArguments {
    @Option(help: "text-lora: the base encoder's directory (config.json, model.safetensors, vocab.txt).") var baseModel: String?
    @Option(help: "text-lora: rank r of the adapters.") var rank = 8
    @Option(help: "text-lora: α; the update is scaled by α/r.") var alpha: Float = 16
    @Option(help: "text-lora: adapted layers: query, key, value, attention_output, intermediate, output.") var targets = "query,value"
    @Flag(help: "text-lora: FFA-LoRA, A fixed from --seed and only B trained (the choice for private training).") var frozenA = false
    @Option(help: "text-lora: what the adapter learns: search (query logs) or next-item (a user's recent titles → the next item).") var task = "search"
    @Option(help: "text-lora next-item: how many of a user's latest items make a query.") var history = 5

    public init() {}

    func request(dataset: String, output: String, seed: UInt64, json: Bool) throws -> TextLoRAInitRequest {
        guard let baseModel else { throw FedRecError(.usage, "--model text-lora needs --base-model DIR (make model fetches models/all-MiniLM-L6-v2)") }
        return TextLoRAInitRequest(
            dataset: dataset, output: output, baseModel: baseModel, rank: rank, alpha: alpha, targets: targets, frozenA: frozenA, seed: seed,
            task: task, historyLength: history, json: json)
    }
}

/// fl-train-local's and fl-eval's text-lora options.
public struct TextLoRATrainArguments: ParsableArguments {
    @Option(help: "text-lora: the dataset's items.tsv, the catalogue's texts (default: beside the shard's dataset).") var items: String?
    @Option(help: "text-lora: the base encoder's directory (default: the one fl-init recorded).") var baseModel: String?
    @Option(help: "text-lora: temperature τ of the sampled softmax (and of the BCE's logits).") var temperature: Float = 0.05
    @Option(help: "text-lora: the local loss, softmax (sampled softmax over the batch and the negatives) or bce (labelled pairs: each query's item 1, the sampled negatives 0).")
    var loss = "softmax"
    @Option(help: "text-lora next-item: a user's transitions (history → next item) trained on an epoch, drawn afresh each round (0: all).")
    var examplesPerUser = 8
    @Option(help: "text-lora: threads for the encoder's matrix products (default: all cores).") var threads: Int?

    public init() {}
}
