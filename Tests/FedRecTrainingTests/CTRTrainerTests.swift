import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
import FedRecSupport
import FedRecData
import FedRecModel
import FedRecWire
import FedRecAggregation
@testable import FedRecTraining

@Suite("CTR training: one federated round by hand")
struct CTRTrainerTests {
    /// Three users, one rating each: user 1 clicks item A (5), user 2 does not (2), user 3
    /// clicks item B (4). Leave-last-out keeps a lone rating for training.
    func dataset(_ dir: TemporaryDirectory) throws -> DatasetManifest {
        try writeAtomically("user,item,rating,time\n1,A,5,10\n2,A,2,11\n3,B,4,12\n", to: dir.path + "/r.csv")
        var options = PartitionOptions(ratings: dir.path + "/r.csv")
        options.shards = 1
        options.negatives = 0
        return try Partitioner.run(options, output: dir.path + "/ds")
    }

    @Test("logistic regression from zero: each client's SGD (or AdaGrad) step, averaged as FedAvg says", arguments: [false, true])
    func oneRoundByHand(adagrad: Bool) throws {
        let dir = try TemporaryDirectory()
        let manifest = try dataset(dir)
        let features = try ItemFeatureTable.read(directory: dir.path + "/ds", manifest: manifest)
        #expect(features == [[], []])
        let model = CTRModel.initial(family: .lr, datasetId: manifest.datasetId, itemFeatures: features, hashBits: 12, rank: 0,
                                     scale: 0, seed: 0, clickThreshold: 4, userIdFeature: false)
        try model.write(to: dir.path + "/m0")
        var options = TrainingOptions()
        options.learningRate = 0.2
        options.l2 = 0.5  // no effect on the first step from zero: λ·w = 0
        if adagrad { options.optimizer = .adagrad }
        let summary = try CTRShardTrainer.run(modelPath: dir.path + "/m0", shardPath: dir.path + "/ds/" + manifest.shards[0].file,
                                              output: dir.path + "/u", options: options)
        #expect(summary.clients == 3 && summary.examples == 3)
        // Each client: z = 0, p = ½, g = ½ − y = ∓½. SGD moves the item's weight by −η g =
        // ±η·½; AdaGrad's first step by −η g / √(g² + ε) = ±η·½/√(¼ + 1e-8); the bias
        // always by SGD's ±η·½.
        let step = adagrad ? 0.2 * 0.5 / (0.25 + 1e-8).squareRoot() : 0.2 * 0.5
        let biasStep = 0.2 * 0.5
        let update = try ModelUpdate.open(dir.path + "/u").update
        let a = FeatureHash.itemBucket("iid=0", buckets: 4096), b = FeatureHash.itemBucket("iid=1", buckets: 4096)
        #expect(update.rows == [a, b].sorted())
        let rowA = try #require(update.rows.firstIndex(of: a)), rowB = try #require(update.rows.firstIndex(of: b))
        #expect(update.rowClients[rowA] == 2 && update.rowClients[rowB] == 1)
        #expect(abs(Double(update.rowTensors["weight"]?.values[rowA] ?? 9)) < 1e-6)  // +step − step
        #expect(abs(Double(update.rowTensors["weight"]?.values[rowB] ?? 9) - step) < 1e-6)
        #expect(abs(Double(update.dense["bias"]?[0] ?? 9) - biasStep) < 1e-6)  // +step − step + step

        let next = try TensorServerStep.apply(update, sumFile: dir.path + "/u", to: dir.path + "/m0", options: ServerOptions())
        let trained = try CTRModel(next, file: "next")
        #expect(next.round == 1)
        // Rows averaged over the clients that touched them, the bias over all three.
        #expect(abs(Double(trained.weights[Int(a)])) < 1e-6)
        #expect(abs(Double(trained.weights[Int(b)]) - step) < 1e-6)
        #expect(abs(Double(trained.bias) - biasStep / 3) < 1e-6)
        #expect(trained.itemFeatureBucket == model.indexTables["item_feature_bucket"])

        // The intercept's statistics at the round's model (p = ½ for all three examples):
        // Σ (p − y) = 3·½ − 2 = −½, Σ p (1 − p) = 3·¼.
        let statistics = try #require(update.dense[CTRModel.biasResidualName])
        #expect(statistics.count == 2 && abs(statistics[0] + 0.5) < 1e-6 && abs(statistics[1] - 0.75) < 1e-6, "\(statistics)")
        // A calibration round: the clients train no epochs and send the same statistics;
        // one Newton step from b = 0 gives b = ½ / ¾ = ⅔ (towards logit(⅔) = ln 2) and
        // nothing else moves.
        var calibrate = ServerOptions()
        calibrate.calibrateBias = true
        options.epochs = 0
        _ = try CTRShardTrainer.run(modelPath: dir.path + "/m0", shardPath: dir.path + "/ds/" + manifest.shards[0].file,
                                    output: dir.path + "/c", options: options)
        let statisticsOnly = try ModelUpdate.open(dir.path + "/c").update
        #expect(statisticsOnly.dense[CTRModel.biasResidualName] == statistics)
        let calibrated = try TensorServerStep.apply(statisticsOnly, sumFile: dir.path + "/c", to: dir.path + "/m0", options: calibrate)
        let refitted = try CTRModel(calibrated, file: "next")
        #expect(abs(Double(refitted.bias) - 2.0 / 3) < 1e-6 && calibrated.round == 1)
        #expect(refitted.weights == (try CTRModel(model, file: "m0")).weights)
        // A sum whose clients trained is refused (its changes would be lost); so is one
        // without the statistics, or with no curvature.
        #expect { try TensorServerStep.apply(update, sumFile: "u", to: dir.path + "/m0", options: calibrate) } throws: { ($0 as? FedRecError)?.failure == .usage }
        var without = statisticsOnly
        without.dense[CTRModel.biasResidualName] = nil
        #expect { try TensorServerStep.apply(without, sumFile: "c", to: dir.path + "/m0", options: calibrate) } throws: { ($0 as? FedRecError)?.failure == .shape }
        var flat = statisticsOnly
        flat.dense[CTRModel.biasResidualName] = [-0.5, 0]
        #expect { try TensorServerStep.apply(flat, sumFile: "c", to: dir.path + "/m0", options: calibrate) } throws: { ($0 as? FedRecError)?.failure == .shape }
    }

    @Test("training is deterministic for the seed, and the seed changes the order")
    func deterministic() throws {
        let data = try SyntheticDataset(users: 30, items: 20, perUser: 8, shards: 1)
        let features = try ItemFeatureTable.read(directory: data.path, manifest: data.manifest)
        let model = CTRModel.initial(family: .fm, datasetId: data.manifest.datasetId, itemFeatures: features, hashBits: 10, rank: 4,
                                     scale: 0.05, seed: 2, clickThreshold: 4, userIdFeature: true)
        try model.write(to: data.directory.path + "/m0")
        var options = TrainingOptions()
        options.learningRate = 0.1
        options.epochs = 3
        var bytes: [[UInt8]] = []
        for (n, seed) in [7, 7, 8].enumerated() {
            options.seed = UInt64(seed)
            _ = try CTRShardTrainer.run(modelPath: data.directory.path + "/m0", shardPath: data.shards[0], output: data.directory.path + "/u\(n)", options: options)
            bytes.append(try readBytes(data.directory.path + "/u\(n)"))
        }
        #expect(bytes[0] == bytes[1])
        #expect(bytes[0] != bytes[2])
    }
}
