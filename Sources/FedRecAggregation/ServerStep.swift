import FedRecModel
import FedRecSupport
import FedRecWire
import FedRecFormats

/// How the server turns a round's sum into the next model.
public struct ServerOptions: Sendable, Equatable {
    /// Server optimisers of Reddi et al. 2021, "Adaptive Federated Optimization": the
    /// averaged client change Δ is a pseudo-gradient.
    public enum Optimizer: String, Sendable, CaseIterable {
        /// θ ← θ + η Δ (FedAvg with a server learning rate).
        case fedavg
        /// m ← β₁ m + Δ; θ ← θ + η m.
        case fedavgm
        /// m ← β₁ m + (1 − β₁) Δ; v ← β₂ v + (1 − β₂) Δ²; θ ← θ + η m / (√v + τ).
        case fedadam
        /// As FedAdam, but v ← v − (1 − β₂) Δ² sign(v − Δ²).
        case fedyogi
    }

    /// What an item row's summed change is divided by.
    public enum RowAverage: String, Sendable, CaseIterable {
        /// The total weight of the clients that touched the row: a row trained by 3 of 943
        /// clients is their average, not diluted by 940 zeros. This is the per-coordinate
        /// averaging of sparse federated embedding updates (as in FedSGD for sparse
        /// embeddings; cf. Ammad-ud-din et al. 2019, "Federated Collaborative Filtering",
        /// whose server applies each item's summed gradient).
        case touched
        /// The round's total client weight (plain FedAvg, McMahan et al. 2017): untouched
        /// clients count as zeros.
        case all
        /// No division: the sum itself, scaled by the server learning rate.
        case sum
    }

    public var optimizer: Optimizer = .fedavg
    public var learningRate: Float = 1
    public var beta1: Float = 0.9
    public var beta2: Float = 0.99
    public var tau: Float = 1e-3
    public var rowAverage: RowAverage = .touched
    /// A calibration round of a CTR model: the intercept alone moves, by one Newton–Raphson
    /// step on the log loss of every training example at the round's model (the intercept
    /// step of IRLS, McCullagh & Nelder 1989, §4.4): b ← b − Σ (p − y) / Σ p (1 − p), the
    /// sums the clients sent (`CTRModel.biasResidualName`; they train no epochs,
    /// `fl-train-local --epochs 0`). Every other parameter and the optimiser's state stay.
    /// It puts the model's mean prediction on the training click rate, which FedAvg of
    /// sparse rows pulls off (bench/RESULTS.md, CTR).
    public var calibrateBias = false
    /// With client-level DP: divide every row by this fixed expected weight (q·N) instead,
    /// so one client's influence is bounded whatever the others do.
    public var fixedDenominator: Double?
    /// λ of the ALS item step (weighted by the item's count for explicit ALS).
    public var l2: Float = 0.05
    /// λ of the item bias in the explicit ALS item step (nil: the same as `l2`).
    public var l2Bias: Float?
    /// Content-aware implicit ALS: the items' frozen text embeddings (`TextProjection`).
    public var itemText: TextEmbeddingTable?
    /// λ_W of the ridge fit of the text projection W.
    public var textL2: Double = 1
    /// Private ALS: an item whose noised count is below this is not solved (implicit:
    /// set to 0, as centralised implicit ALS leaves an item nobody chose; explicit: kept
    /// as it was). nil: 3σ of the release's noise, so an item nobody touched passes with
    /// probability 0.13 %.
    public var dpMinCount: Double?

    public init() {}
}

extension ServerOptions {
    /// What a touched row's summed delta is divided by: the weight of the clients that
    /// touched it, the round's total weight, or 1, as `rowAverage` says; with a fixed
    /// denominator (client-level DP), that total.
    @inline(__always)
    public func rowDenominator(rowWeight: Float, totalWeight: Double) -> Double {
        if fixedDenominator != nil { return totalWeight }
        switch rowAverage {
        case .touched: return Double(rowWeight)
        case .all: return totalWeight
        case .sum: return 1
        }
    }

    /// Whether the optimiser keeps a first moment (FedAvgM, FedAdam, FedYogi).
    public var usesFirstMoment: Bool { optimizer != .fedavg }
    /// Whether it keeps a second moment (FedAdam, FedYogi).
    public var usesSecondMoment: Bool { optimizer == .fedadam || optimizer == .fedyogi }

    /// Starts a server step on a model whose metadata is `notes`: refuses a step with
    /// another optimiser than the one its state belongs to, records this one, and
    /// returns what the step divides by (the fixed denominator, else the sum's weight).
    /// - Throws: `.mismatch` for another optimiser, `.emptyInput` for zero weight.
    public func begin(notes: inout [String: String], weight: Double, file: String) throws -> Double {
        if let previous = notes["server_optimizer"], previous != optimizer.rawValue {
            throw FedRecError(.mismatch, file: file, "the model's server optimiser state is \(previous); keep --server-optimizer \(previous)")
        }
        notes["server_optimizer"] = optimizer.rawValue
        let total = fixedDenominator ?? weight
        guard total > 0 else { throw FedRecError(.emptyInput, file: file, "the sum has zero total weight") }
        return total
    }

    /// The server optimiser's move of one parameter for the averaged client delta `delta`
    /// (Reddi et al. ICLR 2021, "Adaptive Federated Optimization": FedAvgM, FedAdam,
    /// FedYogi), updating its first and second moments `m` and `v` in place.
    @inline(__always)
    public func move(_ delta: Float, _ m: inout Float, _ v: inout Float) -> Float {
        switch optimizer {
        case .fedavg:
            return learningRate * delta
        case .fedavgm:
            m = beta1 * m + delta
            return learningRate * m
        case .fedadam, .fedyogi:
            m = beta1 * m + (1 - beta1) * delta
            let square = delta * delta
            if optimizer == .fedadam {
                v = beta2 * v + (1 - beta2) * square
            } else {
                let sign: Float = v > square ? 1 : (v < square ? -1 : 0)
                v = v - (1 - beta2) * square * sign
            }
            return learningRate * m / (v.squareRoot() + tau)
        }
    }
}

/// Applies one round's sum to the model it was computed from.
public enum ServerStep {
    /// - Returns: the next model (round + 1), with the server optimiser's state in it: the
    ///   rows the step changed over the start model, to write standalone or as an overlay.
    /// - Throws: `.mismatch` when the sum was computed from another model or round.
    public static func apply(_ sum: ModelUpdate, sumFile: String, to modelPath: String, options: ServerOptions) throws -> ModelRevision {
        try apply(header: sum.header, sumFile: sumFile, to: modelPath, options: options) { model in
            if sum.header.algorithm == .als {
                try solveItems(sum, model: &model, options: options, file: sumFile)
            } else {
                try step(sum, model: &model, options: options, file: sumFile)
            }
        }
    }

    /// The ALS item step from a sum merged as the updates stream (`ALSSumStream`): each
    /// item solved as its summed row arrives, the same next model `apply` gives the sum.
    public static func apply(_ stream: ALSSumStream, sumFile: String, to modelPath: String, options: ServerOptions) throws -> ModelRevision {
        try apply(header: stream.header, sumFile: sumFile, to: modelPath, options: options) { model in
            guard stream.header.algorithm == .als else { throw FedRecError(.usage, file: sumFile, "is not an ALS sum") }
            try solveItems(header: stream.header, dense: stream.dense, model: &model, options: options, file: sumFile) { body in
                try stream.forEachRow { row in try body(ALSRow(item: row.item, weight: row.weight, gram: row.gram, rhs: row.rhs)) }
            }
        }
    }

    /// What both ways of applying a sum share: the checks of its header against the
    /// model, the next revision, the step (`body`), its notes and round.
    static func apply(header: UpdateHeader, sumFile: String, to modelPath: String, options: ServerOptions,
                      _ body: (inout ModelRevision) throws -> Void) throws -> ModelRevision {
        let view = try ModelView(path: modelPath)
        try header.requireComputed(from: view.config, identity: view.identity, round: view.round, modelPath: modelPath, sumFile: sumFile)
        var model = try ModelRevision(start: view)
        try checkText(options.itemText, model: model, file: modelPath)
        try body(&model)
        // The clients' user-side settings, when all updates agree on them; otherwise the
        // next model records none (fl-eval then needs its flags).
        model.notes[UserSettingsMetadata.key] = header.extra[UserSettingsMetadata.key]
        model.round += 1
        try view.checkIntegrity()
        return model
    }

    /// A content-aware model needs its text table, and only that table; a plain model none.
    static func checkText(_ text: TextEmbeddingTable?, model: ModelRevision, file: String) throws {
        switch (text, model.textProjection) {
        case (nil, nil):
            return
        case (nil, _?):
            throw FedRecError(.usage, file: file, "is content-aware (text_dim \(model.textDim)): give its --item-text table")
        case (let text?, nil):
            throw FedRecError(.mismatch, file: text.path, "is given, but \(file) has no text projection (make it with fl-init --item-text)")
        case (let text?, _?):
            try text.requireAligned(items: model.config.items, datasetId: model.config.datasetId)
            guard text.dim == model.textDim else {
                throw FedRecError(.shape, file: text.path, "has dim \(text.dim), the model's text projection expects \(model.textDim)")
            }
            if let recorded = model.notes["item_text"], recorded != text.identity {
                throw FedRecError(.mismatch, file: text.path, "is table \(text.identity.prefix(12)), but \(file) was made with \(recorded.prefix(12))")
            }
            guard model.config.objective == .wals else {
                throw FedRecError(.usage, file: file, "the text projection is fitted in the implicit ALS (wals) item step only")
            }
        }
    }

    static func step(_ sum: ModelUpdate, model: inout ModelRevision, options: ServerOptions, file: String) throws {
        let d = model.config.dim, w = d + 1
        guard let embedding = sum.rowTensors[TensorName.itemEmbedding], embedding.width == d,
            let bias = sum.rowTensors[TensorName.itemBias], bias.width == 1, let global = sum.dense[TensorName.globalBias], global.count == 1
        else { throw FedRecError(.shape, file: file, "a delta sum needs rows.item_embedding [n, \(d)], rows.item_bias [n, 1] and dense.global_bias [1]") }
        let totalWeight = try options.begin(notes: &model.notes, weight: sum.header.weight, file: file)

        // Optimiser state exists only for rows some round has trained (lazy, as sparse
        // Adam does for embeddings): rows no client touched keep their value and state.
        let needsM = options.usesFirstMoment, needsV = options.usesSecondMoment
        var state = model.serverState ?? ServerOptimizerState()
        if needsV && model.serverState == nil { state.global[1] = options.tau * options.tau }
        let slots = needsM ? state.slots(for: sum.rows, width: w, initialV: options.tau * options.tau, usesV: needsV) : []
        func apply(_ delta: Float, _ m: inout Float, _ v: inout Float) -> Float { options.move(delta, &m, &v) }
        var unusedM: Float = 0, unusedV: Float = 0
        for (r, row) in sum.rows.enumerated() {
            let item = Int(row)
            let denominator = options.rowDenominator(rowWeight: sum.rowWeight[r], totalWeight: totalWeight)
            guard denominator > 0 else { continue }
            let scale = Float(1 / denominator)
            let target = model.slot(item)
            for k in 0..<w {
                let delta = (k < d ? embedding.values[r * d + k] : bias.values[r]) * scale
                let step: Float
                if needsM {
                    let i = slots[r] * w + k
                    if needsV {
                        step = apply(delta, &state.m[i], &state.v[i])
                    } else {
                        step = apply(delta, &state.m[i], &unusedV)
                    }
                } else {
                    step = apply(delta, &unusedM, &unusedV)
                }
                if k < d { model.embedding[target * d + k] += step } else { model.bias[target] += step }
            }
        }
        let globalDenominator = options.rowAverage == .sum && options.fixedDenominator == nil ? 1 : totalWeight
        var globalM = state.global[0], globalV = state.global[1]
        model.globalBias += apply(global[0] * Float(1 / globalDenominator), &globalM, &globalV)
        state.global = [globalM, globalV]
        model.serverState = needsM ? state : nil
    }

    /// The ALS item step: each touched row's least-squares solve from summed statistics.
    static func solveItems(_ sum: ModelUpdate, model: inout ModelRevision, options: ServerOptions, file: String) throws {
        let config = model.config
        let layout = ALSStatistics.rowLayout(config)
        guard let gram = sum.rowTensors[layout[0].name], gram.width == layout[0].width,
            let rhs = sum.rowTensors[layout[1].name], rhs.width == layout[1].width,
            let dense = sum.dense[ALSStatistics.denseName(config)], dense.count == ALSStatistics.denseCount(config)
        else { throw FedRecError(.shape, file: file, "ALS statistics do not fit a \(config.objective.rawValue) model of d=\(config.dim)") }
        let t = layout[0].width, n = layout[1].width
        try gram.values.withUnsafeBufferPointer { g in
            try rhs.values.withUnsafeBufferPointer { h in
                try solveItems(header: sum.header, dense: dense, model: &model, options: options, file: file) { body in
                    for (r, row) in sum.rows.enumerated() {
                        try body(ALSRow(item: Int(row), weight: sum.rowWeight[r], gram: g.baseAddress! + r * t, rhs: h.baseAddress! + r * n))
                    }
                }
            }
        }
    }

    /// One item's summed ALS statistics as the item step reads them: the packed Gram
    /// block (`ALSStatistics.packedCount(n)` values) and right-hand side (n).
    public struct ALSRow {
        public var item: Int
        /// The weight of the clients that touched the item (`row_weight`).
        public var weight: Float
        public var gram: UnsafePointer<Float>
        public var rhs: UnsafePointer<Float>

        public init(item: Int, weight: Float, gram: UnsafePointer<Float>, rhs: UnsafePointer<Float>) {
            self.item = item
            self.weight = weight
            self.gram = gram
            self.rhs = rhs
        }
    }

    /// The ALS item step over rows that `rows` hands to its body one at a time, in
    /// ascending item order (from a sum in memory, or merged as the updates stream).
    /// - Parameters:
    ///   - header: the sum's header (its privacy metadata and clients).
    ///   - dense: the sum's dense part (`ALSStatistics.denseName`).
    static func solveItems(header: UpdateHeader, dense: [Float], model: inout ModelRevision, options: ServerOptions, file: String,
                           rows: ((ALSRow) throws -> Void) throws -> Void) throws {
        let config = model.config
        let d = config.dim
        guard dense.count == ALSStatistics.denseCount(config) else {
            throw FedRecError(.shape, file: file, "ALS statistics do not fit a \(config.objective.rawValue) model of d=\(d)")
        }
        let wals = config.objective == .wals
        let n = wals ? d : d + 1
        var a = [Double](repeating: 0, count: n * n)
        var b = [Double](repeating: 0, count: n)
        var trained = [Bool](repeating: false, count: config.items)
        var solvedRows: [Int32] = []
        // Private ALS: the statistics carry Gaussian noise of standard deviation σ. A
        // symmetric n × n matrix of such noise has spectral norm about 2σ√n (Wigner's
        // semicircle); the item's Gram and the dense part each carry one, so a ridge of
        // 2√2·σ√n keeps the noised system positive definite (doubled until Cholesky
        // succeeds: post-processing, no privacy cost). Items whose noised count is below
        // the threshold are noise rather than signal and are not solved.
        let isPrivateALS = DPMetadata.isPrivateALS(header.extra)
        let noise = isPrivateALS ? Double(header.extra[DPMetadata.noiseStddev] ?? "") : nil
        if isPrivateALS && noise == nil {
            throw FedRecError(.badData, file: file, "a private ALS sum without its noise standard deviation (dp_noise_stddev)")
        }
        // Mean-field item Gram (`ItemGramMode.mean`): α Σ_{u∈Ω_i} p pᵀ ≈ α n_i · D / N from
        // the item's noised count and the dense Gram D of all N users; only D is noised.
        let bounds: ALSContributionBounds?
        do {
            bounds = noise == nil ? nil : try ALSContributionBounds(metadata: header.extra)
        } catch let error as FedRecError { throw error.inFile(file) }
        let meanField = bounds.map { !$0.sharesItemGram(config) } ?? false
        let population = Double(max(header.clients, 1))
        // D's noise is σ/w (`denseWeight`); a shared item Gram's is σ.
        let denseNoise = noise.map { $0 / (bounds?.denseWeight(config) ?? 1) } ?? 0
        let ridge = noise.map { sigma in
            2 * Double(n).squareRoot() * (meanField ? denseNoise : (sigma * sigma + (wals ? denseNoise * denseNoise : 0)).squareRoot())
        } ?? 0
        let minCount = noise.map { options.dpMinCount ?? 3 * $0 }
        var skipped: [Int] = []
        try rows { row in
            let item = row.item
            solvedRows.append(Int32(item))
            if let minCount, Double(row.weight) < minCount {
                skipped.append(item)
                return
            }
            let factor = meanField ? 1 + (bounds?.alpha ?? 0) * max(Double(row.weight), 0) / population : 1
            var extra = ridge * factor
            var solved = false
            for _ in 0..<12 {
                a.withUnsafeMutableBufferPointer { a in ALSStatistics.unpack(row.gram, n: n, into: a.baseAddress!) }
                for x in 0..<n { b[x] = Double(row.rhs[x]) }
                if wals {
                    for x in 0..<(n * n) { a[x] += Double(dense[x]) * factor }
                    for x in 0..<n { a[x * n + x] += Double(options.l2) + extra }
                } else {
                    // Weighted λ: λ (λ_b for the bias) times the item's number of ratings, which
                    // is the bias-bias entry of Σ x xᵀ.
                    let count = a[n * n - 1]
                    for x in 0..<n { a[x * n + x] += Double(x == d ? options.l2Bias ?? options.l2 : options.l2) * max(count, 1) + extra }
                }
                solved = a.withUnsafeMutableBufferPointer { a in b.withUnsafeMutableBufferPointer { b in Cholesky.solve(a, b, n: n) } }
                if solved || noise == nil { break }
                extra *= 2
            }
            // No unique solution (λ = 0 and too few ratings, or non-finite statistics): an
            // error, not a row silently left as it was.
            guard solved else {
                throw FedRecError(.usage, file: file, "the least-squares system of item index \(item) has no unique solution (λ = \(options.l2)): give --l2 > 0")
            }
            let target = model.slot(item)
            for k in 0..<d { model.embedding[target * d + k] = Float(b[k]) }
            if !wals { model.bias[target] = Float(b[d]) }
            trained[item] = true
        }
        // (A private sum's noised count is far above its noise: a sum over every rating.)
        if !wals && dense[1] > 0 { model.globalBias = dense[0] / dense[1] }
        if wals, let text = options.itemText {
            // Content-aware: fit W on the warm rows v_i* just solved, keep them as they are
            // (free embedding e_i = v_i* − W t_i), and give every untrained row W t_i.
            try model.makeDense()
            let warm = (0..<config.items).filter { trained[$0] }
            guard let w = TextProjection.fit(embeddings: model.embedding, dim: d, items: warm, text: text, l2: options.textL2) else {
                throw FedRecError(.badData, file: text.path, "the text projection's system is singular; use --text-l2 > 0")
            }
            for item in 0..<config.items where !trained[item] {
                TextProjection.project(w, dim: d, text: text, item: item, into: &model.embedding)
            }
            model.textProjection = w
            model.notes["text_l2"] = "\(options.textL2)"
            model.itemSupport = nil
            return
        }
        if wals {
            for item in skipped {
                let target = model.slot(item)
                for k in 0..<d { model.embedding[target * d + k] = 0 }
            }
        }
        if wals {
            // Centralised implicit ALS gives an item with no observed pair the solution 0;
            // do the same, so never-trained items do not rank by their random start. Rows
            // already zero stay unchanged (and out of an overlay). Only the start model's
            // support can be nonzero, so a model that records it is not scanned whole.
            let solved = Set(solvedRows)
            func zeroIfUntouched(_ item: Int) {
                guard !solved.contains(Int32(item)) else { return }
                let row = model.start.items.embedding(item)
                guard (0..<d).contains(where: { row[$0] != 0 }) else { return }
                let target = model.slot(item)
                for k in 0..<d { model.embedding[target * d + k] = 0 }
            }
            if let support = model.start.itemSupport {
                for item in support { zeroIfUntouched(Int(item)) }
            } else {
                for item in 0..<config.items { zeroIfUntouched(item) }
            }
            model.itemSupport = solvedRows.sorted()
        }
    }
}

extension ServerStep {
    /// What `fl-aggregate --json` reports of the next model, written at `path` from `sum`.
    public static func summary(model path: String, round: Int, written: (identity: String, overlay: Bool), sum: ModelUpdate) -> JSONValue {
        summary(model: path, round: round, written: written, clients: sum.header.clients, rows: sum.rows.count)
    }

    /// As `summary(model:round:written:sum:)`, from the sum's clients and rows.
    public static func summary(model path: String, round: Int, written: (identity: String, overlay: Bool), clients: Int, rows: Int) -> JSONValue {
        .object(["model": .string(path), "round": .number(Double(round)), "identity": .string(written.identity),
                 "clients": .number(Double(clients)), "rows": .number(Double(rows)),
                 "layout": .string(written.overlay ? "overlay" : "standalone")])
    }
}
