import FedRecSupport

/// Frozen text embeddings of a dataset's items, as `fl-encode` writes them: a fedrec
/// safetensors file of kind `text_embedding` whose F32 tensor `item_text` [items, dim]
/// holds, in row i, the embedding of item index i of the dataset's `items.tsv`; metadata
/// `encoder`, `items`, `dim` and, when known, `dataset_id`.
///
/// The one type for the table, whoever uses it: `fl-encode` writes it, personalized search
/// ranks by it, and the content-aware model fits its projection W on it. A checkpoint keeps
/// only W (`text_projection`) and the table's identity, so a later step that adapts the
/// encoder produces a new table without touching the model's layout.
public struct TextEmbeddingTable: Sendable, Equatable {
    /// The tensor's name in the file.
    public static let tensorName = "item_text"
    /// The file kind.
    public static let kind = FileKind.textEmbedding.rawValue

    /// `items` × `dim` floats, row-major; row i belongs to item index i.
    public var vectors: [Float]
    public var items: Int
    public var dim: Int
    /// The encoder's name (its model directory's name, e.g. `all-MiniLM-L6-v2`).
    public var encoder: String
    /// The dataset the rows are aligned with, when known.
    public var datasetId: String?
    /// Further metadata (how the texts were built, …).
    public var notes: [String: String]
    /// The file the table was read from ("" for a table made in memory).
    public var path: String
    /// SHA-256 of the file's header ("" for a table made in memory): models fitted with
    /// this table record it.
    public var identity: String

    public init(vectors: [Float], items: Int, dim: Int, encoder: String = "", datasetId: String? = nil,
                notes: [String: String] = [:], path: String = "", identity: String = "") {
        precondition(vectors.count == items * dim, "\(vectors.count) floats for \(items) × \(dim)")
        self.vectors = vectors
        self.items = items
        self.dim = dim
        self.encoder = encoder
        self.datasetId = datasetId
        self.notes = notes
        self.path = path
        self.identity = identity
    }

    /// Row `item`.
    public func row(_ item: Int) -> ArraySlice<Float> { vectors[item * dim..<(item + 1) * dim] }

    /// Writes the table atomically (`-` for stdout), with a checksum.
    /// - Returns: the header bytes, whose SHA-256 is the file's identity.
    @discardableResult
    public func write(to path: String) throws -> [UInt8] {
        var metadata = notes
        metadata["format"] = FedRecFormat.name
        metadata["format_version"] = String(FedRecFormat.version)
        metadata["kind"] = Self.kind
        metadata["encoder"] = encoder
        metadata["dim"] = String(dim)
        metadata["items"] = String(items)
        if let datasetId { metadata["dataset_id"] = datasetId }
        var writer = SafeTensorsWriter(metadata: metadata)
        writer.add(Self.tensorName, shape: [items, dim], floats: vectors)
        return try writer.write(to: path)
    }

    /// Reads and verifies a table (format, version, kind, checksum through `FedRecFile`,
    /// then the tensor's dtype and shape against its `items` and `dim` metadata).
    /// - Throws: `.corrupt` (84) without positive `items` and `dim`.
    public static func load(_ path: String) throws -> TextEmbeddingTable {
        let file = try FedRecFile(path: path, kinds: [.textEmbedding])
        let items = try file.int("items", in: 1...FedRecFile.maximumCount), dim = try file.int("dim", in: 1...FedRecFile.maximumDim)
        try file.tensors.require(tensorName, .f32, [items, dim])
        let reserved: Set<String> = ["format", "format_version", "kind", "checksum", "header_checksum", "encoder", "dim", "items", "dataset_id"]
        return TextEmbeddingTable(
            vectors: try file.tensors.floats(tensorName), items: items, dim: dim, encoder: try file.string("encoder"),
            datasetId: file.metadata["dataset_id"], notes: file.metadata.filter { !reserved.contains($0.key) },
            path: path, identity: file.tensors.identity)
    }

    /// Throws unless the table's rows are the items of the dataset `datasetId` with `items`
    /// items. A table that names no dataset is accepted on its item count alone.
    /// - Throws: `.shape` (83) for another number of items, `.mismatch` (86) for another dataset.
    public func requireAligned(items expected: Int, datasetId expectedId: String) throws {
        guard items == expected else {
            throw FedRecError(.shape, file: path, "has \(items) item rows, the dataset has \(expected) items")
        }
        if let datasetId, datasetId != expectedId {
            throw FedRecError(.mismatch, file: path, "was encoded for dataset \(datasetId.prefix(12))…, not this dataset (\(expectedId.prefix(12))…)")
        }
    }

    /// What `fl-encode --json` reports of the table written at `path`.
    public func summary(output path: String) -> JSONValue {
        var object: [String: JSONValue] = [
            "output": .string(path), "items": .number(Double(items)), "dim": .number(Double(dim)),
            "encoder": .string(encoder), "kind": .string(Self.kind),
        ]
        if let datasetId { object["dataset_id"] = .string(datasetId) }
        if let matched = notes["extra_text_items"].flatMap(Int.init) { object["extra_text_items"] = .number(Double(matched)) }
        return .object(object)
    }
}
