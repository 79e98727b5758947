import FedRecCore
import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecTraining
import FedRecWire

/// How each client fine-tunes the adapter on its queries (`fl-train-local` on a
/// `text-lora` model).
public struct LoRALocalSettings: Sendable, Equatable {
    /// Local passes over the client's training queries.
    public var epochs = 1
    /// Queries per step (their positives are each other's negatives).
    public var batchSize = 16
    /// Extra negatives per step, drawn uniformly from the catalogue (not the batch's
    /// positives), so the loss's candidates do not depend on the batch alone.
    public var negatives = 16
    /// AdamW's η and λ.
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 0.01
    /// τ of the sampled softmax (and of the BCE's logits).
    public var temperature: Float = 0.05
    /// The local loss.
    public var loss: TextLoss = .softmax
    /// Client weight in the sum: its training queries (n_k) or 1.
    public var weighting: ContributionWeighting = .examples
    /// Each client's whole delta (all tensors) is scaled to at most this L2 norm (0: off),
    /// the sensitivity client-level DP relies on, as the MF path clips.
    public var clip: Double = 0
    /// Next item: at most this many of a user's transitions (history → next) an epoch,
    /// drawn afresh each epoch and round (0: all of them). Search ignores it.
    public var examplesPerUser = 8
    /// Seed of the shuffling and the sampled negatives (with the round and the client).
    public var seed: UInt64 = 0
    /// Poisson client sampling (rate, key and the key's source, as `TrainingOptions`
    /// holds them): nil rate, every client trains.
    public var sampleRate: Double?
    public var sampleSeed: UInt64?
    public var sampleKeySource: SamplingKeySource = .test

    public init() {}
}

/// One client of a shard as local training sees it.
struct LocalClient {
    var client: Int32
    /// Its users' training queries (search).
    var queries: [Query]
    /// Each of its users' training items in time order (next item).
    var sequences: [[Int32]]

    /// The examples of one local epoch, n_k of the example weighting.
    func examplesPerEpoch(task: TextTask, limit: Int) -> Int {
        switch task {
        case .search: return queries.count
        case .nextItem: return sequences.reduce(0) { $0 + (limit > 0 ? min(max($1.count - 1, 0), limit) : max($1.count - 1, 0)) }
        }
    }
}

/// What one shard's local training did.
public struct LoRAShardSummary: Sendable {
    public var clients = 0
    public var examples = 0
    public var steps = 0
    public var clipped = 0
    /// Mean training loss of the first and the last local epoch, over the shard's steps.
    public var firstLoss = Double.nan
    public var lastLoss = Double.nan
    /// Values a client sends per round (every dense tensor of the model).
    public var valuesPerClient = 0

    /// What `fl-train-local --json` reports.
    public func json(update path: String) -> JSONValue {
        [
            "update": .string(path), "clients": .number(Double(clients)), "examples": .number(Double(examples)),
            "steps": .number(Double(steps)), "clipped": .number(Double(clipped)), "first_epoch_loss": .number(firstLoss),
            "last_epoch_loss": .number(lastLoss), "bytes_per_client": .number(Double(4 * valuesPerClient)),
        ]
    }
}

/// The item texts a dataset's catalogue is embedded from (`ItemText.compose` over
/// `items.tsv`: "Title — Genre, Genre"), tokenized.
public enum CatalogueTexts {
    /// The catalogue's rows (title, genres), read once for both its texts and its titles.
    /// - Throws: `.mismatch` naming `itemsPath` when it does not hold `items` items.
    public static func rows(itemsPath: String, items: Int) throws -> [DatasetTables.Item] {
        let rows = try DatasetTables.readItems(itemsPath)
        guard rows.count == items else {
            throw FedRecError(.mismatch, file: itemsPath, "holds \(rows.count) items, the model's dataset has \(items)")
        }
        return rows
    }

    /// Each row's text "Title — Genre, Genre", tokenized.
    public static func tokenized(_ rows: [DatasetTables.Item], tokenizer: WordPieceTokenizer) -> [[Int32]] {
        rows.map { tokenizer.encode(ItemText.compose(title: $0.title, genres: $0.genres)) }
    }

    /// The encoder with a checkpoint's adapter merged, and every catalogue item's vector
    /// through it (rows × its dimension, row-major): what the evaluators rank against.
    static func encoded(
        adapter modelPath: String, modelDirectory: String, rows: [DatasetTables.Item], threads: Int?, batchSize: Int
    ) throws -> (encoder: SentenceEncoder, items: [Float]) {
        let encoder = try SentenceEncoder(directory: modelDirectory, adapter: modelPath)
        if let threads { encoder.encoder.threads = max(threads, 1) }
        return (encoder, try encoder.encode(tokenized: tokenized(rows, tokenizer: encoder.tokenizer), batchSize: batchSize))
    }

    /// `DATASET/items.tsv` for a shard at `DATASET/shards/shard-N.tar`.
    public static func itemsPath(besideShard shard: String) -> String {
        var parts = shard.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 3 else { return parts.count == 2 ? "items.tsv" : "../items.tsv" }
        parts.removeLast(2)
        return parts.joined(separator: "/") + (parts == [""] ? "items.tsv" : "/items.tsv")
    }
}

/// Local LoRA fine-tuning of every client of a shard, and the shard's update: each client
/// k starts from the round's adapter, runs `epochs` passes of AdamW steps on the sampled
/// softmax of its own training examples (`LoRATrainer`): for search its training queries
/// (query → the item it led to), for next item up to `examplesPerUser` of each user's
/// transitions (the titles of the items before → the item; `NextItemText`), and
/// contributes w_k·Δ_k, Δ_k = its trained tensors − the round's (clipped to `clip`),
/// w_k = n_k (its examples of an epoch) or 1. The update's dense tensors are Σ_k w_k Δ_k with
/// weight Σ_k w_k, so `fl-aggregate` (FedAvg: Σ w_k Δ_k / Σ w_k, McMahan et al. 2017;
/// or FedAdam) moves the adapter exactly as for any tensor model.
public enum LoRAShardTrainer {
    /// Trains the shard's clients and writes the update to `output`.
    /// - Parameters:
    ///   - itemsPath: the dataset's `items.tsv` (the catalogue's texts).
    ///   - modelDirectory: the base encoder (its weights must be the adapter's base).
    ///   - progress: called after each client with (clients done, clients with queries).
    ///   - clientSink: when given, receives each client's own update (dense w_k·Δ_k,
    ///     weight w_k) instead of its being summed, and nothing is written to `output`
    ///     (cross-device secure aggregation masks each apart).
    public static func run(
        modelPath: String, shardPath: String, itemsPath: String, modelDirectory: String, output: String, settings: LoRALocalSettings,
        threads: Int? = nil, progress: (Int, Int) -> Void = { _, _ in }, clientSink: ((Int32, ModelUpdate) throws -> Void)? = nil
    ) throws -> LoRAShardSummary {
        let (model, identity) = try TensorModel.open(modelPath, family: .textLoRA)
        let global = try TextLoRAModel.adapter(of: model, file: modelPath)
        let encoder = try SentenceEncoder(directory: modelDirectory)
        if let threads { encoder.encoder.threads = max(threads, 1) }
        let trainable = try TrainableEncoder(base: encoder.encoder, adapter: global, pooling: encoder.pooling, adapterFile: modelPath)
        let rows = try CatalogueTexts.rows(itemsPath: itemsPath, items: model.config.items)
        let catalogue = CatalogueTexts.tokenized(rows, tokenizer: encoder.tokenizer)
        let reader = try ShardUserReader(path: shardPath, datasetId: model.config.datasetId, items: model.config.items)

        let (task, historyLength) = try TextLoRAModel.task(of: model, file: modelPath)
        let history = task == .nextItem
            ? NextItemText(titles: rows.map(\.title), historyLength: historyLength) : nil

        // Clients: adjacent users of one client index, with their training queries (search)
        // or each user's training items in time order (next item).
        var clients: [LocalClient] = []
        while let record = try reader.next() {
            let mine = record.queries.filter { !$0.isTest }
            let sequence = history == nil ? [] : NextItemText.chronological(record.train)
            if let last = clients.last, last.client == record.client {
                clients[clients.count - 1].queries += mine
                clients[clients.count - 1].sequences.append(sequence)
            } else {
                clients.append(LocalClient(client: record.client, queries: mine, sequences: [sequence]))
            }
        }
        // With Poisson sampling (DP-FedAvg), each client takes part with probability q on
        // the secret key; the population is every client of the shard.
        let drawn = try TrainingOptions.poissonSampling(rate: settings.sampleRate, seed: settings.sampleSeed, source: settings.sampleKeySource)
        let population = clients.count
        if let drawn { clients.removeAll { !drawn.sampling.includes(round: model.round, client: Int($0.client)) } }
        clients.removeAll { $0.examplesPerEpoch(task: task, limit: settings.examplesPerUser) == 0 }

        // The header of the shard's update, or of one client's.
        func header(clients: Int, weight: Double, clipped: Int) -> UpdateHeader {
            var header = UpdateHeader(
                config: model.config, baseModel: identity, round: model.round, algorithm: .sgd, weighting: settings.weighting,
                clients: clients, weight: weight)
            header.clip = settings.clip
            header.clipped = clipped
            header.shards = [reader.identity]
            header.recordSampling(drawn, population: population)
            return header
        }
        let names = TextLoRAModel.tensors(of: global).keys.sorted()
        var sum = [String: [Float]]()
        for name in names { sum[name] = [Float](repeating: 0, count: model.tensors[name]?.values.count ?? 0) }
        var summary = LoRAShardSummary()
        summary.valuesPerClient = sum.values.reduce(0) { $0 + $1.count }
        var totalWeight = 0.0
        var firstLoss = 0.0, lastLoss = 0.0, firstSteps = 0, lastSteps = 0
        for (done, client) in clients.enumerated() {
            trainable.adapter = global
            let trainer = LoRATrainer(
                encoder: trainable, optimizer: AdamW(learningRate: settings.learningRate, weightDecay: settings.weightDecay),
                temperature: settings.temperature, loss: settings.loss)
            var generator = SeededGenerator(seed: settings.seed, stream: (UInt64(model.round) << 32) | UInt64(UInt32(bitPattern: client.client)))
            let queryIds = client.queries.map { encoder.tokenizer.encode($0.text) }
            // The order is shuffled in place epoch after epoch (a search client's examples
            // stay the same; a next-item client's are drawn afresh, so its order restarts).
            var order: [Int] = []
            for epoch in 0..<settings.epochs {
                // This epoch's examples: (query tokens, positive item).
                var examples: [(query: [Int32], item: Int32)]
                if let history {
                    examples = []
                    for sequence in client.sequences {
                        for p in NextItemText.positions(count: sequence.count, limit: settings.examplesPerUser, generator: &generator) {
                            examples.append((encoder.tokenizer.encode(history.query(sequence, before: p)), sequence[p]))
                        }
                    }
                } else {
                    examples = client.queries.indices.map { (queryIds[$0], client.queries[$0].item) }
                }
                if history != nil || order.count != examples.count { order = Array(examples.indices) }
                order.shuffle(using: &generator)
                var start = 0
                while start < order.count {
                    let batch = order[start..<min(start + max(settings.batchSize, 1), order.count)]
                    start += batch.count
                    let positives = Set(batch.map { examples[$0].item })
                    var negatives: [[Int32]] = []
                    if settings.negatives > 0 && catalogue.count > positives.count {
                        var drawn = Set<Int32>()
                        while drawn.count < min(settings.negatives, catalogue.count - positives.count) {
                            let item = Int32(generator.nextIndex(below: catalogue.count))
                            if !positives.contains(item) && drawn.insert(item).inserted { negatives.append(catalogue[Int(item)]) }
                        }
                    }
                    let loss = try trainer.step(
                        queries: batch.map { examples[$0].query }, positives: batch.map { catalogue[Int(examples[$0].item)] },
                        negatives: negatives)
                    summary.steps += 1
                    if epoch == 0 { firstLoss += Double(loss); firstSteps += 1 }
                    if epoch == settings.epochs - 1 { lastLoss += Double(loss); lastSteps += 1 }
                }
            }
            // Δ_k, clipped as a whole, then weighted into the sum.
            let trained = TextLoRAModel.tensors(of: trainable.adapter)
            var delta = [String: [Float]]()
            var squares = 0.0
            for name in names {
                guard let after = trained[name]?.values, let before = model.tensors[name]?.values else { continue }
                var d = [Float](repeating: 0, count: after.count)
                for i in d.indices {
                    d[i] = after[i] - before[i]
                    squares += Double(d[i]) * Double(d[i])
                }
                delta[name] = d
            }
            var scale: Float = 1
            if let factor = ClientClipping.factor(squaredNorm: squares, clip: settings.clip) {
                scale = factor
                summary.clipped += 1
            }
            let examples = client.examplesPerEpoch(task: task, limit: settings.examplesPerUser)
            let weight = settings.weighting == .examples ? Double(examples) : 1
            let factor = Float(weight) * scale
            if let clientSink {
                // The client's own update (cross-device secure aggregation masks it apart).
                var own = [String: [Float]]()
                for name in names { own[name] = delta[name]?.map { factor * $0 } }
                try clientSink(client.client, ModelUpdate(header: header(clients: 1, weight: weight, clipped: scale < 1 ? 1 : 0), dense: own))
            } else {
                for name in names {
                    guard let d = delta[name] else { continue }
                    sum[name]?.withUnsafeMutableBufferPointer { s in
                        for i in d.indices { s[i] += factor * d[i] }
                    }
                }
            }
            totalWeight += weight
            summary.clients += 1
            summary.examples += examples
            progress(done + 1, clients.count)
        }
        summary.firstLoss = firstSteps > 0 ? firstLoss / Double(firstSteps) : .nan
        summary.lastLoss = lastSteps > 0 ? lastLoss / Double(lastSteps) : .nan

        if clientSink == nil {
            try ModelUpdate(header: header(clients: summary.clients, weight: totalWeight, clipped: summary.clipped), dense: sum)
                .write(to: output, kind: .update)
        }
        return summary
    }
}
