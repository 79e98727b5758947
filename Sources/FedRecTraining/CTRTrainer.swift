#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecWire

/// One client's examples for a CTR model: each a list of active buckets and a label.
public struct CTRExamples: Sendable {
    /// Example e's buckets are `buckets[offset[e] ..< offset[e + 1]]`.
    public var offset: [Int32] = [0]
    public var buckets: [Int32] = []
    public var labels: [Float] = []

    public init() {}

    public var count: Int { labels.count }

    /// Appends the examples of one user: every training interaction (a click when its
    /// rating is at least the model's threshold) and every training impression (no click);
    /// with `test`, the test period's instead.
    public mutating func append(_ record: UserRecord, model: CTRModel, test: Bool = false) {
        let user = model.userBuckets(id: record.id, features: record.features)
        let events = test ? record.test : record.train
        for (item, rating) in zip(events.items, events.ratings) {
            add(user: user, item: Int(item), label: rating >= model.clickThreshold ? 1 : 0, model: model)
        }
        for item in test ? record.testImpressions : record.impressions { add(user: user, item: Int(item), label: 0, model: model) }
    }

    mutating func add(user: [Int32], item: Int, label: Float, model: CTRModel) {
        buckets += user
        buckets += model.itemBuckets(item)
        offset.append(Int32(buckets.count))
        labels.append(label)
    }

    /// Removes every example, keeping the storage.
    public mutating func removeAll() {
        offset.removeAll(keepingCapacity: true)
        offset.append(0)
        buckets.removeAll(keepingCapacity: true)
        labels.removeAll(keepingCapacity: true)
    }
}

/// Local training of a CTR model (`CTRModel`, logistic regression or a factorisation
/// machine) on one client's examples: BCE, plain SGD (`--optimizer sgd`) or AdaGrad
/// (Duchi, Hazan & Singer 2011; `adagrad`, accumulators started afresh each round), L2 λ
/// on the touched weights and factors (not on the bias), `epochs` passes in a seeded
/// order.
///
/// The bias always steps by plain SGD: a client's bias then moves by −η Σₜ gₜ, so FedAvg
/// moves the global bias along the clients' summed gradient, whose zero is where the mean
/// prediction equals the observed click rate (calibration). Under AdaGrad, restarted on
/// every client every round, a client whose gradients all have one sign (one that never
/// clicks) moves its bias by about η √n however small its gradients are, and clients who
/// rarely click outnumber the others: the averaged bias drifts down and the model predicts
/// too few clicks (bench/RESULTS.md, CTR: calibration 0.39 on the ad log with AdaGrad on
/// the bias). AdaGrad on the weights drifts the same way (0.49 with the bias by SGD), and
/// so does plain SGD with long local runs (5 epochs at η = 0.1 on ML-100K: 0.85 after 20
/// rounds): what a client alone touches (its id, rarely shown items, mostly not clicked)
/// keeps its whole local move, while the rows of the clicked, popular items are averaged
/// over many clients. Short local runs (1 epoch, η = 0.05) with the adaptivity on the
/// server (`fl-aggregate --server-optimizer fedadam`) reach 1.00. The client's copy of the parameters
/// covers only the buckets its examples touch, in contiguous slots; one workspace is
/// reused for every client of a shard.
public final class CTRClientTrainer {
    public let model: CTRModel
    let learningRate: Float
    let l2: Float
    let epochs: Int
    let adaptive: Bool
    /// AdaGrad's ε: step = lr · g / √(G + ε).
    static let epsilon: Float = 1e-8

    // The workspace.
    private var slotOf: [Int32]
    private var slotBucket: [Int32] = []
    private var weight: [Float] = []
    private var factor: [Float] = []
    private var gradWeight: [Float] = []
    private var gradFactor: [Float] = []
    private var local: [Int32] = []
    private var order: [Int32] = []
    private var sums: [Float]
    private var scratch: [Float] = []

    public init(model: CTRModel, options: TrainingOptions) {
        self.model = model
        learningRate = options.learningRate
        l2 = options.l2
        epochs = options.epochs
        adaptive = options.optimizer == .adagrad
        slotOf = [Int32](repeating: -1, count: model.buckets)
        sums = [Float](repeating: 0, count: max(model.rank, 1))
    }

    /// What one client's training changed: the touched buckets (ascending) with their
    /// weight and factor deltas, and the bias delta.
    public struct Delta: Sendable {
        public var buckets: [Int32] = []
        /// [buckets.count]
        public var weight: [Float] = []
        /// [buckets.count · rank]
        public var factor: [Float] = []
        public var bias: Float = 0
        /// Σ (p − y) and Σ p (1 − p) over the examples at the round's model, before any
        /// local step: the client's share of the intercept's gradient and curvature.
        public var residual: Double = 0
        public var curvature: Double = 0

        /// The L2 norm of every value.
        public var norm: Double {
            var total = Double(bias) * Double(bias)
            for v in weight { total += Double(v) * Double(v) }
            for v in factor { total += Double(v) * Double(v) }
            return total.squareRoot()
        }

        /// Scales every value by `s`.
        public mutating func scale(by s: Float) {
            bias *= s
            for i in weight.indices { weight[i] *= s }
            for i in factor.indices { factor[i] *= s }
        }
    }

    /// Trains on `examples` from the global model; `generator` orders the passes.
    public func train(_ examples: CTRExamples, generator: inout SeededGenerator) -> Delta {
        let k = model.rank
        let globalWeight = model.weights, globalFactor = model.factors
        // Slots: the client's buckets in ascending order, so the delta is sorted.
        slotBucket.removeAll(keepingCapacity: true)
        for b in examples.buckets where slotOf[Int(b)] < 0 {
            slotOf[Int(b)] = 0
            slotBucket.append(b)
        }
        slotBucket.sort()
        for (s, b) in slotBucket.enumerated() { slotOf[Int(b)] = Int32(s) }
        let n = slotBucket.count
        weight.removeAll(keepingCapacity: true)
        factor.removeAll(keepingCapacity: true)
        for b in slotBucket {
            weight.append(globalWeight[Int(b)])
            if k > 0 { factor.append(contentsOf: globalFactor[(Int(b) * k)..<((Int(b) + 1) * k)]) }
        }
        gradWeight = [Float](repeating: 0, count: n)
        gradFactor = [Float](repeating: 0, count: n * k)
        local.removeAll(keepingCapacity: true)
        for b in examples.buckets { local.append(slotOf[Int(b)]) }
        for b in slotBucket { slotOf[Int(b)] = -1 }
        let start = (weight: weight, factor: factor)
        var bias = model.bias
        order = (0..<Int32(examples.count)).map { $0 }
        let lr = learningRate, lambda = l2, eps = Self.epsilon

        // The intercept's statistics at the round's model (every example once, in order).
        var residual = 0.0, curvature = 0.0
        for e in 0..<examples.count {
            let from = Int(examples.offset[e]), to = Int(examples.offset[e + 1])
            let z = local.withUnsafeBufferPointer { all in
                weight.withUnsafeBufferPointer { w in
                    factor.withUnsafeBufferPointer { v in
                        sums.withUnsafeMutableBufferPointer { s in
                            CTRKernels.logit(bias: bias, active: UnsafeBufferPointer(rebasing: all[from..<to]), weight: w, factor: v, rank: k, sums: s)
                        }
                    }
                }
            }
            let p = Double(CTRKernels.sigmoid(z))
            residual += p - Double(examples.labels[e])
            curvature += p * (1 - p)
        }

        for _ in 0..<epochs {
            order.shuffle(using: &generator)
            for e in order {
                let from = Int(examples.offset[Int(e)]), to = Int(examples.offset[Int(e) + 1])
                let y = examples.labels[Int(e)]
                let z = local.withUnsafeBufferPointer { all in
                    weight.withUnsafeBufferPointer { w in
                        factor.withUnsafeBufferPointer { v in
                            sums.withUnsafeMutableBufferPointer { s in
                                CTRKernels.logit(bias: bias, active: UnsafeBufferPointer(rebasing: all[from..<to]), weight: w, factor: v, rank: k, sums: s)
                            }
                        }
                    }
                }
                let g = CTRKernels.sigmoid(z) - y
                // The bias by plain SGD under either optimiser (see the type's note).
                bias -= lr * g
                // Every occurrence's gradient from the values before this step (a bucket hit
                // twice in one example gets both), then the steps.
                if scratch.count < (to - from) * (k + 1) { scratch = [Float](repeating: 0, count: (to - from) * (k + 1)) }
                local.withUnsafeBufferPointer { all in
                    weight.withUnsafeBufferPointer { w in
                        factor.withUnsafeBufferPointer { v in
                            sums.withUnsafeBufferPointer { s in
                                scratch.withUnsafeMutableBufferPointer { out in
                                    CTRKernels.gradients(g: g, active: UnsafeBufferPointer(rebasing: all[from..<to]), weight: w, factor: v,
                                                         rank: k, sums: s, l2: lambda, into: out)
                                }
                            }
                        }
                    }
                }
                for (q, p) in (from..<to).enumerated() {
                    let j = Int(local[p])
                    let gw = scratch[q * (k + 1)]
                    if adaptive {
                        gradWeight[j] += gw * gw
                        weight[j] -= lr * gw / (gradWeight[j] + eps).squareRoot()
                    } else {
                        weight[j] -= lr * gw
                    }
                    for f in 0..<k {
                        let gv = scratch[q * (k + 1) + 1 + f]
                        if adaptive {
                            gradFactor[j * k + f] += gv * gv
                            factor[j * k + f] -= lr * gv / (gradFactor[j * k + f] + eps).squareRoot()
                        } else {
                            factor[j * k + f] -= lr * gv
                        }
                    }
                }
            }
        }
        var delta = Delta(buckets: slotBucket, bias: bias - model.bias, residual: residual, curvature: curvature)
        delta.weight = zip(weight, start.weight).map { $0 - $1 }
        delta.factor = zip(factor, start.factor).map { $0 - $1 }
        return delta
    }
}

/// Trains every client of one shard against a CTR model (`lr` or `fm`) and writes the
/// shard's update: each client's delta, weighted (n_k examples, or 1), summed over the
/// shard's clients, and the intercept's statistics at the round's model
/// (`CTRModel.biasResidualName`, unweighted sums over the examples). The user's features are read from the shard and hashed here; only the
/// deltas of the buckets the client's examples touched leave it. Nothing is private
/// between rounds (the model holds every weight), so no state file is read or written.
public enum CTRShardTrainer {
    public static func run(modelPath: String, shardPath: String, output: String, options: TrainingOptions,
                           progress: Progress = Progress(quiet: true)) throws -> ShardTrainingSummary {
        guard options.algorithm == .sgd else { throw FedRecError(.usage, "lr and fm models are trained with --algorithm sgd") }
        guard options.optimizer != .adam else { throw FedRecError(.usage, "lr and fm models train with --optimizer sgd or adagrad") }
        guard options.compression == nil, options.sampleRate == nil, options.localNoiseMultiplier == 0, options.alsBounds == nil else {
            throw FedRecError(.usage, "lr and fm models do not support --compress, --sample-rate or local DP yet")
        }
        let (model, identity) = try CTRModel.open(modelPath)
        let config = model.model.config
        let reader = try ShardUserReader(path: shardPath, datasetId: config.datasetId, items: model.catalogueItems)
        let trainer = CTRClientTrainer(model: model, options: options)
        let k = model.rank
        let layout: [(name: String, width: Int)] = k > 0 ? [(CTRModel.factorName, k), (CTRModel.weightName, 1)] : [(CTRModel.weightName, 1)]
        let rows = RowAccumulator(items: model.buckets, width: k + 1)
        var bias: Float = 0
        var residual = 0.0, curvature = 0.0
        var summary = ShardTrainingSummary()
        var totalWeight = 0.0
        let roundSeed = options.seed &+ UInt64(model.model.round) &* 0x9E37_79B9_7F4A_7C15
        var examples = CTRExamples()
        var row = [Float](repeating: 0, count: k + 1)

        func trainClient(_ users: [UserRecord]) {
            summary.population += 1
            examples.removeAll()
            for record in users { examples.append(record, model: model) }
            guard examples.count > 0 else { return }
            let w: Float = options.weighting == .examples ? Float(examples.count) : 1
            summary.clients += 1
            summary.users += users.count
            summary.examples += examples.count
            totalWeight += Double(w)
            var generator = SeededGenerator(seed: roundSeed, stream: UInt64(UInt32(bitPattern: users[0].client)))
            var delta = trainer.train(examples, generator: &generator)
            if options.clip > 0 {
                let norm = delta.norm
                if norm > options.clip {
                    delta.scale(by: Float(options.clip / norm))
                    summary.clipped += 1
                }
            }
            bias += w * delta.bias
            residual += delta.residual
            curvature += delta.curvature
            for (s, bucket) in delta.buckets.enumerated() {
                for f in 0..<k { row[f] = delta.factor[s * k + f] }
                row[k] = delta.weight[s]
                let slot = rows.slot(bucket)
                rows.countClient(slot: slot, weight: w)
                row.withUnsafeBufferPointer { rows.add(slot: slot, $0, scale: w) }
            }
        }

        var client: [UserRecord] = []
        var usersRead = 0
        while let record = try reader.next() {
            usersRead += 1
            if let first = client.first, first.client != record.client {
                trainClient(client)
                client.removeAll(keepingCapacity: true)
                progress.update("\(shardPath): \(usersRead) users")
            }
            client.append(record)
        }
        if !client.isEmpty { trainClient(client) }
        progress.finish()
        guard summary.clients > 0 else { throw FedRecError(.emptyInput, file: shardPath, "no client in the shard has training examples") }
        var header = UpdateHeader(config: config, baseModel: identity, round: model.model.round, algorithm: .sgd,
                                  weighting: options.weighting, clients: summary.clients, weight: totalWeight)
        header.clip = options.clip
        header.clipped = summary.clipped
        header.shards = [reader.identity]
        let sorted = rows.sortedTensors(split: layout)
        summary.rows = sorted.rows.count
        let update = ModelUpdate(header: header, rows: sorted.rows, rowClients: sorted.clients, rowWeight: sorted.weights,
                                 rowTensors: sorted.tensors,
                                 dense: [CTRModel.biasName: [bias], CTRModel.biasResidualName: [Float(residual), Float(curvature)]])
        try update.write(to: output, kind: .update)
        return summary
    }
}
