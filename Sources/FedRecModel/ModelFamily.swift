import FedRecFormats
import FedRecSupport

/// What kind of model a checkpoint holds (metadata `model_type`).
///
/// Matrix factorisation (`mf`) has its own checkpoint layout (`MFModel`, `ModelView`, item
/// overlays); every other family is stored as a `TensorModel`: named tensors, some indexed
/// by item (or feature) row, trained and averaged with the same `ModelUpdate` files.
public enum ModelFamily: String, Sendable, CaseIterable {
    /// Biased matrix factorisation (SGD or ALS).
    case mf
    /// Neural collaborative filtering: GMF, MLP, NeuMF (He et al. WWW 2017).
    case ncf
    /// A factorisation machine over hashed features (Rendle 2010).
    case fm
    /// Logistic regression over hashed features.
    case lr
    /// Low-rank adapters of a BERT-family text encoder (Hu et al. 2021).
    case textLoRA = "text-lora"
    /// A graph filter of the item–item co-occurrence (GF-CF, Shen et al. CIKM 2021),
    /// fitted in closed form from sums over users (`GraphFilterModel`).
    case gfcf
}


extension ModelFamily {
    /// The family of the checkpoint at `path`, from its header alone (nothing verified:
    /// the reader that opens it verifies). stdin (`-`) cannot be read twice and is taken
    /// to be `mf`.
    /// - Throws: `.shape` for a model type fedrec does not know; what opening throws.
    public static func of(model path: String) throws -> ModelFamily {
        guard path != "-" else { return .mf }
        let type = try SafeTensorsFile(path: path).metadata["model_type"] ?? ModelFamily.mf.rawValue
        guard let family = ModelFamily(rawValue: type) else {
            throw FedRecError(.shape, file: path, "model type \(type) is not supported (\(allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return family
    }
}
