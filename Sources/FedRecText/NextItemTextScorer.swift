import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport

/// The scores a text-lora checkpoint of task `next-item` gives every catalogue item for a
/// user: the titles of the user's latest training items (`NextItemText`, the checkpoint's
/// history length) embedded with the adapted encoder, and the cosine of that query to each
/// item's text ("Title — Genre, Genre"). Blended with a collaborative model's scores s_u,
/// item i scores cos(q_u, t_i) + β·z_i, z = s_u standardised over the catalogue
/// (`PersonalizedSearch`). What `LoRANextItemEvaluator` (fl-eval) and
/// `NextItemRecommender` (fl-recommend) share, so that a list served is ranked as the
/// one measured.
public struct NextItemTextScorer {
    /// The checkpoint: its config names the dataset and the catalogue.
    public var config: ModelConfig { checkpoint.config }
    public var round: Int { checkpoint.round }
    /// The query text of a user's history.
    public var history: NextItemText { checkpoint.history }
    let checkpoint: NextItemCheckpoint
    let encoder: SentenceEncoder
    /// Every item's text vector, items × `dimension`, row-major.
    let items: [Float]
    let batchSize: Int

    /// Loads the checkpoint, the catalogue's texts and the encoder with the adapter merged,
    /// and encodes every item.
    /// - Throws: `.usage` naming the model when it is a search adapter; `.mismatch` when
    ///   `itemsPath` does not hold the model's items; the model's and encoder's load errors.
    public init(modelPath: String, itemsPath: String, modelDirectory: String, threads: Int? = nil, batchSize: Int = 64) throws {
        try self.init(
            checkpoint: try NextItemCheckpoint(modelPath: modelPath, itemsPath: itemsPath), modelDirectory: modelDirectory, threads: threads,
            batchSize: batchSize)
    }

    /// Loads the encoder with the checkpoint's adapter merged and encodes every item: the
    /// expensive step, taken once the cheap inputs (checkpoint, catalogue, shards) are read.
    /// - Throws: the encoder's load errors.
    public init(checkpoint: NextItemCheckpoint, modelDirectory: String, threads: Int? = nil, batchSize: Int = 64) throws {
        self.checkpoint = checkpoint
        (encoder, items) = try CatalogueTexts.encoded(
            adapter: checkpoint.path, modelDirectory: modelDirectory, rows: checkpoint.rows, threads: threads, batchSize: batchSize)
        self.batchSize = batchSize
    }

    /// The encoder's output width.
    public var dimension: Int { encoder.dimension }

    /// The query text of a user's training history (empty without training items).
    public func query(_ record: UserRecord) -> String { checkpoint.query(record) }

    /// The query vectors of `texts`, `dimension` a text, row-major.
    public func encode(_ texts: [String]) throws -> [Float] {
        try encoder.encode(texts, batchSize: batchSize)
    }

    /// cos(q, t_i) for every item into `similarity` (resized to the catalogue), q the
    /// `row`-th vector of `queries`.
    public func similarities(queries: [Float], row: Int, into similarity: inout [Float]) {
        let d = dimension, n = config.items
        precondition(queries.count >= (row + 1) * d, "NextItemTextScorer: no query row \(row)")
        if similarity.count != n { similarity = [Float](repeating: 0, count: n) }
        items.withUnsafeBufferPointer { t in
            queries.withUnsafeBufferPointer { q in
                similarity.withUnsafeMutableBufferPointer { s in
                    for i in 0..<n { s[i] = VectorKernels.dot(q.baseAddress! + row * d, t.baseAddress! + i * d, n: d) }
                }
            }
        }
    }
}

/// A next-item checkpoint opened without its encoder: its config (dataset and catalogue),
/// round, the query text of a user's history and the catalogue's texts. Cheap to make,
/// so a command checks its inputs with it before `NextItemTextScorer` encodes the
/// catalogue (tens of seconds for a real one).
public struct NextItemCheckpoint {
    /// The checkpoint's file.
    public let path: String
    public let config: ModelConfig
    public let round: Int
    /// The query text of a user's history.
    public let history: NextItemText
    /// The catalogue's texts, by item index.
    let rows: [DatasetTables.Item]

    /// Opens the checkpoint and reads the catalogue's texts.
    /// - Throws: `.usage` naming the model when it is a search adapter; `.mismatch` when
    ///   `itemsPath` does not hold the model's items; the model's load errors.
    public init(modelPath: String, itemsPath: String) throws {
        let (model, _) = try TensorModel.open(modelPath, family: .textLoRA)
        let (task, historyLength) = try TextLoRAModel.task(of: model, file: modelPath)
        guard task == .nextItem else {
            throw FedRecError(.usage, file: modelPath, "is a \(task.rawValue) adapter; next-item ranking needs one made with fl-init --task next-item")
        }
        path = modelPath
        config = model.config
        round = model.round
        rows = try CatalogueTexts.rows(itemsPath: itemsPath, items: model.config.items)
        history = NextItemText(titles: rows.map(\.title), historyLength: historyLength)
    }

    /// The query text of a user's training history (empty without training items).
    public func query(_ record: UserRecord) -> String {
        let sequence = NextItemText.chronological(record.train)
        return history.query(sequence, before: sequence.count)
    }
}
