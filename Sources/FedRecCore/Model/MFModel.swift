/// Global parameters of biased matrix factorisation, the part the server holds:
/// item embeddings Q (items × d), item biases and the global bias. User embeddings are
/// private to clients (`UserState`).
///
/// Parameters live in contiguous `[Float]` storage, row-major.
public struct MFModel: Sendable {
    public var config: ModelConfig
    /// The round this model is the result of (0 for a fresh model).
    public var round: Int
    public var itemEmbedding: [Float]
    public var itemBias: [Float]
    public var globalBias: Float
    /// The server optimiser's moments (FedAvgM, FedAdam, FedYogi), nil for FedAvg.
    public var serverState: ServerOptimizerState?
    /// Extra metadata to carry forward (server optimizer settings, seed, history).
    public var notes: [String: String] = [:]
    /// Content-aware models: the projection W [dim, textDim], row-major, that maps an
    /// item's frozen text embedding t_i to W t_i in item-embedding space (nil: plain MF).
    /// The text table itself is not in the checkpoint; `notes["item_text"]` names it by
    /// identity.
    public var textProjection: [Float]?
    /// Columns of `textProjection` (the text embedding's dimension), 0 without one.
    public var textDim = 0

    public init(config: ModelConfig, round: Int, itemEmbedding: [Float], itemBias: [Float], globalBias: Float) {
        precondition(itemEmbedding.count == config.items * config.dim && itemBias.count == config.items)
        self.config = config
        self.round = round
        self.itemEmbedding = itemEmbedding
        self.itemBias = itemBias
        self.globalBias = globalBias
    }

    /// A fresh model: item embeddings drawn from N(0, scale²), biases zero, global bias
    /// `globalBias`. Deterministic for a seed.
    public static func initial(config: ModelConfig, scale: Float, seed: UInt64, globalBias: Float) -> MFModel {
        var generator = SeededGenerator(seed: seed, stream: 0x1417)
        let embedding = (0..<(config.items * config.dim)).map { _ in Float(generator.nextGaussian()) * scale }
        var model = MFModel(config: config, round: 0, itemEmbedding: embedding, itemBias: [Float](repeating: 0, count: config.items), globalBias: globalBias)
        model.notes["seed"] = String(seed)
        model.notes["init_scale"] = "\(scale)"
        return model
    }

    /// Writes the model as a safetensors checkpoint.
    /// - Returns: the new file's identity (SHA-256 of its header).
    @discardableResult
    public func write(to path: String) throws -> String {
        var metadata = notes.merging(config.metadata) { _, new in new }
        metadata["format"] = FedRecFormat.name
        metadata["format_version"] = String(FedRecFormat.version)
        metadata["kind"] = FileKind.model.rawValue
        metadata["round"] = String(round)
        var writer = SafeTensorsWriter(metadata: metadata)
        writer.add(TensorName.itemEmbedding, shape: [config.items, config.dim], floats: itemEmbedding)
        writer.add(TensorName.itemBias, shape: [config.items], floats: itemBias)
        writer.add(TensorName.globalBias, shape: [1], floats: [globalBias])
        if let textProjection {
            precondition(textProjection.count == config.dim * textDim)
            writer.metadata["text_dim"] = String(textDim)
            writer.add(TensorName.textProjection, shape: [config.dim, textDim], floats: textProjection)
        }
        if let state = serverState {
            let w = config.dim + 1
            writer.add(ServerOptimizerState.rowsName, shape: [state.rows.count], int32s: state.rows)
            writer.add(ServerOptimizerState.mName, shape: [state.rows.count, w], floats: state.m)
            if !state.v.isEmpty { writer.add(ServerOptimizerState.vName, shape: [state.rows.count, w], floats: state.v) }
            writer.add(ServerOptimizerState.globalName, shape: [2], floats: state.global)
        }
        let header = try writer.write(to: path)
        return header.withUnsafeBytes { sha256Hex($0) }
    }

    /// Reads a model checkpoint into memory (for the server step, which rewrites it).
    public static func load(_ path: String) throws -> MFModel {
        try load(ModelView(path: path))
    }

    /// Copies an opened (and verified) checkpoint into memory.
    public static func load(_ view: ModelView) throws -> MFModel {
        let path = view.file.path
        var model = MFModel(config: view.config, round: view.round, itemEmbedding: Array(view.itemEmbedding),
                            itemBias: Array(view.itemBias), globalBias: view.globalBias)
        let tensors = view.file.tensors
        if tensors.tensors[ServerOptimizerState.rowsName] != nil {
            var state = ServerOptimizerState()
            state.rows = try tensors.int32s(ServerOptimizerState.rowsName)
            let n = state.rows.count, w = view.config.dim + 1
            try tensors.require(ServerOptimizerState.mName, .f32, [n, w])
            state.m = try tensors.floats(ServerOptimizerState.mName)
            if tensors.tensors[ServerOptimizerState.vName] != nil {
                try tensors.require(ServerOptimizerState.vName, .f32, [n, w])
                state.v = try tensors.floats(ServerOptimizerState.vName)
            }
            try tensors.require(ServerOptimizerState.globalName, .f32, [2])
            state.global = try tensors.floats(ServerOptimizerState.globalName)
            for i in 0..<n where state.rows[i] < 0 || Int(state.rows[i]) >= view.config.items || (i > 0 && state.rows[i - 1] >= state.rows[i]) {
                throw FedRecError(.corrupt, file: path, "server.rows must be ascending item indices")
            }
            model.serverState = state
        }
        let reserved: Set<String> = ["format", "format_version", "kind", "round", "checksum", "model_type", "objective", "dim", "items", "dataset_id", "text_dim"]
        model.notes = view.file.metadata.filter { !reserved.contains($0.key) }
        if let textDim = view.textDim {
            try view.file.tensors.require(TensorName.textProjection, .f32, [view.config.dim, textDim])
            model.textProjection = try view.file.tensors.floats(TensorName.textProjection)
            model.textDim = textDim
        }
        return model
    }
}

/// A model checkpoint opened read-only: tensors are views into the memory-mapped file, so
/// a client that touches a few item rows reads only those pages (after the checksum pass).
public struct ModelView: @unchecked Sendable {
    public let file: FedRecFile
    public let config: ModelConfig
    public let round: Int
    /// SHA-256 of the checkpoint's header; updates computed from it carry this value.
    public let identity: String
    public let itemEmbedding: UnsafeBufferPointer<Float>
    public let itemBias: UnsafeBufferPointer<Float>
    public let globalBias: Float
    /// The text embedding dimension of a content-aware model (`text_dim`), else nil.
    public let textDim: Int?

    public init(path: String) throws {
        file = try FedRecFile(path: path, kinds: [.model])
        config = try ModelConfig(file: file)
        round = try file.int("round")
        identity = file.tensors.identity
        let tensors = file.tensors
        let e = try tensors.require(TensorName.itemEmbedding, .f32, [config.items, config.dim])
        let b = try tensors.require(TensorName.itemBias, .f32, [config.items])
        let g = try tensors.require(TensorName.globalBias, .f32, [1])
        itemEmbedding = try tensors.floatView(e)
        itemBias = try tensors.floatView(b)
        globalBias = tensors.bytes(of: g).loadUnaligned(as: Float.self)
        if file.metadata["text_dim"] != nil {
            let textDim = try file.int("text_dim")
            guard textDim > 0 else { throw FedRecError(.shape, file: path, "text_dim must be positive") }
            try tensors.require(TensorName.textProjection, .f32, [config.dim, textDim])
            self.textDim = textDim
        } else {
            textDim = nil
        }
    }
}

import Crypto

/// SHA-256 of `bytes` as lowercase hex.
public func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
    hexDigest(SHA256.hash(data: bytes))
}
