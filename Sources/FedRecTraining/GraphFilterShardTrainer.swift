import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecWire

/// `fl-train-local` for a graph filter (`GraphFilterModel`): each user of the shard
/// contributes r_u r_uᵀ / d_u and r_u from its own training items (implicit: every
/// training interaction counts once, whatever its rating), and the shard's update is the
/// sum (`ItemPairSum`). Nothing is trained and nothing is private between rounds: the
/// statistics do not depend on the model, whose header alone is read (its identity and
/// round tie the update to it).
public enum GraphFilterShardTrainer {
    public static func run(modelPath: String, shardPath: String, output: String, options: TrainingOptions,
                           progress: Progress = Progress(quiet: true)) throws -> ShardTrainingSummary {
        guard options.compression == nil, options.sampleRate == nil, options.localNoiseMultiplier == 0, options.clip == 0, options.alsBounds == nil else {
            throw FedRecError(.usage, "gfcf models take no --compress, --sample-rate, --clip or local DP: their statistics are sums of co-occurrences")
        }
        let file = try FedRecFile(path: modelPath, kinds: [.model], verifyChecksum: false)
        let config = try ModelConfig(file: file)
        try config.requireFamily(.gfcf, file: modelPath)
        let round = try file.int("round", in: 0...FedRecFile.maximumRound)
        let reader = try ShardUserReader(path: shardPath, datasetId: config.datasetId, items: config.items)
        var summary = ShardTrainingSummary()
        var users: [[Int32]] = []
        var lastClient: Int32?
        var clientHasItems = false
        while let record = try reader.next() {
            if record.client != lastClient {
                summary.population += 1
                if clientHasItems { summary.clients += 1 }
                lastClient = record.client
                clientHasItems = false
                progress.update("\(shardPath): \(summary.population) clients")
            }
            let items = record.train.distinctItems
            guard !items.isEmpty else { continue }
            clientHasItems = true
            summary.users += 1
            summary.examples += items.count
            users.append(items)
        }
        if clientHasItems { summary.clients += 1 }
        progress.finish()
        guard summary.users > 0 else { throw FedRecError(.emptyInput, file: shardPath, "no user in the shard has training interactions") }
        var header = UpdateHeader(config: config, baseModel: file.tensors.identity, round: round, algorithm: .cooccurrence,
                                  weighting: .uniform, clients: summary.clients, weight: Double(summary.users))
        header.shards = [reader.identity]
        let update = ItemPairSum(header: header, users: users)
        summary.rows = update.pairs
        try update.write(to: output, kind: .update)
        return summary
    }
}
