/// Frozen text embeddings of a dataset's items, as `fl-encode` writes them: a fedrec
/// safetensors file of kind `text_embedding` whose tensor `item_text` [items, dim] holds
/// row i for item index i of the dataset's `items.tsv`.
public struct TextEmbeddingTable: Sendable {
    /// The tensor's name in the file.
    public static let tensorName = "item_text"

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

    public init(vectors: [Float], items: Int, dim: Int, encoder: String, datasetId: String? = nil, notes: [String: String] = [:]) {
        precondition(vectors.count == items * dim, "\(vectors.count) floats for \(items) × \(dim)")
        self.vectors = vectors
        self.items = items
        self.dim = dim
        self.encoder = encoder
        self.datasetId = datasetId
        self.notes = notes
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
        metadata["kind"] = FileKind.textEmbedding.rawValue
        metadata["encoder"] = encoder
        metadata["dim"] = String(dim)
        metadata["items"] = String(items)
        if let datasetId { metadata["dataset_id"] = datasetId }
        var writer = SafeTensorsWriter(metadata: metadata)
        writer.add(Self.tensorName, shape: [items, dim], floats: vectors)
        return try writer.write(to: path)
    }

    /// Reads and verifies a table (version, kind, checksum, shape against `items`/`dim`).
    public static func load(_ path: String) throws -> TextEmbeddingTable {
        let file = try FedRecFile(path: path, kinds: [.textEmbedding])
        let items = try file.int("items"), dim = try file.int("dim")
        try file.tensors.require(tensorName, .f32, [items, dim])
        let reserved: Set<String> = ["format", "format_version", "kind", "checksum", "encoder", "dim", "items", "dataset_id"]
        return TextEmbeddingTable(
            vectors: try file.tensors.floats(tensorName), items: items, dim: dim, encoder: try file.string("encoder"),
            datasetId: file.metadata["dataset_id"], notes: file.metadata.filter { !reserved.contains($0.key) })
    }
}
