import FedRecCore
import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport

/// A LoRA adapter as a federated checkpoint (`TensorModel` of family `text-lora`): the
/// adapter's tensors under their adapter-file names (`encoder.layer.N.<module>.lora_B`,
/// and `.lora_A` unless A is frozen), every one dense, and its shape and base model in
/// the settings (`setting.rank`, `alpha`, `targets`, `seed`, `frozen_a`, `base_model`,
/// `layers`, `hidden_size`, `intermediate_size`, `base_model_dir`).
///
/// With FFA-LoRA (frozen A, Sun et al. ICLR 2024) A is not in the checkpoint: it is
/// regenerated from the recorded seed wherever the adapter is used, so clients send and the
/// server averages only B, and the average of the clients' B is exactly the average of
/// their ΔW = BA.
public enum TextLoRAModel {
    /// The objective recorded in the checkpoint's `ModelConfig` (the loss is the sampled
    /// softmax of `SampledSoftmaxLoss`, recorded as setting `loss`).
    static let objective = Objective.bce

    /// A fresh checkpoint (round 0, B = 0: the base encoder) for `manifest`'s dataset.
    /// - Parameters:
    ///   - baseModelDirectory: the encoder's directory, recorded as the default for the
    ///     commands that train and evaluate the adapter (`setting.base_model_dir`).
    ///   - task: what the adapter learns (`setting.task`); for `.nextItem`, `historyLength`
    ///     items make a query (`setting.history`).
    public static func initial(
        config: LoRAConfig, baseModelDirectory: String, manifest: DatasetManifest, task: TextTask = .search, historyLength: Int = 5
    ) throws -> TensorModel {
        let directory = try ModelDirectory(path: baseModelDirectory)
        let encoder = try BertEncoder(directory: directory)
        let pooling = try Pooling(directory: directory)
        let adapter = try LoRAAdapter(config: config, for: encoder)
        let modelConfig = ModelConfig(
            family: .textLoRA, objective: objective, dim: pooling.dimension(hiddenSize: encoder.config.hiddenSize), items: manifest.items,
            datasetId: manifest.datasetId)
        var settings = [
            "adapter": "lora", "rank": String(config.rank), "alpha": "\(config.alpha)",
            "targets": config.targets.map(\.rawValue).joined(separator: ","), "seed": String(config.seed),
            "frozen_a": config.frozenA ? "true" : "false", "base_model": adapter.baseModel, "layers": String(adapter.layers),
            "hidden_size": String(adapter.hiddenSize), "intermediate_size": String(adapter.intermediateSize), "loss": "sampled_softmax",
        ]
        settings["base_model_dir"] = baseModelDirectory
        settings["task"] = task.rawValue
        if task == .nextItem { settings["history"] = String(historyLength) }
        return TensorModel(config: modelConfig, tensors: tensors(of: adapter), rowTensorNames: [], settings: settings)
    }

    /// The checkpoint tensors of `adapter`: B of every pair, and A unless frozen.
    public static func tensors(of adapter: LoRAAdapter) -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        let r = adapter.config.rank
        for pair in adapter.pairs {
            tensors[pair.tensorName("B")] = Tensor(shape: [pair.outputs, r], values: pair.b)
            if !adapter.config.frozenA { tensors[pair.tensorName("A")] = Tensor(shape: [r, pair.inputs], values: pair.a) }
        }
        return tensors
    }

    /// The adapter a checkpoint holds (A regenerated from the seed when frozen).
    /// - Throws: `.shape` / `.corrupt` naming `file` for a checkpoint of another family,
    ///   bad settings, or tensors that do not match them.
    public static func adapter(of model: TensorModel, file: String) throws -> LoRAAdapter {
        try model.config.requireFamily(.textLoRA, file: file)
        func setting(_ key: String) throws -> String {
            guard let value = model.settings[key] else { throw FedRecError(.corrupt, file: file, "has no setting \(key)") }
            return value
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let value = Int(try setting(key)), range.contains(value) else {
                throw FedRecError(.corrupt, file: file, "setting \(key) is not an integer in \(range.lowerBound)…\(range.upperBound)")
            }
            return value
        }
        let targets: [LoRATarget]
        do { targets = try LoRATarget.parseList(try setting("targets")) } catch let error as FedRecError where error.failure == .usage {
            throw FedRecError(.corrupt, file: file, "setting targets: \(error.message)")
        }
        guard let alpha = Float(try setting("alpha")), alpha.isFinite, alpha > 0 else {
            throw FedRecError(.corrupt, file: file, "setting alpha is not a positive number")
        }
        guard let seed = UInt64(try setting("seed")) else { throw FedRecError(.corrupt, file: file, "setting seed is not an unsigned integer") }
        let frozen = try setting("frozen_a")
        guard frozen == "true" || frozen == "false" else { throw FedRecError(.corrupt, file: file, "setting frozen_a is neither true nor false") }
        let config = LoRAConfig(
            rank: try integer("rank", 1...LoRAConfig.maximumRank), alpha: alpha, targets: targets, seed: seed, frozenA: frozen == "true")
        let shape = BertConfig(
            vocabSize: 1, hiddenSize: try integer("hidden_size", 1...(1 << 20)), numHiddenLayers: try integer("layers", 1...4096),
            numAttentionHeads: 1, intermediateSize: try integer("intermediate_size", 1...(1 << 20)))
        var adapter = try LoRAAdapter(config: config, bertConfig: shape, baseModel: try setting("base_model"))
        let expected = tensors(of: adapter)
        guard Set(expected.keys) == Set(model.tensors.keys) else {
            let odd = Set(expected.keys).symmetricDifference(model.tensors.keys).sorted().prefix(3).joined(separator: ", ")
            throw FedRecError(.shape, file: file, "does not hold the tensors its adapter settings imply (\(odd))")
        }
        for (p, pair) in adapter.pairs.enumerated() {
            let b = pair.tensorName("B")
            adapter.pairs[p].b = try model.tensor(b, shape: [pair.outputs, config.rank], file: file)
            if !config.frozenA { adapter.pairs[p].a = try model.tensor(pair.tensorName("A"), shape: [config.rank, pair.inputs], file: file) }
        }
        for (name, tensor) in model.tensors where !tensor.values.allSatisfy(\.isFinite) {
            throw FedRecError(.badData, file: file, "tensor \(name) holds a non-finite value")
        }
        return adapter
    }

    /// A checkpoint's task and, for next-item, its history length (a checkpoint without
    /// `setting.task` is a search adapter).
    /// - Throws: `.corrupt` naming `file` for an unknown task or a bad history length.
    public static func task(of model: TensorModel, file: String) throws -> (task: TextTask, historyLength: Int) {
        guard let raw = model.settings["task"] else { return (.search, 0) }
        guard let task = TextTask(rawValue: raw) else {
            throw FedRecError(.corrupt, file: file, "setting task is \(raw), neither \(TextTask.allCases.map(\.rawValue).joined(separator: " nor "))")
        }
        guard task == .nextItem else { return (task, 0) }
        guard let text = model.settings["history"], let history = Int(text), (1...maximumHistory).contains(history) else {
            throw FedRecError(.corrupt, file: file, "setting history is not an integer in 1…\(maximumHistory)")
        }
        return (task, history)
    }

    /// The most items a next-item query may hold.
    public static let maximumHistory = 64

    /// The adapter of a text-lora checkpoint file.
    public static func adapter(path: String) throws -> LoRAAdapter {
        try adapter(of: try TensorModel.open(path, family: .textLoRA).model, file: path)
    }
}

extension LoRAAdapter {
    /// An adapter from a `text_adapter` file or a `text-lora` model checkpoint (what
    /// federated rounds write), told by the file's kind.
    public static func load(path: String) throws -> LoRAAdapter {
        let kind = try SafeTensorsFile(path: path).metadata["kind"]
        return kind == FileKind.model.rawValue ? try TextLoRAModel.adapter(path: path) : try LoRAAdapter(path: path)
    }
}
