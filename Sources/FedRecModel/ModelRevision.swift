#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecSupport

/// How `fl-aggregate` writes the next model.
public enum CheckpointLayout: String, Sendable, CaseIterable {
    /// An overlay when few rows changed in a large model, else standalone.
    case auto
    /// Every row: a checkpoint that needs no other file.
    case standalone
    /// Only the rows changed since the last standalone checkpoint, which it names as base.
    case overlay
}

/// The server's next model: the checkpoint a round started from, plus the item rows the
/// round's step changed and the parts it rewrote (global bias, optimiser state).
///
/// A server step costs O(rows changed): it never copies the catalogue, and `write` stores
/// an overlay (the rows changed since the last standalone checkpoint) instead of every row
/// when that is much smaller. Steps that change every row (content-aware projection) call
/// `makeDense` first.
public struct ModelRevision {
    /// The checkpoint the step started from.
    public let start: ModelView
    public var round: Int
    public var globalBias: Float
    public var serverState: ServerOptimizerState?
    public var notes: [String: String]
    public var textProjection: [Float]?
    public var textDim: Int
    /// A wals model's rows that may be nonzero after this step (nil: any row may be).
    public var itemSupport: [Int32]?
    /// The start model's stored item Gram matrix (wals), nil when it has none.
    private let startGram: [Double]?
    /// The items whose rows changed (in slot order) and their new values, d per slot in
    /// `embedding`, one in `bias`. After `makeDense`, slot i is item i.
    public private(set) var changedItems: [Int32] = []
    public var embedding: [Float] = []
    public var bias: [Float] = []
    private var slotOf: [Int32: Int] = [:]
    /// Whether every row is in `embedding`/`bias`, in item order.
    public private(set) var isDense = false

    public var config: ModelConfig { start.config }

    /// The rows below this many bytes are always written standalone: an overlay saves
    /// nothing worth a second file.
    public static let overlayMinimumBytes = 8 << 20

    /// Starts from `start` with nothing changed.
    public init(start: ModelView) throws {
        self.start = start
        let parts = try CheckpointParts(view: start)
        round = parts.round
        globalBias = parts.globalBias
        serverState = parts.serverState
        notes = parts.notes
        textProjection = parts.textProjection
        textDim = parts.textDim
        startGram = parts.itemGram
        itemSupport = parts.itemSupport
    }

    /// The next model's item Gram matrix (wals models only): the start model's, updated
    /// from the rows this step changed, so it costs O(changed rows · d²); computed from
    /// every row when the start model has none or every row changed.
    func nextItemGram() throws -> [Double]? {
        guard config.objective == .wals else { return nil }
        let d = config.dim
        guard let startGram, !isDense else {
            var copy = self
            try copy.makeDense()
            return copy.embedding.withUnsafeBufferPointer { ItemGram.compute($0, rows: config.items, dim: d) }
        }
        var old = [Float]()
        old.reserveCapacity(changedItems.count * d)
        for item in changedItems { old.append(contentsOf: start.items.embeddingRow(Int(item))) }
        return ItemGram.replacing(startGram, old: old, new: embedding, dim: d)
    }

    /// The slot of `item`'s row, copied from the start model the first time it is asked for.
    public mutating func slot(_ item: Int) -> Int {
        if isDense { return item }
        if let slot = slotOf[Int32(item)] { return slot }
        let slot = changedItems.count
        changedItems.append(Int32(item))
        embedding.append(contentsOf: start.items.embeddingRow(item))
        bias.append(start.items.bias(item))
        slotOf[Int32(item)] = slot
        return slot
    }

    /// Makes every row a slot, slot i for item i, so `embedding` is the whole items × d
    /// matrix (for steps that change every row).
    /// - Complexity: O(items · d).
    public mutating func makeDense() throws {
        if isDense { return }
        let all = try start.items.dense()
        var denseEmbedding = Array(all.embedding), denseBias = Array(all.bias)
        let d = config.dim
        for (slot, item) in changedItems.enumerated() {
            let i = Int(item)
            for k in 0..<d { denseEmbedding[i * d + k] = embedding[slot * d + k] }
            denseBias[i] = bias[slot]
        }
        embedding = denseEmbedding
        bias = denseBias
        changedItems = (0..<Int32(config.items)).map { $0 }
        slotOf = [:]
        isDense = true
    }

    /// The model as a standalone in-memory model.
    /// - Complexity: O(items · d).
    public func standalone() throws -> MFModel {
        let gram = try nextItemGram()
        var copy = self
        try copy.makeDense()
        try start.checkIntegrity()
        var model = MFModel(config: config, round: round, itemEmbedding: copy.embedding, itemBias: copy.bias, globalBias: globalBias)
        model.serverState = serverState
        model.notes = notes
        model.textProjection = textProjection
        model.textDim = textDim
        model.itemGram = gram
        model.itemSupport = itemSupport
        return model
    }

    func parts(itemGram: [Double]?) -> CheckpointParts {
        CheckpointParts(round: round, globalBias: globalBias, serverState: serverState, notes: notes, textProjection: textProjection, textDim: textDim,
                        itemGram: itemGram, itemSupport: itemSupport)
    }

    /// Writes the model atomically (`-` for stdout, always standalone).
    /// - Returns: the new file's identity and whether it was written as an overlay.
    /// - Throws: `.usage` when `.overlay` is asked for but impossible (stdout, a model read
    ///   from stdin, a step that changed every row); `.checksum` when a row read from the
    ///   start model failed verification.
    @discardableResult
    public func write(to path: String, layout: CheckpointLayout = .auto) throws -> (identity: String, overlay: Bool) {
        try start.checkIntegrity()
        let baseFile = start.base ?? start.file
        let possible = path != "-" && baseFile.path != "-" && !isDense
        if layout == .overlay && !possible {
            throw FedRecError(.usage, file: path, "cannot be an overlay: \(isDense ? "this step changed every row" : "an overlay and its base must be files")")
        }
        var rows: [Int32] = []
        if possible && layout != .standalone {
            rows = mergedRows()
        }
        let bytes = config.items * (config.dim + 1) * 4
        let useOverlay = layout == .overlay
            || (layout == .auto && possible && bytes >= Self.overlayMinimumBytes && rows.count * 8 <= config.items)
        guard useOverlay else {
            return (try standalone().write(to: path), false)
        }
        let d = config.dim
        var values = [Float](), biases = [Float]()
        values.reserveCapacity(rows.count * d)
        biases.reserveCapacity(rows.count)
        for row in rows {
            if let slot = slotOf[row] {
                values.append(contentsOf: embedding[(slot * d)..<((slot + 1) * d)])
                biases.append(bias[slot])
            } else {
                values.append(contentsOf: start.items.embeddingRow(Int(row)))
                biases.append(start.items.bias(Int(row)))
            }
        }
        var writer = parts(itemGram: try nextItemGram()).writer(config: config)
        writer.metadata["base"] = try relativePath(from: directoryName(of: path), to: baseFile.path)
        writer.metadata["base_identity"] = baseFile.tensors.identity
        writer.add(TensorName.overlayRows, shape: [rows.count], int32s: rows)
        writer.add(TensorName.overlayItemEmbedding, shape: [rows.count, d], floats: values)
        writer.add(TensorName.overlayItemBias, shape: [rows.count], floats: biases)
        let header = try writer.write(to: path)
        return (header.withUnsafeBytes { sha256Hex($0) }, true)
    }

    /// The start model's overlay rows and the rows changed here, ascending.
    private func mergedRows() -> [Int32] {
        let old = start.items.overlayRows
        let new = changedItems.sorted()
        var merged: [Int32] = []
        merged.reserveCapacity(old.count + new.count)
        var i = 0, j = 0
        while i < old.count || j < new.count {
            if j == new.count || (i < old.count && old[i] < new[j]) {
                merged.append(old[i]); i += 1
            } else {
                if i < old.count && old[i] == new[j] { i += 1 }
                merged.append(new[j]); j += 1
            }
        }
        return merged
    }
}

/// The path of `file` relative to `directory` (both resolved through the file system), for
/// an overlay to name its base so that the pair can move together.
/// - Throws: `.io` when either cannot be resolved.
func relativePath(from directory: String, to file: String) throws -> String {
    func resolved(_ path: String) throws -> [Substring] {
        guard let real = realpath(path, nil) else { throw FedRecError(.io, file: path, "cannot resolve: \(systemError())") }
        defer { free(real) }
        return String(cString: real).split(separator: "/")
    }
    let from = try resolved(directory), to = try resolved(file)
    var common = 0
    while common < from.count && common < to.count - 1 && from[common] == to[common] { common += 1 }
    let up = Array(repeating: "..", count: from.count - common)
    return (up + to[common...].map(String.init)).joined(separator: "/")
}

extension ModelView {
    /// What `fl-compact --json` reports of this model rewritten standalone at `path`.
    public func compactionSummary(output path: String, identity: String) -> JSONValue {
        .object(["model": .string(path), "round": .number(Double(round)), "identity": .string(identity),
                 "from_overlay": .bool(isOverlay)])
    }
}
