import FedRecFormats
import FedRecSupport

/// A named F32 tensor: its shape and row-major values.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "a tensor's values must fill its shape")
        self.shape = shape
        self.values = values
    }

    /// Elements per row of the first axis (1 for a vector).
    public var rowWidth: Int { shape.dropFirst().reduce(1, *) }
}

/// A checkpoint of a model family other than matrix factorisation (`ModelFamily`): named
/// F32 tensors, some indexed by item (or feature) row.
///
/// Row tensors (first axis `config.items`) are trained and averaged row-wise: a client's
/// update holds only the rows its examples touched, as MF's item rows. Every other tensor
/// is dense: a client's update holds all of it. The family's settings (layers, rank, hash
/// buckets, …) travel in the checkpoint, so no command needs them repeated.
public struct TensorModel: Sendable {
    public var config: ModelConfig
    /// The round this model is the result of (0 for a fresh model).
    public var round: Int
    public var tensors: [String: Tensor]
    /// The tensors indexed by `config.items` rows.
    public var rowTensorNames: Set<String>
    /// The family's settings, recorded as metadata `setting.NAME`.
    public var settings: [String: String]
    /// Other metadata carried forward (e.g. the clients' user-side settings).
    public var notes: [String: String] = [:]
    /// The server optimiser's state (FedAvgM, FedAdam, FedYogi), keyed "m.NAME" and
    /// "v.NAME", each the shape of tensor NAME; empty under FedAvg.
    public var serverState: [String: [Float]] = [:]
    /// Constant I32 vectors the family needs beside its parameters (e.g. a CTR model's
    /// public item features as hashed buckets), stored as tensors `index.NAME`: not
    /// trained, not in updates, carried unchanged from round to round.
    public var indexTables: [String: [Int32]] = [:]

    public init(config: ModelConfig, round: Int = 0, tensors: [String: Tensor], rowTensorNames: Set<String>, settings: [String: String] = [:]) {
        precondition(config.family != .mf, "matrix factorisation has its own checkpoint (MFModel)")
        precondition(rowTensorNames.allSatisfy { tensors[$0]?.shape.first == config.items }, "row tensors have config.items rows")
        self.config = config
        self.round = round
        self.tensors = tensors
        self.rowTensorNames = rowTensorNames
        self.settings = settings
    }

    /// Metadata key prefix of the settings.
    public static let settingPrefix = "setting."
    /// Metadata key of the row tensors' names (comma-separated, ascending).
    public static let rowTensorsKey = "row_tensors"
    /// Tensor name prefix of the server optimiser's state.
    public static let serverPrefix = TensorName.serverPrefix
    /// Tensor name prefix of the constant index tables.
    public static let indexPrefix = "index."

    static let reserved: Set<String> = [
        "format", "format_version", "kind", "round", "checksum", "checksum_chunk", "header_checksum", "model_type", "objective", "dim",
        "items", "dataset_id", rowTensorsKey,
    ]

    /// Writes the checkpoint atomically (checksummed as every fedrec file).
    /// - Returns: the file's identity (SHA-256 of its header), which updates record.
    @discardableResult
    public func write(to path: String) throws -> String {
        var metadata = notes.filter { !Self.reserved.contains($0.key) && !$0.key.hasPrefix(Self.settingPrefix) }
        for (key, value) in settings { metadata[Self.settingPrefix + key] = value }
        metadata.merge(config.metadata) { _, new in new }
        metadata["format"] = FedRecFormat.name
        metadata["format_version"] = String(FedRecFormat.version)
        metadata["kind"] = FileKind.model.rawValue
        metadata["round"] = String(round)
        metadata[Self.rowTensorsKey] = rowTensorNames.sorted().joined(separator: ",")
        var writer = SafeTensorsWriter(metadata: metadata)
        writer.chunkedChecksum = true
        for name in tensors.keys.sorted() {
            guard let tensor = tensors[name] else { continue }
            writer.add(name, shape: tensor.shape, floats: tensor.values)
        }
        for key in serverState.keys.sorted() {
            guard let values = serverState[key] else { continue }
            let name = String(key.dropFirst(2))
            precondition(tensors[name]?.values.count == values.count, "server state \(key) has the shape of tensor \(name)")
            writer.add(Self.serverPrefix + key, shape: tensors[name]?.shape ?? [values.count], floats: values)
        }
        for name in indexTables.keys.sorted() {
            guard let values = indexTables[name] else { continue }
            writer.add(Self.indexPrefix + name, shape: [values.count], int32s: values)
        }
        let header = try writer.write(to: path)
        return header.withUnsafeBytes { sha256Hex($0) }
    }

    /// Reads and verifies a checkpoint of a tensor family (`family`, when given: any other
    /// family is refused with `.shape`).
    public static func open(_ path: String, family: ModelFamily? = nil) throws -> (model: TensorModel, identity: String) {
        let file = try FedRecFile(path: path, kinds: [.model])
        let config = try ModelConfig(file: file)
        guard config.family != .mf else {
            throw FedRecError(.shape, file: path, "is an mf model; this reads \(family?.rawValue ?? "ncf, fm, lr or text-lora") models")
        }
        if let family { try config.requireFamily(family, file: path) }
        let round = try file.int("round", in: 0...FedRecFile.maximumRound)
        let listed = file.metadata[rowTensorsKey] ?? ""
        let rowNames = Set(listed.split(separator: ",").map(String.init))
        var tensors: [String: Tensor] = [:]
        var state: [String: [Float]] = [:]
        var indexTables: [String: [Int32]] = [:]
        for (name, info) in file.tensors.tensors where name.hasPrefix(indexPrefix) {
            guard info.dtype == .i32, info.shape.count == 1 else {
                throw FedRecError(.shape, file: path, "index table \(name) is \(info.dtype.rawValue) \(info.shape), expected a vector of I32")
            }
            indexTables[String(name.dropFirst(indexPrefix.count))] = try file.tensors.int32s(name)
        }
        for (name, info) in file.tensors.tensors where !name.hasPrefix(serverPrefix) && !name.hasPrefix(indexPrefix) && name != ChunkedChecksum.tensorName {
            guard info.dtype == .f32 else { throw FedRecError(.shape, file: path, "tensor \(name) is \(info.dtype.rawValue), expected F32") }
            tensors[name] = Tensor(shape: info.shape, values: try file.tensors.floats(name))
        }
        for name in rowNames {
            guard let tensor = tensors[name] else { throw FedRecError(.corrupt, file: path, "lists row tensor \(name), which it does not hold") }
            guard tensor.shape.count >= 1, tensor.shape[0] == config.items else {
                throw FedRecError(.shape, file: path, "row tensor \(name) has shape \(tensor.shape), expected \(config.items) rows")
            }
        }
        for name in file.tensors.tensors.keys where name.hasPrefix(serverPrefix) {
            let key = String(name.dropFirst(serverPrefix.count))
            let target = String(key.dropFirst(2))
            guard key.hasPrefix("m.") || key.hasPrefix("v."), let tensor = tensors[target] else {
                throw FedRecError(.corrupt, file: path, "holds optimiser state \(name) of no tensor")
            }
            try file.tensors.require(name, .f32, tensor.shape)
            state[key] = try file.tensors.floats(name)
        }
        var model = TensorModel(config: config, round: round, tensors: tensors, rowTensorNames: rowNames)
        for (key, value) in file.metadata {
            if key.hasPrefix(settingPrefix) {
                model.settings[String(key.dropFirst(settingPrefix.count))] = value
            } else if !reserved.contains(key) {
                model.notes[key] = value
            }
        }
        model.serverState = state
        model.indexTables = indexTables
        return (model, file.tensors.identity)
    }

    /// Tensor `name`'s values, checked to have `shape`.
    /// - Throws: `.shape` naming `file` when the tensor is missing or shaped otherwise.
    public func tensor(_ name: String, shape: [Int], file: String) throws -> [Float] {
        guard let tensor = tensors[name] else { throw FedRecError(.shape, file: file, "has no tensor \(name)") }
        guard tensor.shape == shape else { throw FedRecError(.shape, file: file, "tensor \(name) has shape \(tensor.shape), expected \(shape)") }
        return tensor.values
    }
}
