import Foundation
import FedRecCore
import FedRecSupport
import FedRecData
import FedRecModel
import FedRecWire
import FedRecTraining
import FedRecAggregation

/// A small synthetic ratings set from a rank-`rank` model plus noise, with timestamps,
/// partitioned into a dataset directory for tests.
public struct SyntheticDataset {
    public let directory: TemporaryDirectory
    public let manifest: DatasetManifest
    public var path: String { directory.path + "/ds" }
    public var shards: [String] { manifest.shards.map { path + "/" + $0.file } }

    public static func csv(users: Int, items: Int, perUser: Int, rank: Int = 3, noise: Double = 0.3, seed: UInt64 = 1) -> String {
        var g = SeededGenerator(seed: seed)
        let p = (0..<(users * rank)).map { _ in g.nextGaussian() }
        let q = (0..<(items * rank)).map { _ in g.nextGaussian() }
        var text = "user,item,rating,time\n"
        for u in 0..<users {
            var seen = Set<Int>()
            while seen.count < perUser {
                let i = g.nextIndex(below: items)
                guard seen.insert(i).inserted else { continue }
                var r = 3.5
                for k in 0..<rank { r += 0.6 * p[u * rank + k] * q[i * rank + k] }
                r += noise * g.nextGaussian()
                text += "\(u + 1),\(i + 1),\(min(5, max(1, r))),\(1000 + seen.count)\n"
            }
        }
        return text
    }

    public init(users: Int = 60, items: Int = 40, perUser: Int = 20, shards: Int = 2, split: SplitMethod = .ratio(0.2), seed: UInt64 = 1) throws {
        directory = try TemporaryDirectory()
        try writeAtomically(Self.csv(users: users, items: items, perUser: perUser, seed: seed), to: directory.path + "/r.csv")
        var options = PartitionOptions(ratings: directory.path + "/r.csv")
        options.shards = shards
        options.split = split
        options.negatives = 10
        manifest = try Partitioner.run(options, output: directory.path + "/ds")
    }

    /// Writes a fresh model and returns its path.
    public func initialModel(_ objective: Objective, dim: Int = 4, name: String = "model-0000.safetensors") throws -> String {
        let config = ModelConfig(objective: objective, dim: dim, items: manifest.items, datasetId: manifest.datasetId)
        var model = MFModel.initial(config: config, scale: 0.1, seed: 3, globalBias: 3)
        model.notes["rating_min"] = "1.0"
        model.notes["rating_max"] = "5.0"
        let path = directory.path + "/" + name
        try model.write(to: path)
        return path
    }

    /// Trains every shard and applies the server step: one full round.
    @discardableResult
    public func round(model: String, next: String, training: TrainingOptions, server: ServerOptions = ServerOptions(), stateDirectory: String? = nil,
               layout: CheckpointLayout = .auto) throws -> [String] {
        var updates: [String] = []
        for (s, shard) in shards.enumerated() {
            let update = directory.path + "/update-\(s).safetensors"
            let state = stateDirectory.map { $0 + "/shard-\(s).state.safetensors" }
            _ = try ShardTrainer.run(modelPath: model, shardPath: shard, stateIn: state, stateOut: state, output: update, options: training)
            updates.append(update)
        }
        let sum = try ModelUpdate.sum(paths: updates)
        try ServerStep.apply(sum, sumFile: "sum", to: model, options: server).write(to: next, layout: layout)
        return updates
    }
}
