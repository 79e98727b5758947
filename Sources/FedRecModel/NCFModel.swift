import FedRecFormats
import FedRecSupport

/// Which neural collaborative filtering model (He et al., "Neural Collaborative
/// Filtering", WWW 2017, §3).
public enum NCFVariant: String, Sendable, CaseIterable {
    /// Generalized matrix factorisation: ŷ = hᵀ(p_u ⊙ q_i) + b (eq. 9).
    case gmf
    /// A ReLU tower over [p_u; q_i]: ŷ = hᵀ a_L + b (eq. 10).
    case mlp
    /// Both, fused in the last layer: ŷ = hᵀ[p_u^G ⊙ q_i^G; a_L] + b (eqs. 11–12).
    case neumf

    var hasGMF: Bool { self != .mlp }
    var hasMLP: Bool { self != .gmf }
}

/// The shape of an NCF network and where each parameter lives.
///
/// A user's private vector (client side, in the shard's state file) is the GMF factors
/// then the MLP embedding, `userWidth` = `config.dim` values; an item's row is the same
/// layout, stored as the row tensors `gmf_item` [items, gmfDim] and `mlp_item`
/// [items, mlpDim]. The dense (federated) parameters are the tower's `mlp.wL` [h_L, in]
/// and `mlp.bL` [h_L] and the prediction layer's `out.w` [gmfDim + h_last] and `out.b`
/// [1], kept in one flat vector in `denseLayout` order.
public struct NCFNetwork: Sendable, Equatable {
    public let variant: NCFVariant
    /// GMF factors (0 for MLP).
    public let gmfDim: Int
    /// MLP embedding size (0 for GMF); the tower's input is 2 · mlpDim.
    public let mlpDim: Int
    /// Hidden ReLU layer widths of the tower (empty for GMF).
    public let layers: [Int]
    /// Dense tensors in order: name, shape, offset in the flat vector.
    public let denseLayout: [(name: String, shape: [Int], offset: Int)]
    public let denseCount: Int
    /// Offsets of each tower layer's W and b, and of out.w and out.b.
    let weightOffset: [Int], biasOffset: [Int]
    let outOffset: Int, outBiasOffset: Int
    /// Width of the prediction layer's input: gmfDim + the last hidden width.
    public let outWidth: Int

    public static let gmfItem = "gmf_item"
    public static let mlpItem = "mlp_item"
    public static let outWeight = "out.w"
    public static let outBias = "out.b"

    public static func == (a: NCFNetwork, b: NCFNetwork) -> Bool {
        a.variant == b.variant && a.gmfDim == b.gmfDim && a.mlpDim == b.mlpDim && a.layers == b.layers
    }

    /// - Throws: `.usage` when the sizes do not describe a network of `variant`.
    public init(variant: NCFVariant, gmfDim: Int, mlpDim: Int, layers: [Int]) throws {
        let gmf = variant.hasGMF ? gmfDim : 0
        let mlp = variant.hasMLP ? mlpDim : 0
        let hidden = variant.hasMLP ? layers : []
        guard !variant.hasGMF || (1...4096).contains(gmf) else { throw FedRecError(.usage, "GMF needs 1 to 4096 factors (--dim), got \(gmfDim)") }
        guard !variant.hasMLP || ((1...4096).contains(mlp) && !hidden.isEmpty && hidden.count <= 16 && hidden.allSatisfy({ (1...4096).contains($0) })) else {
            throw FedRecError(.usage, "the MLP needs an embedding size 1 to 4096 (--mlp-dim) and 1 to 16 hidden layers of 1 to 4096 units (--layers), got \(mlpDim) and \(layers)")
        }
        self.variant = variant
        self.gmfDim = gmf
        self.mlpDim = mlp
        self.layers = hidden
        var layout: [(String, [Int], Int)] = []
        var offset = 0
        var w: [Int] = [], b: [Int] = []
        var input = 2 * mlp
        for (l, h) in hidden.enumerated() {
            layout.append(("mlp.w\(l)", [h, input], offset)); w.append(offset); offset += h * input
            layout.append(("mlp.b\(l)", [h], offset)); b.append(offset); offset += h
            input = h
        }
        outWidth = gmf + (hidden.last ?? 0)
        layout.append((Self.outWeight, [outWidth], offset)); outOffset = offset; offset += outWidth
        layout.append((Self.outBias, [1], offset)); outBiasOffset = offset; offset += 1
        denseLayout = layout.map { (name: $0.0, shape: $0.1, offset: $0.2) }
        denseCount = offset
        weightOffset = w
        biasOffset = b
    }

    /// Values of a user's (or an item's) vector: GMF factors, then MLP embedding.
    public var userWidth: Int { gmfDim + mlpDim }

    /// The row tensors of this variant with their widths, in the vector's order.
    public var rowLayout: [(name: String, width: Int)] {
        (gmfDim > 0 ? [(Self.gmfItem, gmfDim)] : []) + (mlpDim > 0 ? [(Self.mlpItem, mlpDim)] : [])
    }

    /// The settings recorded in the checkpoint (`setting.NAME`).
    public var settings: [String: String] {
        ["variant": variant.rawValue, "gmf_dim": String(gmfDim), "mlp_dim": String(mlpDim),
         "layers": layers.map(String.init).joined(separator: ",")]
    }

    /// The network a checkpoint's settings describe.
    /// - Throws: `.corrupt` naming `file` when a setting is missing or malformed.
    public init(settings: [String: String], file: String) throws {
        guard let v = settings["variant"], let variant = NCFVariant(rawValue: v),
            let g = settings["gmf_dim"].flatMap({ Int($0) }), let m = settings["mlp_dim"].flatMap({ Int($0) }),
            let text = settings["layers"]
        else { throw FedRecError(.corrupt, file: file, "an ncf model needs settings variant, gmf_dim, mlp_dim and layers") }
        let parts = text.split(separator: ",").map { Int($0) }
        guard parts.allSatisfy({ $0 != nil }) else { throw FedRecError(.corrupt, file: file, "setting layers \(text) is not a list of integers") }
        do {
            try self.init(variant: variant, gmfDim: g, mlpDim: m, layers: parts.compactMap { $0 })
        } catch let error as FedRecError {
            throw FedRecError(.corrupt, file: file, error.message)
        }
    }

    /// Scratch space of the forward and backward passes of up to `capacity` examples at a
    /// time, reused for every batch: the tower's inputs and their errors, then each layer's
    /// pre-activations, activations and errors (`capacity` rows of each), then the tower's
    /// weights transposed (for the forward pass's matrix products).
    public struct Workspace: Sendable {
        /// Examples one pass holds.
        public let capacity: Int
        /// The values.
        public var buffer: [Float]
        /// Where layer l's pre-activations start (its activations and errors follow).
        let layerStart: [Int]
        /// Where layer l's weights, transposed (input width × layer width), start.
        let transposedStart: [Int]

        public init(_ network: NCFNetwork, capacity: Int = 1) {
            let rows = max(capacity, 1)
            var offset = 4 * network.mlpDim * rows
            var layerStart: [Int] = [], transposedStart: [Int] = []
            for width in network.layers {
                layerStart.append(offset)
                offset += 3 * width * rows
            }
            var input = 2 * network.mlpDim
            for width in network.layers {
                transposedStart.append(offset)
                offset += width * input
                input = width
            }
            self.capacity = rows
            self.layerStart = layerStart
            self.transposedStart = transposedStart
            buffer = [Float](repeating: 0, count: offset)
        }
    }

    /// Tower layer l's weights transposed into `out` (input width × layer width: input k's
    /// weights to every unit are contiguous).
    func transposeWeights(_ l: Int, dense: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let width = layers[l], inputWidth = l == 0 ? 2 * mlpDim : layers[l - 1]
        let weights = dense + weightOffset[l]
        for j in 0..<width {
            for k in 0..<inputWidth { out[k * width + j] = weights[j * inputWidth + k] }
        }
    }

    /// The model's output z for one user and one item (a logit under BCE, the rating
    /// under MSE), with the activations kept in `ws` for `backward`.
    /// - Parameters: `user`, `item`: `userWidth` values each; `dense`: `denseCount`.
    public func forward(user: UnsafePointer<Float>, item: UnsafePointer<Float>, dense: UnsafePointer<Float>, ws: inout Workspace) -> Float {
        var userRow = 0, itemRow = 0, z: Float = 0
        forward(count: 1, users: user, userRows: &userRow, items: item, itemRows: &itemRow, dense: dense, z: &z, ws: &ws)
        return z
    }

    /// Adds δ · ∂z/∂θ (δ = ∂loss/∂z of the last `forward`) to the user's, the item's and
    /// the dense gradients; `ws` must hold that forward pass.
    public func backward(_ delta: Float, user: UnsafePointer<Float>, item: UnsafePointer<Float>, dense: UnsafePointer<Float>,
                         gradUser: UnsafeMutablePointer<Float>, gradItem: UnsafeMutablePointer<Float>,
                         gradDense: UnsafeMutablePointer<Float>, ws: inout Workspace) {
        var userRow = 0, itemRow = 0, delta = delta
        backward(count: 1, deltas: &delta, users: user, userRows: &userRow, items: item, itemRows: &itemRow, dense: dense,
                 gradUsers: gradUser, gradItems: gradItem, gradDense: gradDense, ws: &ws)
    }

    /// The outputs of `count` (≤ `ws.capacity`) examples at once, example e pairing the user
    /// row `users + userRows[e] · userWidth` with the item row `items + itemRows[e] ·
    /// userWidth`: `z[e]` as the one-example `forward` computes it, every sum in the same
    /// order (each tower layer one matrix product over the examples), the activations kept
    /// in `ws` for `backward(count:…)`.
    public func forward(count: Int, users: UnsafePointer<Float>, userRows: UnsafePointer<Int>, items: UnsafePointer<Float>,
                        itemRows: UnsafePointer<Int>, dense: UnsafePointer<Float>, z: UnsafeMutablePointer<Float>, ws: inout Workspace) {
        precondition(count <= ws.capacity)
        let g = gmfDim, m = mlpDim, w = userWidth
        let h = dense + outOffset
        for e in 0..<count {
            let user = users + userRows[e] * w, item = items + itemRows[e] * w
            var s = dense[outBiasOffset]
            for k in 0..<g { s += h[k] * user[k] * item[k] }
            z[e] = s
        }
        guard m > 0 else { return }
        let rows = ws.capacity, layerStart = ws.layerStart, transposedStart = ws.transposedStart
        ws.buffer.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            for e in 0..<count {
                let user = users + userRows[e] * w + g, item = items + itemRows[e] * w + g
                let x = base + e * 2 * m
                for k in 0..<m {
                    x[k] = user[k]
                    x[m + k] = item[k]
                }
            }
            var x = UnsafePointer(base)
            var inputWidth = 2 * m
            for l in 0..<layers.count {
                let width = layers[l]
                let transposed = base + transposedStart[l]
                transposeWeights(l, dense: dense, into: transposed)
                let bias = dense + biasOffset[l]
                let pre = base + layerStart[l], act = pre + rows * width
                for e in 0..<count {
                    let p = pre + e * width, a = act + e * width
                    p.update(from: bias, count: width)
                    VectorKernels.addScaledRows(p, n: width, rows: transposed, rowStride: width, scales: x + e * inputWidth, scaleStride: 1,
                                                count: inputWidth)
                    for j in 0..<width { a[j] = max(p[j], 0) }
                }
                x = UnsafePointer(act)
                inputWidth = width
            }
            for e in 0..<count {
                var s = z[e]
                let a = x + e * inputWidth
                for k in 0..<inputWidth { s += h[g + k] * a[k] }
                z[e] = s
            }
        }
    }

    /// Adds Σ_e δ_e · ∂z_e/∂θ over the `count` examples of the last `forward(count:…)` (held
    /// in `ws`, with the same rows) to the user rows of `gradUsers`, the item rows of
    /// `gradItems` and `gradDense` (laid out as `users`, `items` and `dense`), every sum
    /// taken example by example in order, as `count` one-example `backward`s would; nil
    /// `gradItems` or `gradDense` skips those gradients (a frozen model).
    public func backward(count: Int, deltas: UnsafePointer<Float>, users: UnsafePointer<Float>, userRows: UnsafePointer<Int>,
                         items: UnsafePointer<Float>, itemRows: UnsafePointer<Int>, dense: UnsafePointer<Float>,
                         gradUsers: UnsafeMutablePointer<Float>, gradItems: UnsafeMutablePointer<Float>?,
                         gradDense: UnsafeMutablePointer<Float>?, ws: inout Workspace) {
        precondition(count <= ws.capacity)
        let g = gmfDim, m = mlpDim, w = userWidth
        let h = dense + outOffset
        for e in 0..<count {
            let delta = deltas[e]
            let user = users + userRows[e] * w, item = items + itemRows[e] * w
            if let gradDense {
                gradDense[outBiasOffset] += delta
                let gh = gradDense + outOffset
                for k in 0..<g { gh[k] += delta * user[k] * item[k] }
            }
            let gradUser = gradUsers + userRows[e] * w
            for k in 0..<g { gradUser[k] += delta * h[k] * item[k] }
            if let gradItems {
                let gradItem = gradItems + itemRows[e] * w
                for k in 0..<g { gradItem[k] += delta * h[k] * user[k] }
            }
        }
        guard m > 0 else { return }
        let rows = ws.capacity, layerStart = ws.layerStart
        ws.buffer.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            let top = layers.count - 1
            do {
                let width = layers[top]
                let pre = base + layerStart[top], act = pre + rows * width, err = act + rows * width
                for e in 0..<count {
                    let delta = deltas[e], r = e * width
                    if let gradDense {
                        let gh = gradDense + outOffset + g
                        for j in 0..<width { gh[j] += delta * act[r + j] }
                    }
                    for j in 0..<width { err[r + j] = pre[r + j] > 0 ? delta * h[g + j] : 0 }
                }
            }
            for l in stride(from: top, through: 0, by: -1) {
                let width = layers[l]
                let err = UnsafePointer(base + layerStart[l] + 2 * rows * width)
                let inputWidth = l == 0 ? 2 * m : layers[l - 1]
                let x = UnsafePointer(l == 0 ? base : base + layerStart[l - 1] + rows * inputWidth)
                let below = l == 0 ? base + rows * 2 * m : base + layerStart[l - 1] + 2 * rows * inputWidth
                if let gradDense {
                    let gw = gradDense + weightOffset[l]
                    // Σ_e err[e, j] (times 1, exactly), then Σ_e err[e, j] x[e, :] row by row.
                    var one: Float = 1
                    VectorKernels.addScaledRows(gradDense + biasOffset[l], n: width, rows: err, rowStride: width, scales: &one, scaleStride: 0,
                                                count: count)
                    for j in 0..<width {
                        VectorKernels.addScaledRows(gw + j * inputWidth, n: inputWidth, rows: x, rowStride: inputWidth, scales: err + j,
                                                    scaleStride: width, count: count)
                    }
                }
                let weights = dense + weightOffset[l]
                for e in 0..<count {
                    let b = below + e * inputWidth
                    b.update(repeating: 0, count: inputWidth)
                    VectorKernels.addScaledRows(b, n: inputWidth, rows: weights, rowStride: inputWidth, scales: err + e * width, scaleStride: 1,
                                                count: width)
                }
                if l > 0 {
                    // Through the ReLU of the layer below.
                    VectorKernels.zeroWhereNotPositive(below, UnsafePointer(base + layerStart[l - 1]), n: count * inputWidth)
                }
            }
            let inputError = UnsafePointer(base + rows * 2 * m)
            for e in 0..<count {
                let err = inputError + e * 2 * m
                let gradUser = gradUsers + userRows[e] * w + g
                for k in 0..<m { gradUser[k] += err[k] }
                if let gradItems {
                    let gradItem = gradItems + itemRows[e] * w + g
                    for k in 0..<m { gradItem[k] += err[m + k] }
                }
            }
        }
    }
}

/// An NCF checkpoint's parameters in the layout training and scoring use: item rows
/// (`userWidth` wide: GMF then MLP part) and the dense vector. Read from and written as a
/// `TensorModel` (`model_type` ncf).
public struct NCFModel: Sendable {
    public var config: ModelConfig
    public var network: NCFNetwork
    public var round: Int
    /// items × userWidth.
    public var itemRows: [Float]
    /// `network.denseCount` values.
    public var dense: [Float]
    /// Metadata carried forward (rating scale, client settings, server optimiser).
    public var notes: [String: String] = [:]
    /// Server optimiser moments, as `TensorModel.serverState`.
    public var serverState: [String: [Float]] = [:]

    public init(config: ModelConfig, network: NCFNetwork, round: Int = 0, itemRows: [Float], dense: [Float]) {
        precondition(config.family == .ncf && config.dim == network.userWidth)
        precondition(itemRows.count == config.items * network.userWidth && dense.count == network.denseCount)
        self.config = config
        self.network = network
        self.round = round
        self.itemRows = itemRows
        self.dense = dense
    }

    /// The parameters of an ncf `TensorModel`, every tensor checked against the settings.
    /// - Throws: `.shape` naming `file` for a model of another family or a tensor shaped
    ///   otherwise; `.corrupt` for settings that describe no network.
    public init(_ model: TensorModel, file: String) throws {
        try model.config.requireFamily(.ncf, file: file)
        let network = try NCFNetwork(settings: model.settings, file: file)
        guard model.config.dim == network.userWidth else {
            throw FedRecError(.shape, file: file, "records dim \(model.config.dim), its network's user vector has \(network.userWidth) values")
        }
        let rowNames = Set(network.rowLayout.map(\.name))
        let expected = rowNames.union(network.denseLayout.map(\.name))
        guard Set(model.tensors.keys) == expected, model.rowTensorNames == rowNames else {
            throw FedRecError(.shape, file: file, "holds tensors \(model.tensors.keys.sorted()) (rows \(model.rowTensorNames.sorted())), an ncf \(network.variant.rawValue) model holds \(expected.sorted()) (rows \(rowNames.sorted()))")
        }
        let n = model.config.items, width = network.userWidth
        var rows = [Float](repeating: 0, count: n * width)
        var offset = 0
        for (name, w) in network.rowLayout {
            let values = try model.tensor(name, shape: [n, w], file: file)
            for i in 0..<n { for k in 0..<w { rows[i * width + offset + k] = values[i * w + k] } }
            offset += w
        }
        var dense = [Float](repeating: 0, count: network.denseCount)
        for entry in network.denseLayout {
            let values = try model.tensor(entry.name, shape: entry.shape, file: file)
            for (k, value) in values.enumerated() { dense[entry.offset + k] = value }
        }
        guard rows.allSatisfy({ $0.isFinite }), dense.allSatisfy({ $0.isFinite }) else {
            throw FedRecError(.badData, file: file, "holds parameters that are not finite")
        }
        self.init(config: model.config, network: network, round: model.round, itemRows: rows, dense: dense)
        notes = model.notes
        serverState = model.serverState
    }

    /// Reads and verifies an ncf checkpoint.
    public static func open(_ path: String) throws -> (model: NCFModel, identity: String) {
        let (tensor, identity) = try TensorModel.open(path, family: .ncf)
        return (try NCFModel(tensor, file: path), identity)
    }

    /// The checkpoint as named tensors.
    public var tensorModel: TensorModel {
        let n = config.items, width = network.userWidth
        var tensors: [String: Tensor] = [:]
        var offset = 0
        for (name, w) in network.rowLayout {
            var values = [Float](repeating: 0, count: n * w)
            for i in 0..<n { for k in 0..<w { values[i * w + k] = itemRows[i * width + offset + k] } }
            tensors[name] = Tensor(shape: [n, w], values: values)
            offset += w
        }
        for entry in network.denseLayout {
            let count = entry.shape.reduce(1, *)
            tensors[entry.name] = Tensor(shape: entry.shape, values: Array(dense[entry.offset..<(entry.offset + count)]))
        }
        var model = TensorModel(config: config, round: round, tensors: tensors, rowTensorNames: Set(network.rowLayout.map(\.name)),
                                settings: network.settings)
        model.notes = notes
        model.serverState = serverState
        return model
    }

    /// Writes the checkpoint; returns its identity.
    @discardableResult
    public func write(to path: String) throws -> String { try tensorModel.write(to: path) }

    /// A fresh model: embeddings N(0, scale²) (the paper initialises them N(0, 0.01²)),
    /// tower weights uniform in ±√(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), biases
    /// zero, `out.b` at `outputBias` (the middle of the rating scale under MSE), all from
    /// `seed`.
    public static func initial(config: ModelConfig, network: NCFNetwork, scale: Float, seed: UInt64, outputBias: Float) -> NCFModel {
        var generator = SeededGenerator(seed: seed, stream: 0x0C_F1)
        let rows = (0..<(config.items * network.userWidth)).map { _ in Float(generator.nextGaussian()) * scale }
        var dense = [Float](repeating: 0, count: network.denseCount)
        for entry in network.denseLayout where entry.shape.count == 2 || entry.name == NCFNetwork.outWeight {
            let fanIn = entry.shape.count == 2 ? entry.shape[1] : entry.shape[0]
            let fanOut = entry.shape.count == 2 ? entry.shape[0] : 1
            let limit = (6 / Float(fanIn + fanOut)).squareRoot()
            for k in 0..<entry.shape.reduce(1, *) { dense[entry.offset + k] = (2 * generator.nextUnitFloat() - 1) * limit }
        }
        dense[network.outBiasOffset] = outputBias
        return NCFModel(config: config, network: network, itemRows: rows, dense: dense)
    }

    /// NeuMF initialised from a trained GMF and a trained MLP (He et al. 2017, §3.4.1):
    /// their item embeddings and tower as they are, and the prediction layer
    /// h ← [α h_GMF; (1 − α) h_MLP], b ← α b_GMF + (1 − α) b_MLP.
    /// - Throws: `.mismatch` when the two were trained on other datasets or objectives;
    ///   `.usage` when they are not a GMF and an MLP, or α is outside [0, 1].
    public static func pretrained(gmf: NCFModel, gmfFile: String, mlp: NCFModel, mlpFile: String, alpha: Float) throws -> NCFModel {
        guard gmf.network.variant == .gmf else { throw FedRecError(.usage, file: gmfFile, "is an ncf \(gmf.network.variant.rawValue) model, --pretrain-gmf takes a gmf one") }
        guard mlp.network.variant == .mlp else { throw FedRecError(.usage, file: mlpFile, "is an ncf \(mlp.network.variant.rawValue) model, --pretrain-mlp takes an mlp one") }
        guard alpha >= 0 && alpha <= 1 else { throw FedRecError(.usage, "--pretrain-alpha must be in [0, 1]") }
        guard gmf.config.datasetId == mlp.config.datasetId, gmf.config.items == mlp.config.items else {
            throw FedRecError(.mismatch, file: mlpFile, "belongs to another dataset than \(gmfFile)")
        }
        guard gmf.config.objective == mlp.config.objective else {
            throw FedRecError(.mismatch, file: mlpFile, "was trained for \(mlp.config.objective.rawValue), \(gmfFile) for \(gmf.config.objective.rawValue)")
        }
        let network = try NCFNetwork(variant: .neumf, gmfDim: gmf.network.gmfDim, mlpDim: mlp.network.mlpDim, layers: mlp.network.layers)
        var config = gmf.config
        config.dim = network.userWidth
        let n = config.items, g = network.gmfDim, m = network.mlpDim
        var rows = [Float](repeating: 0, count: n * (g + m))
        for i in 0..<n {
            for k in 0..<g { rows[i * (g + m) + k] = gmf.itemRows[i * g + k] }
            for k in 0..<m { rows[i * (g + m) + g + k] = mlp.itemRows[i * m + k] }
        }
        var dense = [Float](repeating: 0, count: network.denseCount)
        // The tower's tensors come first in both layouts, in the same order.
        let tower = mlp.network.outOffset
        for k in 0..<tower { dense[k] = mlp.dense[k] }
        for k in 0..<g { dense[network.outOffset + k] = alpha * gmf.dense[gmf.network.outOffset + k] }
        for k in 0..<network.layers[network.layers.count - 1] {
            dense[network.outOffset + g + k] = (1 - alpha) * mlp.dense[mlp.network.outOffset + k]
        }
        dense[network.outBiasOffset] = alpha * gmf.dense[gmf.network.outBiasOffset] + (1 - alpha) * mlp.dense[mlp.network.outBiasOffset]
        var model = NCFModel(config: config, network: network, itemRows: rows, dense: dense)
        model.notes = gmf.notes.filter { $0.key == "rating_min" || $0.key == "rating_max" }
        model.notes["pretrained_from"] = "\(gmf.round),\(mlp.round)"
        return model
    }

    /// Item `i`'s row (GMF then MLP part).
    public func itemRow(_ i: Int) -> ArraySlice<Float> {
        itemRows[(i * network.userWidth)..<((i + 1) * network.userWidth)]
    }
}

/// Scores every item for one user at a time (evaluation, recommendation): the first
/// tower layer's item half W₀[:, m..<2m] q_i is computed once for the catalogue, so a
/// user costs W₀'s user half once and the layers above it for each item, each layer a
/// product with its transposed weights (the sums in the order `NCFNetwork.forward` takes).
public final class NCFScorer {
    let model: NCFModel
    let network: NCFNetwork
    /// items × h₀ (empty for GMF).
    private var itemFirstLayer: [Float]
    /// The tower's weights transposed, layer after layer (input width × layer width).
    private var transposed: [Float]
    private var transposedStart: [Int]
    /// h₀ values: W₀'s user half times the user, plus b₀.
    private var userFirstLayer: [Float]
    /// gmfDim values: h_k · p_k, the GMF part's weights for the user.
    private var userGMF: [Float]
    private var scratch: [Float]

    public init(model: NCFModel) {
        self.model = model
        network = model.network
        let n = model.config.items, m = network.mlpDim, g = network.gmfDim, w = network.userWidth
        let h0 = network.layers.first ?? 0
        var starts: [Int] = [], offset = 0, input = 2 * m
        for width in network.layers {
            starts.append(offset)
            offset += input * width
            input = width
        }
        var transposed = [Float](repeating: 0, count: offset)
        var table = [Float](repeating: 0, count: m > 0 ? n * h0 : 0)
        let network = self.network
        model.dense.withUnsafeBufferPointer { dense in
        model.itemRows.withUnsafeBufferPointer { rows in
        transposed.withUnsafeMutableBufferPointer { t in
        table.withUnsafeMutableBufferPointer { table in
            for l in network.layers.indices { network.transposeWeights(l, dense: dense.baseAddress!, into: t.baseAddress! + starts[l]) }
            guard m > 0 else { return }
            // Item i's half: Σ_k W₀[j, m + k] q_i[g + k], rows m..<2m of W₀ transposed.
            for i in 0..<n {
                VectorKernels.addScaledRows(table.baseAddress! + i * h0, n: h0, rows: t.baseAddress! + m * h0, rowStride: h0,
                                            scales: rows.baseAddress! + i * w + g, scaleStride: 1, count: m)
            }
        }}}}
        itemFirstLayer = table
        self.transposed = transposed
        transposedStart = starts
        userFirstLayer = [Float](repeating: 0, count: h0)
        userGMF = [Float](repeating: 0, count: g)
        scratch = [Float](repeating: 0, count: 2 * (network.layers.max() ?? 0))
    }

    /// `scores[i]` = the model's output for `user` (userWidth values) and item i.
    public func score(user: [Float], into scores: inout [Float]) {
        let n = model.config.items, m = network.mlpDim, g = network.gmfDim, w = network.userWidth
        precondition(user.count == w && scores.count == n)
        let network = self.network, starts = transposedStart
        let h0 = network.layers.first ?? 0
        model.dense.withUnsafeBufferPointer { dense in
        model.itemRows.withUnsafeBufferPointer { rows in
        itemFirstLayer.withUnsafeBufferPointer { table in
        transposed.withUnsafeBufferPointer { t in
        userFirstLayer.withUnsafeMutableBufferPointer { c in
        userGMF.withUnsafeMutableBufferPointer { hu in
        scratch.withUnsafeMutableBufferPointer { buffer in
        user.withUnsafeBufferPointer { u in
        scores.withUnsafeMutableBufferPointer { out in
            let d = dense.baseAddress!
            let h = d + network.outOffset
            // (h_k p_k) q_k, as the forward pass multiplies.
            for k in 0..<g { hu[k] = h[k] * u[k] }
            if m > 0 {
                c.baseAddress!.update(from: d + network.biasOffset[0], count: h0)
                VectorKernels.addScaledRows(c.baseAddress!, n: h0, rows: t.baseAddress!, rowStride: h0, scales: u.baseAddress! + g,
                                            scaleStride: 1, count: m)
            }
            let maxWidth = buffer.count / 2
            for i in 0..<n {
                var z = d[network.outBiasOffset]
                let row = rows.baseAddress! + i * w
                for k in 0..<g { z += hu[k] * row[k] }
                if m > 0 {
                    var x = buffer.baseAddress!, y = buffer.baseAddress! + maxWidth
                    let item = table.baseAddress! + i * h0
                    for j in 0..<h0 { x[j] = max(c[j] + item[j], 0) }
                    var inputWidth = h0
                    for l in 1..<max(network.layers.count, 1) {
                        let width = network.layers[l]
                        y.update(from: d + network.biasOffset[l], count: width)
                        VectorKernels.addScaledRows(y, n: width, rows: t.baseAddress! + starts[l], rowStride: width, scales: x, scaleStride: 1,
                                                    count: inputWidth)
                        for j in 0..<width { y[j] = max(y[j], 0) }
                        swap(&x, &y)
                        inputWidth = width
                    }
                    for k in 0..<inputWidth { z += h[g + k] * x[k] }
                }
                out[i] = z
            }
        }}}}}}}}}
    }
}

extension NCFModel {
    /// What `fl-init --json` reports of this model written at `path` with `identity`.
    public func summary(path: String, identity: String) -> JSONValue {
        .object(["model": .string(path), "identity": .string(identity), "round": .number(Double(round)),
                 "items": .number(Double(config.items)), "dim": .number(Double(config.dim)),
                 "objective": .string(config.objective.rawValue), "model_type": .string(config.modelType),
                 "variant": .string(network.variant.rawValue), "parameters": .number(Double(itemRows.count + dense.count))])
    }
}
