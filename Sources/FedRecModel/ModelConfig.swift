import FedRecFormats
import FedRecSupport

/// The loss a matrix-factorisation model is trained for.
public enum Objective: String, Sendable, CaseIterable {
    /// Squared error on explicit ratings; predictions are μ + b_u + b_i + p_u·q_i.
    case mse
    /// Bayesian personalised ranking on implicit feedback (Rendle et al. 2009).
    case bpr
    /// Binary cross-entropy with k sampled negatives per positive (implicit feedback).
    case bce
    /// Weighted least squares on implicit feedback with confidence 1 + αr, solved by
    /// alternating least squares (Hu, Koren, Volinsky 2008).
    case wals
    /// No loss: a closed-form filter of implicit feedback's item–item co-occurrence
    /// (`GraphFilterModel`); the objective of gfcf models only.
    case filter

    /// Whether the objective learns from ratings' values (else from presence only).
    public var isExplicit: Bool { self == .mse }
}

/// What a model checkpoint is, recorded in its metadata and checked by every command that
/// combines files: the same dataset, model type, objective and shape.
public struct ModelConfig: Sendable, Equatable {
    /// The model family (metadata `model_type`): matrix factorisation, or a family stored
    /// as a `TensorModel`.
    public var family: ModelFamily = .mf
    /// The family's name as recorded in files (`model_type`).
    public var modelType: String { family.rawValue }
    public var objective: Objective
    /// Embedding dimension d.
    public var dim: Int
    /// Number of items (rows of the item tables).
    public var items: Int
    public var datasetId: String

    public init(family: ModelFamily = .mf, objective: Objective, dim: Int, items: Int, datasetId: String) {
        self.family = family
        self.objective = objective
        self.dim = dim
        self.items = items
        self.datasetId = datasetId
    }

    public var metadata: [String: String] {
        ["model_type": modelType, "objective": objective.rawValue, "dim": String(dim), "items": String(items), "dataset_id": datasetId]
    }

    /// Reads the configuration from a fedrec file's metadata: any family; readers of one
    /// family check it with `requireFamily`.
    public init(file: FedRecFile) throws {
        guard let type = file.metadata["model_type"], let family = ModelFamily(rawValue: type) else {
            let known = ModelFamily.allCases.map(\.rawValue).joined(separator: ", ")
            throw FedRecError(.shape, file: file.path, "model type \(file.metadata["model_type"] ?? "none") is not supported (\(known))")
        }
        self.family = family
        let name = try file.string("objective")
        guard let objective = Objective(rawValue: name) else {
            throw FedRecError(.badData, file: file.path, "unknown objective \(name)")
        }
        guard (objective == .filter) == (family == .gfcf) else {
            throw FedRecError(.shape, file: file.path, "a \(family.rawValue) model with objective \(name): the filter objective is gfcf's, and gfcf's only")
        }
        self.objective = objective
        dim = try file.int("dim", in: 1...FedRecFile.maximumDim)
        items = try file.int("items", in: 1...FedRecFile.maximumCount)
        datasetId = try file.string("dataset_id")
    }

    /// Throws `.shape` naming `path` unless the model is of `family`.
    public func requireFamily(_ family: ModelFamily, file path: String) throws {
        guard self.family == family else {
            throw FedRecError(.shape, file: path, "is a \(modelType) model, expected a \(family.rawValue) model")
        }
    }

    /// Throws `.mismatch` naming `path` if `other` does not describe the same model shape.
    public func requireSame(_ other: ModelConfig, file path: String) throws {
        guard other.datasetId == datasetId else {
            throw FedRecError(.mismatch, file: path, "belongs to dataset \(other.datasetId.prefix(12)), expected \(datasetId.prefix(12))")
        }
        guard other.objective == objective, other.dim == dim, other.items == items, other.modelType == modelType else {
            throw FedRecError(.shape, file: path, "is a \(other.modelType)/\(other.objective.rawValue) d=\(other.dim) items=\(other.items), expected \(modelType)/\(objective.rawValue) d=\(dim) items=\(items)")
        }
    }
}

/// Tensor names in model, update and state files.
public enum TensorName {
    public static let itemEmbedding = "item_embedding"
    public static let itemBias = "item_bias"
    public static let globalBias = "global_bias"
    /// W [dim, textDim] of a content-aware model: item i's text part is W t_i.
    public static let textProjection = "text_projection"
    public static let userEmbedding = "user_embedding"
    public static let userBias = "user_bias"
    public static let users = "users"
    /// Prefix of the server optimizer's state tensors in a model file.
    public static let serverPrefix = "server."
    /// An overlay checkpoint's changed item rows (I32, ascending) and their values.
    public static let overlayRows = "overlay.rows"
    public static let overlayItemEmbedding = "overlay.item_embedding"
    public static let overlayItemBias = "overlay.item_bias"
    /// An implicit-ALS (wals) model's Σ_i q_i q_iᵀ over all item rows, F64 [dim, dim]: the
    /// Gram matrix every user solve needs, kept by the server so no reader sums the catalogue.
    public static let itemGram = "item_gram"
    /// A wals model's item rows that may be nonzero (I32, ascending): the rows the last
    /// item solve set; every other row is zero. Lets the next solve zero the rows no client
    /// touched without scanning the catalogue.
    public static let itemSupport = "item_support"
}

/// Checks that a checkpoint's list of item rows (`overlay.rows`, `item_support`,
/// `server.rows`) holds strictly ascending item indices below `items`.
/// - Throws: `.corrupt`, naming the tensor and the file.
func requireAscendingItems(_ rows: some Sequence<Int32>, items: Int, tensor: String, file: String) throws {
    var previous: Int32 = -1
    for row in rows {
        guard row > previous, Int(row) < items else {
            throw FedRecError(.corrupt, file: file, "\(tensor) must be ascending item indices below \(items)")
        }
        previous = row
    }
}
