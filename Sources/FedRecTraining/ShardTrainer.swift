import FedRecData
import FedRecFormats
import FedRecMechanisms
import FedRecModel
import FedRecSecureAggregation
import FedRecSupport
import FedRecWire

/// What `fl-train-local` did for one shard.
public struct ShardTrainingSummary: Sendable {
    public var clients = 0
    public var users = 0
    public var examples = 0
    public var clipped = 0
    public var rows = 0
    /// Clients in the shard, sampled or not (with Poisson sampling).
    public var population = 0
    /// Local DP: ε of each client's release this round.
    public var localEpsilon: Double?

    /// What `fl-train-local --json` reports of the update written at `path`; `population`
    /// only when clients were sampled.
    public func json(update path: String, sampled: Bool) -> JSONValue {
        var members: [String: JSONValue] = [
            "update": .string(path), "clients": .number(Double(clients)), "users": .number(Double(users)),
            "examples": .number(Double(examples)), "rows": .number(Double(rows)), "clipped": .number(Double(clipped)),
        ]
        if sampled { members["population"] = .number(Double(population)) }
        if let localEpsilon { members["local_dp_epsilon"] = .number(localEpsilon) }
        return .object(members)
    }
}

/// Compresses each client's update as it is computed (`fl-train-local --compress`), for
/// matrix factorisation and NCF alike (the model's `ClientVectorLayout`).
final class ClientCompressor {
    var builder: CompressedUpdateBuilder
    var generator: ChaCha20Generator
    let seed: UInt64?

    /// - Parameter layout: the model's, made by `makeLayout` (its errors name `file`).
    init(compression: UpdateCompression, seed: UInt64?, file: String, layout makeLayout: () throws -> ClientVectorLayout) throws {
        do {
            builder = CompressedUpdateBuilder(compression: compression, layout: try makeLayout())
        } catch let error as FedRecError {
            throw error.inFile(file)
        }
        self.seed = seed
        var system = SystemRandomNumberGenerator()
        generator = ChaCha20Generator(seed: randomBytes(ChaCha20Generator.seedByteCount, using: &system), label: "compress")
    }

    /// Refuses `--clip` (`.usage`): the clip is the sensitivity DP relies on; a decoded
    /// QSGD level may exceed it (up to the row's norm a value) and top-k sends past rounds'
    /// residuals with this one's. (Under secure aggregation no client compressor is made.)
    func refuseClip(_ clip: Double) throws {
        guard clip > 0 else { return }
        throw FedRecError(.usage, "--compress \(builder.compression) changes the clipped delta's norm, which --clip bounds for DP: not both")
    }

    /// Refuses a state whose error-feedback residuals index another layout (`.mismatch`).
    func checkResiduals(of state: UserState, file: String?) throws {
        guard !state.residuals.isEmpty, state.residualLength != builder.layout.length else { return }
        throw FedRecError(.mismatch, file: file ?? "the state", "holds error-feedback residuals of length \(state.residualLength), the model's updates have \(builder.layout.length)")
    }

    /// Adds one client's update; top-k takes its residual from `residuals` and puts the new one back.
    func add(client: Int32, update: ModelUpdate, residuals: inout [Int32: SparseVector]) throws {
        let weight = Float(update.header.weight)
        switch builder.compression {
        case .float32:
            try builder.addPlain(update, weight: weight)
        case .qsgd:
            if let seed {
                // A test seed: each client's own stream, so the bytes do not depend on the order.
                var seeded = SeededGenerator(seed: seed, stream: UInt64(UInt32(bitPattern: client)))
                try builder.addQuantized(update, weight: weight, using: &seeded)
            } else {
                try builder.addQuantized(update, weight: weight, using: &generator)
            }
        case .topK(let ratio):
            let step = TopK.errorFeedback(update: try builder.layout.flatten(update), residual: residuals[client] ?? SparseVector(), ratio: ratio)
            residuals[client] = step.residual.isEmpty ? nil : step.residual
            try builder.addSparse(step.sent, weight: weight)
        }
    }
}

/// Trains every client of one shard against a global model and writes the shard's
/// update: the sum of the clients' contributions in sparse form. Private user parameters
/// are read from and written to the shard's state file (or rebuilt each round), never
/// put in the update.
public enum ShardTrainer {
    /// - Parameters:
    ///   - modelPath: the global checkpoint of this round.
    ///   - shardPath: the shard archive.
    ///   - stateIn: the shard's private state from an earlier round, if any.
    ///   - stateOut: where to write the shard's new private state, if anywhere.
    ///   - output: the update file (`-` for stdout).
    ///   - clientSink: with secure aggregation across clients (each client a party), each
    ///     client's own update, as it is computed; the shard's update is then not written
    ///     (`output` is ignored) and the client's update never leaves the sink.
    @discardableResult
    public static func run(modelPath: String, shardPath: String, stateIn: String?, stateOut: String?, output: String,
                           options: TrainingOptions, progress: Progress = Progress(quiet: true),
                           clientSink: ((_ client: Int32, _ update: ModelUpdate) throws -> Void)? = nil) throws -> ShardTrainingSummary {
        let model = try ModelView(path: modelPath)
        let config = model.config
        let d = config.dim
        if options.algorithm == .als && options.clip > 0 {
            throw FedRecError(.usage, "--clip applies to SGD deltas; ALS statistics are bounded with --dp-max-items and --dp-user-clip (private ALS)")
        }
        if options.alsBounds != nil {
            guard options.algorithm == .als else { throw FedRecError(.usage, "ALS contribution bounds apply to --algorithm als") }
            guard options.weighting == .uniform else {
                throw FedRecError(.usage, "private ALS needs --weighting uniform (a user adds at most 1 to an item's count)")
            }
        }
        let localDP = try LocalDP(options: options, config: config)
        // Without a given key, a secret one from the system CSPRNG.
        let drawn = try options.poissonSampling()
        let sampling = drawn?.sampling
        if config.objective == .wals && options.algorithm != .als {
            throw FedRecError(.usage, file: modelPath, "a wals model is trained with --algorithm als")
        }
        let reader = try ShardUserReader(path: shardPath, datasetId: config.datasetId, items: config.items)
        // Error feedback keeps its residuals in the state file even when users are rebuilt.
        let keepsResidual = clientSink == nil && options.compression?.keepsResidual == true
        var state = try UserState.starting(stateIn, dim: d, config: config, users: options.userParameters == .state, residuals: keepsResidual,
                                           shard: reader.origin, shardPath: shardPath)
        // Each client compressed apart (not under secure aggregation: its sink takes the clients).
        let compressor = try clientSink == nil ? options.compression.map {
            try ClientCompressor(compression: $0, seed: options.compressionSeed, file: modelPath) { try ClientVectorLayout(config: config) }
        } : nil
        if let compressor, options.algorithm != .sgd {
            throw FedRecError(.usage, "--compress \(compressor.builder.compression) applies to SGD updates, not to \(options.algorithm) statistics")
        }
        try compressor?.refuseClip(options.clip)
        if keepsResidual { try compressor?.checkResiduals(of: state, file: stateIn) }
        let sink: ((_ client: Int32, _ update: ModelUpdate) throws -> Void)? = clientSink ?? (compressor == nil ? nil : { client, update in
            try compressor?.add(client: client, update: update, residuals: &state.residuals)
        })
        let solver = try UserSolver(model: model, l2: options.l2, l2Bias: options.l2Bias, alpha: options.alpha)
        let layout: [(name: String, width: Int)] = options.algorithm == .als ? ALSStatistics.rowLayout(config) : [(TensorName.itemEmbedding, d), (TensorName.itemBias, 1)]
        let rows = RowAccumulator(items: config.items, width: layout.reduce(0) { $0 + $1.width })
        let denseCount = options.algorithm == .als ? ALSStatistics.denseCount(config) : 1
        var dense = [Float](repeating: 0, count: denseCount)
        let denseName = options.algorithm == .als ? ALSStatistics.denseName(config) : TensorName.globalBias
        let trainer = options.algorithm == .sgd ? SGDClientTrainer(model: model, options: options) : nil
        // ALS into one shard update: gathered by item and streamed out, a row at a time (a
        // client's own update, under secure aggregation, is small: its slots suffice).
        let collector = options.algorithm == .als && sink == nil
            ? ALSItemCollector(config: config, itemGram: options.alsBounds?.sharesItemGram(config) ?? true) : nil
        var summary = ShardTrainingSummary()
        var totalWeight = 0.0
        let roundSeed = options.seed &+ UInt64(model.round) &* 0x9E37_79B9_7F4A_7C15

        func startingParameters(_ record: UserRecord) throws -> (embedding: [Float], bias: Float) {
            if options.algorithm == .als || (options.userParameters == .reconstruct && config.objective == .mse) {
                return try solver.solve(record.train)
            }
            if options.userParameters == .state, let row = state.row(of: record.user) {
                return (Array(state.embedding[(row * d)..<((row + 1) * d)]), state.bias[row])
            }
            return (options.initialEmbedding(user: record.user, dim: d), 0)
        }

        /// The header every update of this shard carries (`clients` and `weight` its own).
        func header(clients: Int, weight: Double) -> UpdateHeader {
            var header = UpdateHeader(config: config, baseModel: model.identity, round: model.round, algorithm: options.algorithm,
                                      weighting: options.weighting, clients: clients, weight: weight)
            header.clip = options.clip
            header.shards = [reader.identity]
            header.extra[UserSettingsMetadata.key] = UserSideSettings(options).metadataValue
            if let localDP { header.extra.merge(localDP.metadata) { _, new in new } }
            if let bounds = options.alsBounds { header.extra.merge(bounds.metadata) { _, new in new } }
            return header
        }

        func trainClient(_ users: [UserRecord]) throws {
            let before = (clients: summary.clients, clipped: summary.clipped, weight: totalWeight)
            try trainOneClient(users)
            guard let clientSink = sink, summary.clients > before.clients else { return }
            // Secure aggregation across clients: this client's update alone, then a fresh start.
            var own = header(clients: 1, weight: totalWeight - before.weight)
            own.clipped = summary.clipped - before.clipped
            let sorted = rows.sortedTensors(split: layout)
            try clientSink(users[0].client, ModelUpdate(
                header: own, rows: sorted.rows, rowClients: sorted.clients, rowWeight: sorted.weights,
                rowTensors: sorted.tensors, dense: [denseName: dense]))
            rows.reset()
            dense = [Float](repeating: 0, count: denseCount)
        }

        func trainOneClient(_ users: [UserRecord]) throws {
            summary.population += 1
            if let sampling, !sampling.includes(round: model.round, client: Int(users[0].client)) { return }
            let examples = users.reduce(0) { $0 + $1.train.count }
            guard examples > 0 else { return }
            let weight: Float = options.weighting == .examples ? Float(examples) : 1
            summary.clients += 1
            summary.users += users.count
            summary.examples += examples
            totalWeight += Double(weight)
            var start = ClientUsers(embedding: [], bias: [])
            for record in users {
                let (p, b) = try startingParameters(record)
                start.embedding += p
                start.bias.append(b)
            }
            if let trainer, let localDP {
                var generator = SeededGenerator(seed: roundSeed, stream: UInt64(UInt32(bitPattern: users[0].client)))
                let result = try localDP.train(trainer, users: users, start: start, generator: &generator, rows: rows)
                dense[0] += result.globalBiasDelta
                if result.clipped { summary.clipped += 1 }
                for (u, record) in users.enumerated() {
                    result.users.embedding.withUnsafeBufferPointer { all in
                        state.set(user: record.user, embedding: UnsafeBufferPointer(rebasing: all[(u * d)..<((u + 1) * d)]), bias: result.users.bias[u])
                    }
                }
            } else if let trainer {
                var generator = SeededGenerator(seed: roundSeed, stream: UInt64(UInt32(bitPattern: users[0].client)))
                let result = trainer.train(users: users, start: start, generator: &generator) { items, deltas in
                    rows.addClient(rows: items, deltas, weight: weight, scale: weight)
                }
                dense[0] += weight * result.globalBiasDelta
                if result.clipped { summary.clipped += 1 }
                for (u, record) in users.enumerated() {
                    result.users.embedding.withUnsafeBufferPointer { all in
                        state.set(user: record.user, embedding: UnsafeBufferPointer(rebasing: all[(u * d)..<((u + 1) * d)]), bias: result.users.bias[u])
                    }
                }
            } else {
                for (u, record) in users.enumerated() {
                    let p = Array(start.embedding[(u * d)..<((u + 1) * d)])
                    var shared = (train: record.train, embedding: p)
                    if let bounds = options.alsBounds {
                        // Private ALS: the user's own vector stays as solved; what is shared
                        // uses it clipped to Γ, over at most K of the user's items.
                        var generator = SeededGenerator(seed: roundSeed ^ 0xA15_D9, stream: UInt64(UInt32(bitPattern: record.user)))
                        shared = (ALSStatistics.bounded(record.train, maxItems: bounds.maxItems, using: &generator),
                                  ALSStatistics.clipped(p, to: Float(bounds.userClip)))
                    }
                    let residualClip = options.alsBounds.map { Float($0.residualClip) }
                    if let collector {
                        collector.add(user: shared.train, embedding: shared.embedding, bias: start.bias[u], model: model,
                                      alpha: options.alpha, dense: &dense, weight: weight, residualClip: residualClip)
                    } else {
                        ALSStatistics.accumulate(user: shared.train, embedding: shared.embedding, bias: start.bias[u], model: model,
                                                 alpha: options.alpha, rows: rows, dense: &dense, weight: weight,
                                                 residualClip: residualClip, itemGram: options.alsBounds?.sharesItemGram(config) ?? true)
                    }
                    p.withUnsafeBufferPointer { state.set(user: record.user, embedding: $0, bias: start.bias[u]) }
                }
            }
        }

        try reader.forEachClient { users, usersRead in
            try trainClient(users)
            progress.update("\(shardPath): \(usersRead) users")
        }
        progress.finish()
        // With sampling, a shard none of whose clients was drawn still reports its population.
        guard summary.clients > 0 || (sampling != nil && summary.population > 0) else { throw FedRecError(.emptyInput, file: shardPath, "no client in the shard has training data") }

        var header = header(clients: summary.clients, weight: totalWeight)
        header.clipped = summary.clipped
        header.recordSampling(drawn, population: summary.population)
        if drawn == nil && options.alsBounds != nil {
            // Private ALS without sampling: the clients the shard holds (a public count).
            header.population = summary.population
        }
        if let localDP { summary.localEpsilon = localDP.epsilon }
        let update: ModelUpdate
        var spilled: [String: (width: Int, tensor: SpilledTensor)] = [:]
        if let collector {
            let gram = try SpilledTensor(directory: output == "-" ? temporaryDirectory() : directoryName(of: output), dtype: .f32)
            let gathered = try collector.rows(gram: gram)
            update = ModelUpdate(header: header, rows: gathered.rows, rowClients: gathered.clients, rowWeight: gathered.weights,
                                 rowTensors: [ALSStatistics.rhsName: RowTensor(width: collector.n, values: gathered.rhs)],
                                 dense: [denseName: dense])
            spilled[ALSStatistics.gramName] = (layout[0].width, gram)
        } else {
            let sorted = rows.sortedTensors(split: layout)
            update = ModelUpdate(header: header, rows: sorted.rows, rowClients: sorted.clients, rowWeight: sorted.weights,
                                 rowTensors: sorted.tensors, dense: [denseName: dense])
        }
        summary.rows = update.rows.count
        try model.checkIntegrity()
        if let compressor {
            state.residualLength = compressor.builder.layout.length
            summary.rows = compressor.builder.entries
        }
        if let stateOut { try state.write(to: stateOut, config: config, round: model.round + 1, shard: reader.origin) }
        if let compressor {
            try compressor.builder.write(header: header, to: output)
        } else if clientSink == nil {
            try update.write(to: output, kind: .update, spilled: spilled)
        }
        return summary
    }
}

extension UserState {
    /// The state a shard's training starts from: the users of `path` when `users` (their
    /// parameters kept between rounds), its error-feedback residuals when `residuals`
    /// (`--compress topk:…`, kept even when users are rebuilt), an empty state otherwise or
    /// when the file does not exist yet.
    static func starting(_ path: String?, dim: Int, config: ModelConfig, users: Bool, residuals: Bool, shard: ShardOrigin,
                         shardPath: String) throws -> UserState {
        var state = UserState(dim: dim)
        guard let path, users || residuals, fileExists(path) else { return state }
        let loaded = try UserState.load(path, config: config, shard: shard, shardPath: shardPath).state
        if users { state = loaded }
        state.residuals = loaded.residuals
        state.residualLength = loaded.residualLength
        return state
    }
}
