import FedRecFormats
import FedRecSupport

/// Frozen text embeddings of a dataset's items, as `fl-encode` writes them: a fedrec
/// safetensors file of kind `text_embedding` whose F32 tensor `item_text` [items, dim]
/// holds, in row i, the embedding of item index i of the dataset's `items.tsv`; metadata
/// `items`, `dim` and, when known, `dataset_id`.
///
/// The content-aware model keeps this table outside the checkpoint: the checkpoint holds
/// only the projection W (`text_projection`) and the table's identity, so a later step that
/// adapts the encoder (LoRA) produces a new table without touching the model's layout.
public struct ItemTextEmbeddings: Sendable, Equatable {
    public static let kind = FileKind.textEmbedding.rawValue
    public static let tensorName = TextEmbeddingTable.tensorName

    public let path: String
    /// `items` × `dim` floats, row-major.
    public let vectors: [Float]
    public let items: Int
    public let dim: Int
    public let datasetId: String?
    /// SHA-256 of the file's header: models fitted with this table record it.
    public let identity: String

    public init(vectors: [Float], items: Int, dim: Int, datasetId: String? = nil, path: String = "", identity: String = "") {
        precondition(vectors.count == items * dim)
        self.vectors = vectors
        self.items = items
        self.dim = dim
        self.datasetId = datasetId
        self.path = path
        self.identity = identity
    }

    /// Reads and verifies a table (format, version, kind, checksum through `FedRecFile`,
    /// then the tensor's dtype and shape against its `items` and `dim` metadata).
    public static func load(_ path: String) throws -> ItemTextEmbeddings {
        let file = try FedRecFile(path: path, kinds: [.textEmbedding])
        let items = try file.int("items"), dim = try file.int("dim")
        guard items > 0, dim > 0 else { throw FedRecError(.corrupt, file: path, "metadata lacks a positive items or dim") }
        try file.tensors.require(tensorName, .f32, [items, dim])
        return ItemTextEmbeddings(vectors: try file.tensors.floats(tensorName), items: items, dim: dim,
                                  datasetId: file.metadata["dataset_id"], path: path, identity: file.tensors.identity)
    }

    /// Throws unless the table's rows are the items of the dataset `datasetId` with `items` items.
    /// - Throws: `.shape` (83) for another number of items, `.mismatch` (86) for another dataset.
    public func requireAligned(items expected: Int, datasetId expectedId: String) throws {
        guard items == expected else {
            throw FedRecError(.shape, file: path, "has \(items) item rows, the dataset has \(expected) items")
        }
        if let datasetId, datasetId != expectedId {
            throw FedRecError(.mismatch, file: path, "belongs to dataset \(datasetId.prefix(12)), expected \(expectedId.prefix(12))")
        }
    }
}
