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

    /// Scratch space of one forward and backward pass, reused for every example: the
    /// tower's input and its error, then each layer's pre-activation, activation and error.
    public struct Workspace: Sendable {
        /// The values (hot loops hold them open and pass the raw pointer).
        public var buffer: [Float]
        public init(_ network: NCFNetwork) {
            buffer = [Float](repeating: 0, count: 4 * network.mlpDim + 3 * network.layers.reduce(0, +))
        }
    }

    /// Where layer l's pre-activation starts in the workspace (act and error follow).
    @inline(__always)
    func layerStart(_ l: Int) -> Int {
        var offset = 4 * mlpDim
        for j in 0..<l { offset += 3 * layers[j] }
        return offset
    }

    /// The model's output z for one user and one item (a logit under BCE, the rating
    /// under MSE), with the activations kept in `ws` for `backward`.
    /// - Parameters: `user`, `item`: `userWidth` values each; `dense`: `denseCount`.
    public func forward(user: UnsafePointer<Float>, item: UnsafePointer<Float>, dense: UnsafePointer<Float>, ws: inout Workspace) -> Float {
        ws.buffer.withUnsafeMutableBufferPointer { forward(user: user, item: item, dense: dense, ws: $0.baseAddress!) }
    }

    /// `forward` on a workspace's raw buffer (hot loops hold it open).
    @inline(__always)
    public func forward(user: UnsafePointer<Float>, item: UnsafePointer<Float>, dense: UnsafePointer<Float>, ws: UnsafeMutablePointer<Float>) -> Float {
        let g = gmfDim, m = mlpDim
        var z = dense[outBiasOffset]
        let h = dense + outOffset
        for k in 0..<g { z += h[k] * user[k] * item[k] }
        guard m > 0 else { return z }
        for k in 0..<m {
            ws[k] = user[g + k]
            ws[m + k] = item[g + k]
        }
        var x = UnsafePointer(ws)
        var inputWidth = 2 * m
        var offset = 4 * m
        for l in 0..<layers.count {
            let width = layers[l]
            let w = dense + weightOffset[l], b = dense + biasOffset[l]
            let pre = ws + offset, act = ws + offset + width
            for j in 0..<width {
                var s = b[j]
                let row = w + j * inputWidth
                for k in 0..<inputWidth { s += row[k] * x[k] }
                pre[j] = s
                act[j] = max(s, 0)
            }
            x = UnsafePointer(act)
            inputWidth = width
            offset += 3 * width
        }
        for k in 0..<inputWidth { z += h[g + k] * x[k] }
        return z
    }

    /// Adds δ · ∂z/∂θ (δ = ∂loss/∂z of the last `forward`) to the user's, the item's and
    /// the dense gradients; `ws` must hold that forward pass.
    public func backward(_ delta: Float, user: UnsafePointer<Float>, item: UnsafePointer<Float>, dense: UnsafePointer<Float>,
                         gradUser: UnsafeMutablePointer<Float>, gradItem: UnsafeMutablePointer<Float>,
                         gradDense: UnsafeMutablePointer<Float>, ws: inout Workspace) {
        ws.buffer.withUnsafeMutableBufferPointer {
            backward(delta, user: user, item: item, dense: dense, gradUser: gradUser, gradItem: gradItem, gradDense: gradDense, ws: $0.baseAddress!)
        }
    }

    /// `backward` on a workspace's raw buffer.
    @inline(__always)
    public func backward(_ delta: Float, user: UnsafePointer<Float>, item: UnsafePointer<Float>, dense: UnsafePointer<Float>,
                         gradUser: UnsafeMutablePointer<Float>, gradItem: UnsafeMutablePointer<Float>,
                         gradDense: UnsafeMutablePointer<Float>, ws: UnsafeMutablePointer<Float>) {
        let g = gmfDim, m = mlpDim
        let h = dense + outOffset, gh = gradDense + outOffset
        gradDense[outBiasOffset] += delta
        for k in 0..<g {
            gh[k] += delta * user[k] * item[k]
            gradUser[k] += delta * h[k] * item[k]
            gradItem[k] += delta * h[k] * user[k]
        }
        guard m > 0 else { return }
        let top = layers.count - 1
        do {
            let start = layerStart(top), width = layers[top]
            let pre = ws + start, act = pre + width, err = act + width
            for j in 0..<width {
                gh[g + j] += delta * act[j]
                err[j] = pre[j] > 0 ? delta * h[g + j] : 0
            }
        }
        for l in stride(from: top, through: 0, by: -1) {
            let width = layers[l]
            let start = layerStart(l)
            let err = ws + start + 2 * width
            let inputWidth = l == 0 ? 2 * m : layers[l - 1]
            let below: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>
            if l == 0 {
                x = UnsafePointer(ws)
                below = ws + 2 * m
            } else {
                let s = layerStart(l - 1)
                x = UnsafePointer(ws + s + layers[l - 1])
                below = ws + s + 2 * layers[l - 1]
            }
            for k in 0..<inputWidth { below[k] = 0 }
            let w = dense + weightOffset[l]
            let gw = gradDense + weightOffset[l], gb = gradDense + biasOffset[l]
            for j in 0..<width where err[j] != 0 {
                let ej = err[j]
                gb[j] += ej
                let row = w + j * inputWidth, grow = gw + j * inputWidth
                for k in 0..<inputWidth {
                    grow[k] += ej * x[k]
                    below[k] += ej * row[k]
                }
            }
            if l > 0 {
                // Through the ReLU of the layer below.
                let pre = ws + layerStart(l - 1)
                for k in 0..<inputWidth where pre[k] <= 0 { below[k] = 0 }
            }
        }
        let inputError = ws + 2 * m
        for k in 0..<m {
            gradUser[g + k] += inputError[k]
            gradItem[g + k] += inputError[m + k]
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
/// user costs W₀'s user half once and the layers above it for each item.
public final class NCFScorer {
    let model: NCFModel
    let network: NCFNetwork
    /// items × h₀ (empty for GMF).
    private var itemFirstLayer: [Float]
    private var userFirstLayer: [Float]
    private var scratch: [Float]

    public init(model: NCFModel) {
        self.model = model
        network = model.network
        let n = model.config.items, m = network.mlpDim, g = network.gmfDim, w = network.userWidth
        let h0 = network.layers.first ?? 0
        var table = [Float](repeating: 0, count: m > 0 ? n * h0 : 0)
        if m > 0 {
            let w0 = network.weightOffset[0]
            for i in 0..<n {
                for j in 0..<h0 {
                    var s: Float = 0
                    for k in 0..<m { s += model.dense[w0 + j * 2 * m + m + k] * model.itemRows[i * w + g + k] }
                    table[i * h0 + j] = s
                }
            }
        }
        itemFirstLayer = table
        userFirstLayer = [Float](repeating: 0, count: h0)
        scratch = [Float](repeating: 0, count: 2 * (network.layers.max() ?? 0))
    }

    /// `scores[i]` = the model's output for `user` (userWidth values) and item i.
    public func score(user: [Float], into scores: inout [Float]) {
        let n = model.config.items, m = network.mlpDim, g = network.gmfDim, w = network.userWidth
        precondition(user.count == w && scores.count == n)
        let network = self.network
        if m > 0 {
            let w0 = network.weightOffset[0], b0 = network.biasOffset[0]
            for j in 0..<network.layers[0] {
                var s = model.dense[b0 + j]
                for k in 0..<m { s += model.dense[w0 + j * 2 * m + k] * user[g + k] }
                userFirstLayer[j] = s
            }
        }
        let h0 = network.layers.first ?? 0
        model.dense.withUnsafeBufferPointer { dense in
        model.itemRows.withUnsafeBufferPointer { rows in
        itemFirstLayer.withUnsafeBufferPointer { table in
        userFirstLayer.withUnsafeBufferPointer { c in
        scratch.withUnsafeMutableBufferPointer { buffer in
        user.withUnsafeBufferPointer { u in
        scores.withUnsafeMutableBufferPointer { out in
            let d = dense.baseAddress!
            let h = d + network.outOffset
            let maxWidth = buffer.count / 2
            for i in 0..<n {
                var z = d[network.outBiasOffset]
                let row = rows.baseAddress! + i * w
                for k in 0..<g { z += h[k] * u[k] * row[k] }
                if m > 0 {
                    var x = buffer.baseAddress!, y = buffer.baseAddress! + maxWidth
                    for j in 0..<h0 { x[j] = max(c[j] + table[i * h0 + j], 0) }
                    var inputWidth = h0
                    for l in 1..<max(network.layers.count, 1) {
                        let width = network.layers[l]
                        let wl = d + network.weightOffset[l], bl = d + network.biasOffset[l]
                        for j in 0..<width {
                            var s = bl[j]
                            let wr = wl + j * inputWidth
                            for k in 0..<inputWidth { s += wr[k] * x[k] }
                            y[j] = max(s, 0)
                        }
                        swap(&x, &y)
                        inputWidth = width
                    }
                    for k in 0..<inputWidth { z += h[g + k] * x[k] }
                }
                out[i] = z
            }
        }}}}}}}
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
