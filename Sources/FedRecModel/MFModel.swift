/// Global parameters of biased matrix factorisation, the part the server holds:
/// item embeddings Q (items × d), item biases and the global bias. User embeddings are
/// private to clients (`UserState`).
///
/// Parameters live in contiguous `[Float]` storage, row-major.
public struct MFModel: Sendable {
    public var config: ModelConfig
    /// The round this model is the result of (0 for a fresh model).
    public var round: Int
    /// Changing it drops `itemGram` and `itemSupport`, which describe these rows.
    public var itemEmbedding: [Float] {
        didSet {
            itemGram = nil
            itemSupport = nil
        }
    }
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
    /// A wals model's item Gram matrix Σ_i q_i q_iᵀ as the server keeps it (nil: computed
    /// from the rows when written). Set with the rows it describes, by `ModelRevision`.
    public internal(set) var itemGram: [Double]?
    /// A wals model's rows that may be nonzero (nil: any row may be).
    public internal(set) var itemSupport: [Int32]?

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

    /// Writes the model as a standalone safetensors checkpoint.
    /// - Returns: the new file's identity (SHA-256 of its header).
    @discardableResult
    public func write(to path: String) throws -> String {
        let gram = config.objective == .wals
            ? itemGram ?? itemEmbedding.withUnsafeBufferPointer { ItemGram.compute($0, rows: config.items, dim: config.dim) } : nil
        var writer = CheckpointParts(round: round, globalBias: globalBias, serverState: serverState, notes: notes,
                                     textProjection: textProjection, textDim: textDim, itemGram: gram,
                                     itemSupport: itemSupport).writer(config: config)
        writer.add(TensorName.itemEmbedding, shape: [config.items, config.dim], floats: itemEmbedding)
        writer.add(TensorName.itemBias, shape: [config.items], floats: itemBias)
        let header = try writer.write(to: path)
        return header.withUnsafeBytes { sha256Hex($0) }
    }

    /// Reads a model checkpoint (standalone or overlay) into memory as a standalone model.
    public static func load(_ path: String) throws -> MFModel {
        try load(ModelView(path: path))
    }

    /// Copies an opened (and verified) checkpoint into memory.
    /// - Complexity: O(items · d).
    public static func load(_ view: ModelView) throws -> MFModel {
        try ModelRevision(start: view).standalone()
    }
}

/// Everything a checkpoint holds besides the item rows: round, global bias, the server
/// optimiser's state, a content-aware model's text projection and the metadata carried
/// forward. Standalone and overlay checkpoints share it.
struct CheckpointParts {
    var round: Int
    var globalBias: Float
    var serverState: ServerOptimizerState?
    var notes: [String: String]
    var textProjection: [Float]?
    var textDim: Int
    /// A wals model's item Gram matrix (`TensorName.itemGram`), d × d row-major.
    var itemGram: [Double]?
    /// A wals model's possibly nonzero rows (`TensorName.itemSupport`).
    var itemSupport: [Int32]?

    /// Metadata keys fedrec sets itself on every write (never carried forward as notes).
    static let reserved: Set<String> = [
        "format", "format_version", "kind", "round", "checksum", "checksum_chunk", "model_type", "objective", "dim", "items",
        "dataset_id", "text_dim", "base", "base_identity", "header_checksum",
    ]

    init(round: Int, globalBias: Float, serverState: ServerOptimizerState?, notes: [String: String], textProjection: [Float]?, textDim: Int,
         itemGram: [Double]? = nil, itemSupport: [Int32]? = nil) {
        self.itemGram = itemGram
        self.itemSupport = itemSupport
        self.round = round
        self.globalBias = globalBias
        self.serverState = serverState
        self.notes = notes
        self.textProjection = textProjection
        self.textDim = textDim
    }

    /// Reads the parts of an opened checkpoint (an overlay's own, not its base's).
    init(view: ModelView) throws {
        let file = view.file
        let path = file.path
        let tensors = file.tensors
        round = view.round
        globalBias = view.globalBias
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
            try requireAscendingItems(state.rows, items: view.config.items, tensor: ServerOptimizerState.rowsName, file: path)
            serverState = state
        }
        notes = file.metadata.filter { !Self.reserved.contains($0.key) }
        textDim = 0
        if let textDim = view.textDim {
            textProjection = try tensors.floats(TensorName.textProjection)
            self.textDim = textDim
        }
        itemGram = view.itemGram
        itemSupport = view.itemSupport
    }

    /// A checksummed (chunked) writer holding these parts; the caller adds the item rows.
    func writer(config: ModelConfig) -> SafeTensorsWriter {
        var metadata = notes.merging(config.metadata) { _, new in new }
        metadata["format"] = FedRecFormat.name
        metadata["format_version"] = String(FedRecFormat.version)
        metadata["kind"] = FileKind.model.rawValue
        metadata["round"] = String(round)
        var writer = SafeTensorsWriter(metadata: metadata)
        writer.chunkedChecksum = true
        writer.add(TensorName.globalBias, shape: [1], floats: [globalBias])
        if let textProjection {
            precondition(textProjection.count == config.dim * textDim)
            writer.metadata["text_dim"] = String(textDim)
            writer.add(TensorName.textProjection, shape: [config.dim, textDim], floats: textProjection)
        }
        if let itemGram {
            precondition(itemGram.count == config.dim * config.dim)
            writer.add(TensorName.itemGram, shape: [config.dim, config.dim], .f64(itemGram))
        }
        if let itemSupport { writer.add(TensorName.itemSupport, shape: [itemSupport.count], int32s: itemSupport) }
        if let state = serverState {
            let w = config.dim + 1
            writer.add(ServerOptimizerState.rowsName, shape: [state.rows.count], int32s: state.rows)
            writer.add(ServerOptimizerState.mName, shape: [state.rows.count, w], floats: state.m)
            if !state.v.isEmpty { writer.add(ServerOptimizerState.vName, shape: [state.rows.count, w], floats: state.v) }
            writer.add(ServerOptimizerState.globalName, shape: [2], floats: state.global)
        }
        return writer
    }
}

/// A model checkpoint opened read-only: item rows are read from the memory-mapped file
/// (and, for an overlay, its base) as they are needed, so a client that touches a few item
/// rows reads and verifies only those pages.
///
/// An overlay checkpoint (metadata `base`, `base_identity`) holds only the item rows that
/// changed since its base, a standalone checkpoint next to it; `items` resolves them.
public struct ModelView: @unchecked Sendable {
    /// The checkpoint opened.
    public let file: FedRecFile
    /// An overlay's base checkpoint; nil for a standalone one.
    public let base: FedRecFile?
    public let config: ModelConfig
    public let round: Int
    /// SHA-256 of the checkpoint's header; updates computed from it carry this value.
    public let identity: String
    /// Item embeddings and biases.
    public let items: ItemRows
    public let globalBias: Float
    /// The text embedding dimension of a content-aware model (`text_dim`), else nil.
    public let textDim: Int?
    /// A wals model's stored item Gram matrix (`TensorName.itemGram`), nil when the file
    /// has none (written before fedrec kept it).
    public let itemGram: [Double]?
    /// A wals model's rows that may be nonzero (`TensorName.itemSupport`), ascending; nil
    /// when any row may be.
    public let itemSupport: [Int32]?

    /// The item tensors a standalone checkpoint verifies as they are read.
    static let lazyTensors: Set<String> = [TensorName.itemEmbedding, TensorName.itemBias]

    public init(path: String) throws {
        file = try FedRecFile(path: path, kinds: [.model], lazyTensors: Self.lazyTensors)
        config = try ModelConfig(file: file)
        try config.requireFamily(.mf, file: file.path)
        round = try file.int("round", in: 0...FedRecFile.maximumRound)
        identity = file.tensors.identity
        let tensors = file.tensors
        let g = try tensors.require(TensorName.globalBias, .f32, [1])
        globalBias = tensors.bytes(of: g).loadUnaligned(as: Float.self)
        if file.metadata["text_dim"] != nil {
            let textDim = try file.int("text_dim", in: 1...FedRecFile.maximumDim)
            try tensors.require(TensorName.textProjection, .f32, [config.dim, textDim])
            self.textDim = textDim
        } else {
            textDim = nil
        }
        if tensors.tensors[TensorName.itemGram] != nil {
            try tensors.require(TensorName.itemGram, .f64, [config.dim, config.dim])
            itemGram = try tensors.doubles(TensorName.itemGram)
        } else {
            itemGram = nil
        }
        if tensors.tensors[TensorName.itemSupport] != nil {
            let support = try tensors.int32s(TensorName.itemSupport)
            try requireAscendingItems(support, items: config.items, tensor: TensorName.itemSupport, file: path)
            itemSupport = support
        } else {
            itemSupport = nil
        }
        if let baseName = file.metadata["base"] {
            let base = try Self.openBase(baseName, of: file, config: config)
            self.base = base
            items = try ItemRows(base: base, overlay: file, items: config.items, dim: config.dim)
        } else {
            base = nil
            items = try ItemRows(base: file, overlay: nil, items: config.items, dim: config.dim)
        }
    }

    /// The path of an overlay's base checkpoint, resolved as `init(path:)` resolves it, from
    /// the header alone (nothing verified, stdin never read): nil for a standalone
    /// checkpoint or `-`. Commands list it among their inputs (`FileRoles`).
    public static func basePath(of path: String) throws -> String? {
        guard path != "-" else { return nil }
        guard let name = try SafeTensorsFile(path: path).metadata["base"] else { return nil }
        return name.hasPrefix("/") ? name : directoryName(of: path) + "/" + name
    }

    /// Opens and checks an overlay's base: a standalone checkpoint of the same model, with
    /// the identity the overlay recorded, found relative to the overlay's directory.
    public static func openBase(_ name: String, of overlay: FedRecFile, config: ModelConfig) throws -> FedRecFile {
        let path = overlay.path
        guard let identity = overlay.metadata["base_identity"] else { throw FedRecError(.corrupt, file: path, "is an overlay without base_identity") }
        let basePath = name.hasPrefix("/") ? name : directoryName(of: path == "-" ? "./-" : path) + "/" + name
        let base: FedRecFile
        do {
            base = try FedRecFile(path: basePath, kinds: [.model], lazyTensors: lazyTensors)
        } catch let error as FedRecError where error.failure == .noInput {
            throw FedRecError(.noInput, file: path, "is an overlay on \(name), which is missing: keep a run's base checkpoints, or make standalone ones with fl-compact")
        }
        guard base.metadata["base"] == nil else {
            throw FedRecError(.corrupt, file: path, "its base \(name) is itself an overlay")
        }
        guard base.tensors.identity == identity else {
            throw FedRecError(.mismatch, file: path, "is an overlay on \(identity.prefix(12)), but \(basePath) is \(base.tensors.identity.prefix(12))")
        }
        try config.requireSame(try ModelConfig(file: base), file: basePath)
        return base
    }

    /// Whether the checkpoint is an overlay on a base.
    public var isOverlay: Bool { base != nil }

    /// Throws the first checksum failure among the item rows read so far. Call it before
    /// releasing any output computed from this model.
    public func checkIntegrity() throws {
        try items.checkIntegrity()
    }
}


import Crypto
import FedRecFormats
import FedRecSupport

