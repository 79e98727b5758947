import FedRecCLI
import FedRecCore
import FedRecData
import FedRecSupport
import FedRecText
import FedRecTraining

/// The text-lora family's work for fl-init, fl-train-local and fl-eval (registered by
/// their executables with `TextFamilyLink.register(TextLoRACommands.hooks)`).
public enum TextLoRACommands {
    public static let hooks = TextFamilyHooks(initialize: initialize, train: train, evaluate: evaluate)

    static func initialize(_ r: TextLoRAInitRequest) throws {
        let manifest = try DatasetManifest.load(r.dataset)
        let config = LoRAConfig(rank: r.rank, alpha: r.alpha, targets: try LoRATarget.parseList(r.targets), seed: r.seed, frozenA: r.frozenA)
        guard let task = TextTask(rawValue: r.task) else {
            throw FedRecError(.usage, "--task is search or next-item, not \(r.task)")
        }
        guard (1...TextLoRAModel.maximumHistory).contains(r.historyLength) else {
            throw FedRecError(.usage, "--history must be 1…\(TextLoRAModel.maximumHistory)")
        }
        let model = try TextLoRAModel.initial(
            config: config, baseModelDirectory: r.baseModel, manifest: manifest, task: task, historyLength: r.historyLength)
        let identity = try model.write(to: r.output)
        if r.json && r.output != "-" {
            let values = model.tensors.values.reduce(0) { $0 + $1.values.count }
            try emit(
                JSONValue.object([
                    "model": .string(r.output), "identity": .string(identity), "model_type": .string(model.config.modelType),
                    "round": 0, "tensors": .number(Double(model.tensors.count)), "parameters": .number(Double(values)),
                    "bytes_per_client": .number(Double(4 * values)),
                ]).canonicalText)
        }
    }

    /// The encoder directory: the request's, else the one the checkpoint recorded.
    static func modelDirectory(_ given: String?, model: String) throws -> String {
        if let given { return given }
        let recorded = try TensorModel.open(model, family: .textLoRA).model.settings["base_model_dir"]
        guard let recorded else { throw FedRecError(.usage, file: model, "records no base model directory: give --base-model DIR") }
        return recorded
    }

    static func train(_ r: TextLoRATrainRequest) throws {
        if let threads = r.threads { SentenceEncoder.setBLASThreads(threads) }
        var settings = LoRALocalSettings()
        settings.epochs = r.options.epochs
        if let b = r.batchSize { settings.batchSize = b }
        if let lr = r.learningRate { settings.learningRate = lr }
        if let l2 = r.weightDecay { settings.weightDecay = l2 }
        if let n = r.negatives { settings.negatives = n }
        settings.examplesPerUser = r.examplesPerUser
        settings.temperature = r.temperature
        guard let loss = TextLoss(rawValue: r.loss) else { throw FedRecError(.usage, "--loss is softmax or bce, not \(r.loss)") }
        settings.loss = loss
        guard loss != .bce || settings.negatives > 0 else { throw FedRecError(.usage, "--loss bce needs sampled negatives (--negatives 1 or more)") }
        settings.weighting = r.options.weighting
        settings.clip = r.options.clip
        settings.seed = r.options.seed
        settings.sampleRate = r.options.sampleRate
        settings.sampleSeed = r.options.sampleSeed
        settings.sampleKeySource = r.options.sampleKeySource
        guard settings.temperature > 0, settings.temperature.isFinite else { throw FedRecError(.usage, "--temperature must be positive") }
        let progress = Progress(quiet: r.quiet)
        defer { progress.finish() }
        let items = r.items ?? CatalogueTexts.itemsPath(besideShard: r.shard)
        let directory = try modelDirectory(r.baseModel, model: r.model)
        if let secure = r.secure {
            // Cross-device: each client's own update quantised and masked as its party.
            let masked = try SecureParty.maskClientUpdates(
                session: secure.session, state: secure.state, roster: secure.roster, deliveries: secure.deliveries, clip: secure.clip,
                tensorClips: secure.tensorClips, output: r.output, randomness: secure.randomness, dropout: secure.dropout, shardPath: r.shard
            ) { sink in
                _ = try withoutActuallyEscaping(sink) { sink in
                    try LoRAShardTrainer.run(
                        modelPath: r.model, shardPath: r.shard, itemsPath: items, modelDirectory: directory, output: r.output, settings: settings,
                        threads: r.threads, progress: { done, total in progress.update("fl-train-local: \(done)/\(total) clients") }, clientSink: sink)
                }
            }
            return try reportMasked(masked, output: r.output, shard: r.shard, clip: secure.clip, json: r.json, quiet: r.quiet)
        }
        let summary = try LoRAShardTrainer.run(
            modelPath: r.model, shardPath: r.shard, itemsPath: items, modelDirectory: directory, output: r.output, settings: settings,
            threads: r.threads
        ) { done, total in progress.update("fl-train-local: \(done)/\(total) clients") }
        if r.json && r.output != "-" { try emit(summary.json(update: r.output).canonicalText) }
    }

    static func evaluate(_ r: TextLoRAEvalRequest) throws {
        if let threads = r.threads { SentenceEncoder.setBLASThreads(threads) }
        guard let items = r.items else { throw FedRecError(.usage, "a text-lora model is evaluated with --dataset DIR (or --items items.tsv)") }
        let (task, _) = try TextLoRAModel.task(of: try TensorModel.open(r.model, family: .textLoRA).model, file: r.model)
        if task == .nextItem { return try evaluateNextItem(r, items: items) }
        if r.blend != nil || r.cold { throw FedRecError(.usage, file: r.model, "is a search adapter; --blend and --cold are for next-item adapters") }
        let report = try LoRASearchEvaluator.run(
            modelPath: r.model, shards: r.shards, itemsPath: items, modelDirectory: try modelDirectory(r.baseModel, model: r.model), k: r.k,
            training: r.training, threads: r.threads)
        var json = report.json
        if r.training, case .object(var o) = json {
            o["queries_set"] = "train"
            json = .object(o)
        }
        if let log = r.metricsLog { try appendLine(json.canonicalText, to: log, durable: true) }
        try emit(r.json ? json.canonicalText : json.table(aligned: standardOutputIsTerminal))
    }

    /// fl-eval of a next-item adapter: text alone, or one line a β of the blend.
    static func evaluateNextItem(_ r: TextLoRAEvalRequest, items: String) throws {
        guard !r.training else { throw FedRecError(.usage, "--training-queries is for search adapters") }
        let blend = try r.blend.map { path -> LoRANextItemEvaluator.Blend in
            guard let dataset = r.dataset, let users = r.blendUsers else { throw FedRecError(.usage, "--blend needs --dataset DIR") }
            return LoRANextItemEvaluator.Blend(modelPath: path, dataset: try DatasetDirectory(path: dataset), source: users, betas: r.betas)
        }
        let reports = try LoRANextItemEvaluator.run(
            modelPath: r.model, shards: r.shards, itemsPath: items, modelDirectory: try modelDirectory(r.baseModel, model: r.model), k: r.k,
            coldItems: r.coldItems, cold: r.cold, blend: blend, threads: r.threads)
        for report in reports {
            if let log = r.metricsLog { try appendLine(report.json.canonicalText, to: log, durable: true) }
        }
        if r.json || reports.count > 1 {
            // JSON lines, or one TSV header and a line a β (every report has the same keys).
            let lines = reports.enumerated().map { n, report in
                r.json ? report.json.canonicalText : String(report.json.tsvTable.split(separator: "\n")[n == 0 ? 0... : 1...].joined(separator: "\n"))
            }
            try emit(lines.joined(separator: "\n"))
        } else if let report = reports.first {
            try emit(report.json.table(aligned: standardOutputIsTerminal))
        }
    }
}
