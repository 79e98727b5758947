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
    /// Server optimizer state (moments), keyed by tensor name; same shapes as the
    /// parameters they belong to.
    public var serverState: [String: [Float]] = [:]
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
        for (name, values) in serverState {
            let shape = values.count == itemEmbedding.count ? [config.items, config.dim] : [values.count]
            writer.add(TensorName.serverPrefix + name, shape: shape, floats: values)
        }
        let header = try writer.write(to: path)
        return header.withUnsafeBytes { sha256Hex($0) }
    }

    /// Reads a model checkpoint into memory (for the server step, which rewrites it).
    public static func load(_ path: String) throws -> MFModel {
        let view = try ModelView(path: path)
        var model = MFModel(config: view.config, round: view.round, itemEmbedding: Array(view.itemEmbedding),
                            itemBias: Array(view.itemBias), globalBias: view.globalBias)
        for name in view.file.tensors.tensors.keys where name.hasPrefix(TensorName.serverPrefix) {
            let values = try view.file.tensors.floats(name)
            model.serverState[String(name.dropFirst(TensorName.serverPrefix.count))] = values
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
