import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport

extension MFModel {
    /// The round-0 model of a dataset (`fl-init`): item embeddings N(0, scale²) from `seed`,
    /// the global bias at the middle of the rating scale for `mse` (0 otherwise), the scale
    /// recorded for clamping predictions, and with `itemText` (implicit ALS only) a zero text
    /// projection W sized for that table, which must belong to the dataset.
    /// - Throws: `.usage` (64) for a text table with another objective; the table's own
    ///   load and alignment errors.
    public static func initial(for manifest: DatasetManifest, objective: Objective, dim: Int, scale: Float, seed: UInt64,
                               itemText: String? = nil) throws -> MFModel {
        let config = ModelConfig(objective: objective, dim: dim, items: manifest.items, datasetId: manifest.datasetId)
        let middle = objective == .mse ? Float((manifest.ratingMin + manifest.ratingMax) / 2) : 0
        var model = MFModel.initial(config: config, scale: scale, seed: seed, globalBias: middle)
        model.notes["rating_min"] = "\(manifest.ratingMin)"
        model.notes["rating_max"] = "\(manifest.ratingMax)"
        if let itemText {
            guard objective == .wals else { throw FedRecError(.usage, file: itemText, "--item-text needs --objective wals") }
            let text = try TextEmbeddingTable.load(itemText)
            try text.requireAligned(with: manifest)
            model.textProjection = [Float](repeating: 0, count: dim * text.dim)
            model.textDim = text.dim
            model.notes["item_text"] = text.identity
        }
        return model
    }

    /// What `fl-init --json` reports of this model written at `path` with `identity`.
    public func summary(path: String, identity: String) -> JSONValue {
        .object(["model": .string(path), "identity": .string(identity), "round": .number(Double(round)),
                 "items": .number(Double(config.items)), "dim": .number(Double(config.dim)),
                 "objective": .string(config.objective.rawValue)])
    }
}
