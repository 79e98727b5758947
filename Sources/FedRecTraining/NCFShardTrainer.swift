import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecWire

/// `fl-train-local` for an ncf model: every client of one shard trains (`NCFClientTrainer`)
/// and the shard's update is written as an ordinary `ModelUpdate`: `rows.gmf_item` and
/// `rows.mlp_item` for the item rows the clients touched, `dense.NAME` for the tower and
/// the prediction layer, each Σ_k w_k Δ_k. User vectors stay in the shard's state file
/// (or are rebuilt each round with `--reconstruct`), as MF's do. With `--compress` each
/// client's update (its item rows and its dense deltas) is compressed apart instead
/// (`ClientVectorLayout(items:network:)`), top-k's residuals kept in the state file.
///
/// Client-level DP as for MF (DP-FedAvg): with `--clip` C each client's whole update (its
/// item rows and dense deltas, one vector) is clipped to L2 norm C before it is weighted,
/// and the header records C and the clipped count; with `--sample-rate` q each client
/// takes part with probability q (`PoissonSampling`) and the header records q, the
/// population and the key's source, so `fl-dp-noise` releases the sum unchanged. With a
/// `clientSink` (cross-device secure aggregation, `SecureParty.maskClients`) each client's
/// own update goes to the sink instead. Distributed DP (`--ddp-epsilon`, `--secagg-silo`)
/// is refused for ncf: its release vector (`ReleaseVector`, `DistributedDPEncoding`) is
/// laid out for MF's tensors.
public enum NCFShardTrainer {
    /// What an ncf client cannot do, refused before anything is read: ALS (ncf trains by
    /// SGD), local DP (its noise is calibrated on MF's dense vector) and the FedProx term
    /// (not in the ncf client's step).
    /// - Throws: `.usage` naming the option.
    public static func checkSupported(_ options: TrainingOptions) throws {
        var refused: [String] = []
        if options.algorithm != .sgd { refused.append("--algorithm \(options.algorithm.rawValue) (ncf trains by sgd)") }
        if options.localNoiseMultiplier > 0 { refused.append("--local-dp") }
        if options.alsBounds != nil { refused.append("ALS contribution bounds") }
        if options.proxMu > 0 { refused.append("--prox-mu") }
        guard refused.isEmpty else {
            throw FedRecError(.usage, "an ncf model does not take \(refused.joined(separator: ", ")) yet")
        }
    }

    /// Refuses distributed DP for an ncf model (`requested`: `--ddp-epsilon` or
    /// `--secagg-silo` given): its release vector is MF's (`ReleaseVector.length` from the
    /// header alone), which holds no tower. Secure aggregation without it composes.
    /// - Throws: `.usage` naming the options.
    public static func refuseDistributedDP(_ requested: Bool) throws {
        guard requested else { return }
        throw FedRecError(
            .usage,
            "an ncf model takes no distributed DP yet (--ddp-epsilon, --secagg-silo): its release vector is laid out for mf; use --secagg-session alone, or fl-secagg mask --update, with fl-dp-noise at the server")
    }

    /// Trains the shard at `shardPath` against the ncf model at `modelPath`.
    /// - Parameter clientSink: with secure aggregation across clients (each client a
    ///   party), each client's own update, as it is computed; the shard's update is then
    ///   not written (`output` is ignored) and no client compressor is made.
    public static func run(modelPath: String, shardPath: String, stateIn: String?, stateOut: String?, output: String,
                           options: TrainingOptions, progress: Progress = Progress(quiet: true),
                           clientSink: ((_ client: Int32, _ update: ModelUpdate) throws -> Void)? = nil) throws -> ShardTrainingSummary {
        try checkSupported(options)
        let (model, identity) = try NCFModel.open(modelPath)
        let config = model.config
        let width = model.network.userWidth
        // Without a given key, a secret one from the system CSPRNG.
        let drawn = try options.poissonSampling()
        let reader = try ShardUserReader(path: shardPath, datasetId: config.datasetId, items: config.items)
        let keepsResidual = clientSink == nil && options.compression?.keepsResidual == true
        var state = try UserState.starting(stateIn, dim: width, config: config, users: options.userParameters == .state, residuals: keepsResidual,
                                           shard: reader.origin, shardPath: shardPath)
        // Each client compressed apart (not under secure aggregation: its sink takes the clients).
        let compressor = try clientSink == nil ? options.compression.map {
            try ClientCompressor(compression: $0, seed: options.compressionSeed, file: modelPath) { try ClientVectorLayout(items: config.items, network: model.network) }
        } : nil
        try compressor?.refuseClip(options.clip)
        if keepsResidual { try compressor?.checkResiduals(of: state, file: stateIn) }
        let sink: ((_ client: Int32, _ update: ModelUpdate) throws -> Void)? = clientSink ?? (compressor == nil ? nil : { client, update in
            try compressor?.add(client: client, update: update, residuals: &state.residuals)
        })
        let trainer = NCFClientTrainer(model: model, options: options)
        let layout = model.network.rowLayout
        let rows = RowAccumulator(items: config.items, width: width)
        var dense = [Float](repeating: 0, count: model.network.denseCount)
        var summary = ShardTrainingSummary()
        var totalWeight = 0.0
        let roundSeed = options.seed &+ UInt64(model.round) &* 0x9E37_79B9_7F4A_7C15
        let userEpochs = options.userParameters == .reconstruct ? options.reconstructionEpochs : 0

        /// The header every update of this shard carries (`clients`, `weight` and `clipped` its own).
        func header(clients: Int, weight: Double, clipped: Int) -> UpdateHeader {
            var header = UpdateHeader(config: config, baseModel: identity, round: model.round, algorithm: .sgd,
                                      weighting: options.weighting, clients: clients, weight: weight)
            header.clip = options.clip
            header.clipped = clipped
            header.shards = [reader.identity]
            header.extra[UserSettingsMetadata.key] = UserSideSettings(options).metadataValue
            return header
        }

        /// The summed rows and `dense` as an update (the dense vector split into its tensors).
        func update(_ header: UpdateHeader) -> ModelUpdate {
            let sorted = rows.sortedTensors(split: layout)
            var denseTensors: [String: [Float]] = [:]
            for entry in model.network.denseLayout {
                denseTensors[entry.name] = Array(dense[entry.offset..<(entry.offset + entry.shape.reduce(1, *))])
            }
            return ModelUpdate(header: header, rows: sorted.rows, rowClients: sorted.clients, rowWeight: sorted.weights,
                               rowTensors: sorted.tensors, dense: denseTensors)
        }

        func trainClient(_ users: [UserRecord]) throws {
            summary.population += 1
            if let drawn, !drawn.sampling.includes(round: model.round, client: Int(users[0].client)) { return }
            let examples = users.reduce(0) { $0 + $1.train.count }
            guard examples > 0 else { return }
            let weight: Float = options.weighting == .examples ? Float(examples) : 1
            summary.clients += 1
            summary.users += users.count
            summary.examples += examples
            totalWeight += Double(weight)
            var start: [Float] = []
            start.reserveCapacity(users.count * width)
            for record in users {
                if options.userParameters == .state, let row = state.row(of: record.user) {
                    start += state.embedding[(row * width)..<((row + 1) * width)]
                } else {
                    start += options.initialEmbedding(user: record.user, dim: width)
                }
            }
            var generator = SeededGenerator(seed: roundSeed, stream: UInt64(UInt32(bitPattern: users[0].client)))
            let result = trainer.train(users: users, start: start, generator: &generator, userEpochs: userEpochs,
                                       sharedEpochs: options.epochs) { item, delta in
                let slot = rows.slot(item)
                rows.countClient(slot: slot, weight: weight)
                rows.add(slot: slot, delta, scale: weight)
            }
            for k in dense.indices { dense[k] += weight * result.denseDelta[k] }
            if result.clipped { summary.clipped += 1 }
            if let sink {
                // This client's update alone (to be compressed or masked), then a fresh start.
                try sink(users[0].client, update(header(clients: 1, weight: Double(weight), clipped: result.clipped ? 1 : 0)))
                rows.reset()
                for k in dense.indices { dense[k] = 0 }
            }
            for (u, record) in users.enumerated() {
                result.users.withUnsafeBufferPointer { all in
                    state.set(user: record.user, embedding: UnsafeBufferPointer(rebasing: all[(u * width)..<((u + 1) * width)]), bias: 0)
                }
            }
        }

        try reader.forEachClient { users, usersRead in
            try trainClient(users)
            progress.update("\(shardPath): \(usersRead) users")
        }
        progress.finish()
        // With sampling, a shard none of whose clients was drawn still reports its population.
        guard summary.clients > 0 || (drawn != nil && summary.population > 0) else {
            throw FedRecError(.emptyInput, file: shardPath, "no client in the shard has training data")
        }

        var shardHeader = header(clients: summary.clients, weight: totalWeight, clipped: summary.clipped)
        shardHeader.recordSampling(drawn, population: summary.population)
        if let compressor {
            state.residualLength = compressor.builder.layout.length
            summary.rows = compressor.builder.entries
        }
        if let stateOut, options.userParameters == .state || keepsResidual {
            try state.write(to: stateOut, config: config, round: model.round + 1, shard: reader.origin)
        }
        if let compressor {
            try compressor.builder.write(header: shardHeader, to: output)
        } else if clientSink == nil {
            let sum = update(shardHeader)
            summary.rows = sum.rows.count
            try sum.write(to: output, kind: .update)
        }
        return summary
    }

    /// A user's vector rebuilt from its training data against a frozen model
    /// (`--reconstruct`: `reconstructionEpochs` passes over the user's parameters alone),
    /// from the same start and stream in training and evaluation.
    public static func reconstruct(_ record: UserRecord, trainer: NCFClientTrainer, options: TrainingOptions) -> [Float] {
        let width = trainer.width
        var generator = SeededGenerator(seed: options.seed ^ 0xE7A1, stream: UInt64(UInt32(bitPattern: record.user)))
        return trainer.train(users: [record], start: options.initialEmbedding(user: record.user, dim: width), generator: &generator,
                             userEpochs: options.reconstructionEpochs, sharedEpochs: 0) { _, _ in }.users
    }

    /// NeuMF's user vectors from a shard's GMF and MLP states (He et al. 2017, §3.4.1: the
    /// pretrained models' embeddings, each user's GMF factors then MLP embedding), written
    /// for `neumf` (`fl-init --pretrain-gmf-states`). A user only one of the states holds
    /// is left out: training starts it afresh.
    /// - Throws: `.mismatch` when the states do not belong to the two models or to one shard.
    public static func mergeStates(gmfState: String, gmf: NCFModel, mlpState: String, mlp: NCFModel, neumf: NCFModel, output: String) throws {
        let g = try UserState.load(gmfState, config: gmf.config)
        let m = try UserState.load(mlpState, config: mlp.config)
        let gmfOrigin = ShardOrigin(metadata: try FedRecFile(path: gmfState, kinds: [.state]).metadata)
        let mlpOrigin = ShardOrigin(metadata: try FedRecFile(path: mlpState, kinds: [.state]).metadata)
        if let a = gmfOrigin, let b = mlpOrigin, a.identity != b.identity {
            throw FedRecError(.mismatch, file: mlpState, "is the state of \(b.description), \(gmfState) of \(a.description)")
        }
        let gw = gmf.network.userWidth, mw = mlp.network.userWidth
        var merged = UserState(dim: gw + mw)
        var vector = [Float](repeating: 0, count: gw + mw)
        for (row, user) in g.state.users.enumerated() {
            guard let other = m.state.row(of: user) else { continue }
            for k in 0..<gw { vector[k] = g.state.embedding[row * gw + k] }
            for k in 0..<mw { vector[gw + k] = m.state.embedding[other * mw + k] }
            vector.withUnsafeBufferPointer { merged.set(user: user, embedding: $0, bias: 0) }
        }
        try merged.write(to: output, config: neumf.config, round: 0, shard: gmfOrigin ?? mlpOrigin)
    }
}
