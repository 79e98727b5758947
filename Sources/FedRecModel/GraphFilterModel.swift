import FedRecFormats
import FedRecSupport

/// A graph-filter recommender (GF-CF: Shen et al., "How Powerful is Graph Convolution for
/// Recommendation?", CIKM 2021, eq. 13), stored as a `TensorModel` of family `gfcf`.
///
/// With R the users × items interactions, D_U and D_I the user and item degrees, and
/// R̃ = D_U^{-1/2} R D_I^{-1/2}, the item–item matrix P̃ = R̃ᵀR̃ is a low-pass filter of
/// the item graph; a user u with interactions r_u is scored
///
///     s_u = r_u P̃ + α · r_u D_I^{-1/2} V Vᵀ D_I^{1/2},
///
/// the linear filter plus α times the ideal low-pass filter, V the top-k eigenvectors of
/// P̃ (the top right singular vectors of R̃). P̃ = D_I^{-1/2} C D_I^{-1/2} with
/// C = Σ_u r_u r_uᵀ / d_u: a sum over users of what each user alone can compute, so
/// clients send their share of C and of the item degrees (an `ItemPairSum`), the server
/// adds them and fits the model, and each client scores its own items against it. Nothing
/// is learnt by gradient steps: one round fits the model, and later rounds on the same data
/// fit the same one.
///
/// Tensors: `item_degree` [items]; `pair_value` [nnz], P̃'s entries, both triangles, CSR
/// rows `index.pair_offset` [items + 1] and columns `index.pair_item` [nnz];
/// `eigenvectors` [items, k] and `eigenvalues` [k], descending. A fresh model (round 0)
/// has no entries and zero vectors. Settings: `filter_weight` (α), `oversampling`,
/// `power_iterations` and `seed` of the eigen solver.
public struct GraphFilterModel: Sendable {
    public var config: ModelConfig
    public var round: Int
    /// d_i: the users who interacted with item i.
    public var itemDegree: [Float]
    /// P̃, both triangles.
    public var filter: SparseSymmetricMatrix
    /// V, items × k row-major, and its eigenvalues, descending.
    public var eigenvectors: [Float]
    public var eigenvalues: [Float]
    public var settings: GraphFilterSettings
    /// Metadata carried forward.
    public var notes: [String: String] = [:]

    /// k, the eigenvectors the model holds (`config.dim`).
    public var eigenvectorCount: Int { config.dim }

    public static let degreeName = "item_degree"
    public static let valueName = "pair_value"
    public static let offsetName = "pair_offset"
    public static let itemName = "pair_item"
    public static let vectorsName = "eigenvectors"
    public static let eigenvaluesName = "eigenvalues"

    public init(config: ModelConfig, round: Int, itemDegree: [Float], filter: SparseSymmetricMatrix, eigenvectors: [Float],
                eigenvalues: [Float], settings: GraphFilterSettings) {
        precondition(config.family == .gfcf && itemDegree.count == config.items && filter.size == config.items, "a gfcf model's tables fit its items")
        precondition(eigenvectors.count == config.items * config.dim && eigenvalues.count == config.dim, "k eigenvectors of items values")
        self.config = config
        self.round = round
        self.itemDegree = itemDegree
        self.filter = filter
        self.eigenvectors = eigenvectors
        self.eigenvalues = eigenvalues
        self.settings = settings
    }

    /// A fresh model for a dataset of `items` items: no interactions summed yet.
    public static func initial(datasetId: String, items: Int, eigenvectors k: Int, settings: GraphFilterSettings) -> GraphFilterModel {
        let k = max(1, min(k, items))
        let config = ModelConfig(family: .gfcf, objective: .filter, dim: k, items: items, datasetId: datasetId)
        return GraphFilterModel(
            config: config, round: 0, itemDegree: [Float](repeating: 0, count: items),
            filter: SparseSymmetricMatrix(size: items, offsets: [Int](repeating: 0, count: items + 1), columns: [], values: []),
            eigenvectors: [Float](repeating: 0, count: items * k), eigenvalues: [Float](repeating: 0, count: k), settings: settings)
    }

    /// Writes the checkpoint (as a `TensorModel`, checksummed).
    /// - Throws: `.shape` when P̃ has more entries than an I32 index can address.
    @discardableResult
    public func write(to path: String) throws -> String {
        guard filter.nonzeros <= Int(Int32.max) else {
            throw FedRecError(.shape, file: path, "the item–item filter has \(filter.nonzeros) entries, more than a checkpoint's I32 offsets address")
        }
        let n = config.items, k = config.dim
        var model = TensorModel(
            config: config, round: round,
            tensors: [
                Self.degreeName: Tensor(shape: [n], values: itemDegree),
                Self.valueName: Tensor(shape: [filter.nonzeros], values: filter.values),
                Self.vectorsName: Tensor(shape: [n, k], values: eigenvectors),
                Self.eigenvaluesName: Tensor(shape: [k], values: eigenvalues),
            ],
            rowTensorNames: [Self.degreeName, Self.vectorsName], settings: settings.metadata)
        model.notes = notes
        model.indexTables = [Self.offsetName: filter.offsets.map { Int32($0) }, Self.itemName: filter.columns]
        return try model.write(to: path)
    }

    /// Reads and checks a gfcf checkpoint: CSR offsets ascending from 0 to the entries,
    /// columns strictly ascending within a row and below the items, the shapes those of
    /// `config`.
    public static func open(_ path: String) throws -> (model: GraphFilterModel, identity: String) {
        let (tensors, identity) = try TensorModel.open(path, family: .gfcf)
        let config = tensors.config, n = config.items, k = config.dim
        let degree = try tensors.tensor(degreeName, shape: [n], file: path)
        let vectors = try tensors.tensor(vectorsName, shape: [n, k], file: path)
        let values = try tensors.tensor(eigenvaluesName, shape: [k], file: path)
        guard let offsets32 = tensors.indexTables[offsetName], let columns = tensors.indexTables[itemName], let entries = tensors.tensors[valueName]?.values else {
            throw FedRecError(.shape, file: path, "a gfcf model needs \(valueName), index.\(offsetName) and index.\(itemName)")
        }
        guard columns.count == entries.count else {
            throw FedRecError(.corrupt, file: path, "index.\(itemName) has \(columns.count) entries, \(valueName) \(entries.count)")
        }
        let offsets = offsets32.map { Int($0) }
        try SparseSymmetricMatrix.checkRows(offsets: offsets, columns: columns, size: n, fromDiagonal: false, offsetTensor: "index." + offsetName,
                                            columnTensor: "index." + itemName, file: path)
        guard degree.allSatisfy({ $0 >= 0 && $0.isFinite }), entries.allSatisfy(\.isFinite), vectors.allSatisfy(\.isFinite) else {
            throw FedRecError(.corrupt, file: path, "holds a negative degree or a value that is not finite")
        }
        var model = GraphFilterModel(
            config: config, round: tensors.round, itemDegree: degree,
            filter: SparseSymmetricMatrix(size: n, offsets: offsets, columns: columns, values: entries),
            eigenvectors: vectors, eigenvalues: values, settings: try GraphFilterSettings(metadata: tensors.settings, file: path))
        model.notes = tensors.notes
        return (model, identity)
    }
}

/// How a gfcf model is fitted and scored (checkpoint metadata `setting.NAME`).
public struct GraphFilterSettings: Sendable, Equatable {
    /// α, the weight of the ideal low-pass filter beside the linear one.
    public var filterWeight: Float = 0.3
    /// p, extra vectors of the eigen solver's block.
    public var oversampling: Int = 64
    /// q, its power iterations.
    public var powerIterations: Int = 4
    /// The seed of its starting block.
    public var seed: UInt64 = 0

    public init() {}

    var metadata: [String: String] {
        ["filter_weight": "\(filterWeight)", "oversampling": String(oversampling), "power_iterations": String(powerIterations), "seed": String(seed)]
    }

    init(metadata: [String: String], file: String) throws {
        guard let weight = Float(metadata["filter_weight"] ?? ""), weight.isFinite, weight >= 0,
              let oversampling = Int(metadata["oversampling"] ?? ""), (0...100_000).contains(oversampling),
              let iterations = Int(metadata["power_iterations"] ?? ""), (0...1_000).contains(iterations),
              let seed = UInt64(metadata["seed"] ?? "")
        else { throw FedRecError(.corrupt, file: file, "a gfcf model's settings (filter_weight, oversampling, power_iterations, seed) are missing or out of range") }
        filterWeight = weight
        self.oversampling = oversampling
        powerIterations = iterations
        self.seed = seed
    }
}
