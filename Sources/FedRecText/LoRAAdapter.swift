import FedRecCore
import FedRecFormats
import FedRecSupport

/// A dense layer of every encoder layer that an adapter can adapt.
public enum LoRATarget: String, CaseIterable, Sendable, Comparable {
    case query
    case key
    case value
    /// The attention block's output projection (`attention.output.dense`).
    case attentionOutput = "attention_output"
    /// The feed-forward block's first layer (`intermediate.dense`).
    case intermediate
    /// The feed-forward block's second layer (`output.dense`).
    case output

    /// The module's name inside `encoder.layer.N.`, as Hugging Face's `BertModel` names it.
    public var module: String {
        switch self {
        case .query: "attention.self.query"
        case .key: "attention.self.key"
        case .value: "attention.self.value"
        case .attentionOutput: "attention.output.dense"
        case .intermediate: "intermediate.dense"
        case .output: "output.dense"
        }
    }

    /// (outputs, inputs) of the adapted weight.
    func shape(_ c: BertConfig) -> (outputs: Int, inputs: Int) {
        switch self {
        case .query, .key, .value, .attentionOutput: (c.hiddenSize, c.hiddenSize)
        case .intermediate: (c.intermediateSize, c.hiddenSize)
        case .output: (c.hiddenSize, c.intermediateSize)
        }
    }

    public static func < (a: Self, b: Self) -> Bool { a.order < b.order }

    private var order: Int { Self.allCases.firstIndex(of: self) ?? 0 }

    /// Parses `query,value` (any order, no repeats) into targets in canonical order.
    /// - Throws: `FedRecError(.usage)` naming an unknown target.
    public static func parseList(_ text: String) throws -> [LoRATarget] {
        var targets = Set<LoRATarget>()
        for name in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = name.trimmingCharacters(in: " ")
            guard let target = LoRATarget(rawValue: trimmed) else {
                let known = allCases.map(\.rawValue).joined(separator: ", ")
                throw FedRecError(.usage, "unknown adapter target \"\(trimmed)\" (known: \(known))")
            }
            guard targets.insert(target).inserted else { throw FedRecError(.usage, "adapter target \(trimmed) is named twice") }
        }
        return targets.sorted()
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}

/// The shape of a LoRA adapter: `W' = W + (α/r)·B·A` (Hu et al. 2021, eq. 3 and §4.1:
/// the update ΔW = BA is scaled by α/r), with A (r × in) random and B (out × r) zero at
/// the start, so training starts from the base model.
public struct LoRAConfig: Sendable, Equatable {
    /// r, the rank of ΔW.
    public var rank: Int
    /// α; the update is scaled by α/r.
    public var alpha: Float
    /// The adapted layers of every encoder layer, in canonical order.
    public var targets: [LoRATarget]
    /// Seed of A's initialisation (recorded so a frozen A can be regenerated anywhere).
    public var seed: UInt64
    /// FFA-LoRA (Sun et al., ICLR 2024): A stays fixed at its random initialisation and only
    /// B is trained, so averaging clients' B averages their ΔW = BA exactly and DP noise
    /// added to B is not amplified through a product of two noisy factors.
    public var frozenA: Bool

    /// The largest rank accepted (values read from files stay far from overflow).
    public static let maximumRank = 4096

    public init(rank: Int = 8, alpha: Float = 16, targets: [LoRATarget] = [.query, .value], seed: UInt64 = 0, frozenA: Bool = true) {
        self.rank = rank
        self.alpha = alpha
        self.targets = targets.sorted()
        self.seed = seed
        self.frozenA = frozenA
    }

    /// α/r.
    public var scaling: Float { alpha / Float(rank) }
}

/// One adapted layer's factors: `a` is r × inputs, `b` is outputs × r, both row-major
/// (PyTorch's `lora_A.weight` and `lora_B.weight`).
public struct LoRAPair: Sendable, Equatable {
    public let layer: Int
    public let target: LoRATarget
    public let inputs: Int
    public let outputs: Int
    public var a: [Float]
    public var b: [Float]

    /// Tensor name of A or B in an adapter file, e.g. `encoder.layer.3.attention.self.query.lora_B`.
    public func tensorName(_ factor: String) -> String {
        "encoder.layer.\(layer).\(target.module).lora_\(factor)"
    }
}

/// A LoRA adapter of a BERT encoder: one `LoRAPair` for every (layer, target), and the
/// identity of the base model it was made for (SHA-256 of its `model.safetensors`).
///
/// File format (docs/FORMATS.md, kind `text_adapter`): tensors
/// `encoder.layer.N.<module>.lora_A` [r, in] and `.lora_B` [out, r], F32; metadata
/// `adapter=lora`, `rank`, `alpha`, `targets`, `seed`, `frozen_a`, `base_model`,
/// `layers`, `hidden_size`, `intermediate_size`.
public struct LoRAAdapter: Sendable, Equatable {
    public let config: LoRAConfig
    /// `sha256:` and the hex digest of the base model's weights file.
    public let baseModel: String
    public let layers: Int
    public let hiddenSize: Int
    public let intermediateSize: Int
    /// Layer-major: all targets of layer 0, then of layer 1, …
    public var pairs: [LoRAPair]

    /// A fresh adapter for `encoder`: every A uniform in ±1/√in from `config.seed` (the
    /// Kaiming-uniform bound that PEFT uses for `lora_A`), every B zero, so the adapted
    /// encoder starts as the base one.
    public init(config: LoRAConfig, for encoder: BertEncoder) throws {
        try self.init(config: config, bertConfig: encoder.config, baseModel: try encoder.baseIdentity())
    }

    init(config: LoRAConfig, bertConfig c: BertConfig, baseModel: String) throws {
        guard (1...LoRAConfig.maximumRank).contains(config.rank) else {
            throw FedRecError(.usage, "adapter rank \(config.rank) is outside 1…\(LoRAConfig.maximumRank)")
        }
        guard config.alpha.isFinite, config.alpha > 0 else { throw FedRecError(.usage, "adapter alpha must be a positive number") }
        guard !config.targets.isEmpty else { throw FedRecError(.usage, "an adapter needs at least one target") }
        self.config = config
        self.baseModel = baseModel
        layers = c.numHiddenLayers
        hiddenSize = c.hiddenSize
        intermediateSize = c.intermediateSize
        var generator = SeededGenerator(seed: config.seed)
        var pairs = [LoRAPair]()
        for layer in 0..<c.numHiddenLayers {
            for target in config.targets {
                let (outputs, inputs) = target.shape(c)
                let bound = 1 / Float(inputs).squareRoot()
                let a = (0..<(config.rank * inputs)).map { _ in (2 * generator.nextUnitFloat() - 1) * bound }
                pairs.append(
                    LoRAPair(
                        layer: layer, target: target, inputs: inputs, outputs: outputs, a: a,
                        b: [Float](repeating: 0, count: outputs * config.rank)))
            }
        }
        self.pairs = pairs
    }

    /// The pair of `target` in `layer`, if adapted.
    public func pair(layer: Int, _ target: LoRATarget) -> LoRAPair? {
        guard let t = config.targets.firstIndex(of: target), layer >= 0, layer < layers else { return nil }
        return pairs[layer * config.targets.count + t]
    }

    /// Index in `pairs` of `target` in `layer`, if adapted.
    func index(layer: Int, _ target: LoRATarget) -> Int? {
        config.targets.firstIndex(of: target).map { layer * config.targets.count + $0 }
    }

    /// Whether the adapter fits `encoder`: same shape and the same base weights.
    /// - Throws: `FedRecError(.mismatch, file:)` naming the adapter file.
    public func check(against encoder: BertEncoder, file: String) throws {
        let c = encoder.config
        guard (layers, hiddenSize, intermediateSize) == (c.numHiddenLayers, c.hiddenSize, c.intermediateSize) else {
            throw FedRecError(
                .mismatch, file: file,
                "is an adapter for \(layers) layers of width \(hiddenSize) (intermediate \(intermediateSize)), the model has \(c.numHiddenLayers) of \(c.hiddenSize) (\(c.intermediateSize))")
        }
        let identity = try encoder.baseIdentity()
        guard identity == baseModel else {
            throw FedRecError(.mismatch, file: file, "is an adapter for another base model (\(baseModel.prefix(19))…), this one is \(identity.prefix(19))…")
        }
    }

    // MARK: File

    static let kind = FileKind.textAdapter.rawValue

    /// Writes the adapter as a fedrec safetensors file of kind `text_adapter`.
    @discardableResult
    public func write(to path: String) throws -> [UInt8] {
        try writer().write(to: path)
    }

    /// The file's metadata and tensors, not yet written.
    func writer() -> SafeTensorsWriter {
        var writer = SafeTensorsWriter(metadata: [
            "format": FedRecFormat.name, "format_version": String(FedRecFormat.version), "kind": Self.kind,
            "adapter": "lora", "rank": String(config.rank), "alpha": "\(config.alpha)",
            "targets": config.targets.map(\.rawValue).joined(separator: ","), "seed": String(config.seed),
            "frozen_a": config.frozenA ? "true" : "false", "base_model": baseModel, "layers": String(layers),
            "hidden_size": String(hiddenSize), "intermediate_size": String(intermediateSize),
        ])
        for pair in pairs {
            writer.add(pair.tensorName("A"), shape: [config.rank, pair.inputs], floats: pair.a)
            writer.add(pair.tensorName("B"), shape: [pair.outputs, config.rank], floats: pair.b)
        }
        return writer
    }

    /// Reads and verifies an adapter file (format, kind, checksum, every tensor's shape
    /// against the recorded rank and base shape, no tensor left over).
    /// - Throws: `FedRecError` naming the file: `.wrongKind` for another kind of file,
    ///   `.corrupt` for bad metadata, `.shape` for a tensor of the wrong shape or rank.
    /// SHA-256 hex of an adapter file's bytes: what `fl-encode --adapter` records in an item
    /// table (`adapter_sha256`) so that `fl-recommend --query --adapter` can refuse a query
    /// encoded with another adapter than the items (adapters change every round).
    public static func fileIdentity(_ path: String) throws -> String {
        let file = try MappedFile(path: path)
        return file.withBytes { sha256Hex($0) }
    }

    public init(path: String) throws {
        let file = try FedRecFile(path: path, kinds: [.textAdapter])
        func corrupt(_ what: String) -> FedRecError { FedRecError(.corrupt, file: path, what) }
        guard file.metadata["adapter"] == "lora" else { throw corrupt("metadata adapter is not lora") }
        let rank = try file.int("rank", in: 1...LoRAConfig.maximumRank)
        guard let alpha = Float(try file.string("alpha")), alpha.isFinite, alpha > 0 else {
            throw corrupt("metadata alpha is not a positive number")
        }
        let targets: [LoRATarget]
        do {
            targets = try LoRATarget.parseList(try file.string("targets"))
        } catch let error as FedRecError where error.failure == .usage {
            throw corrupt("metadata targets: \(error.message)")
        }
        guard let seed = UInt64(try file.string("seed")) else { throw corrupt("metadata seed is not an unsigned 64-bit integer") }
        let frozen = try file.string("frozen_a")
        guard frozen == "true" || frozen == "false" else { throw corrupt("metadata frozen_a is neither true nor false") }
        let baseModel = try file.string("base_model")
        let limit = 1...(1 << 20)
        let shape = BertConfig(
            vocabSize: 1, hiddenSize: try file.int("hidden_size", in: limit), numHiddenLayers: try file.int("layers", in: 1...4096),
            numAttentionHeads: 1, intermediateSize: try file.int("intermediate_size", in: limit))
        let config = LoRAConfig(rank: rank, alpha: alpha, targets: targets, seed: seed, frozenA: frozen == "true")
        var adapter = try LoRAAdapter(config: config, bertConfig: shape, baseModel: baseModel)
        var expected = Set<String>()
        for (i, pair) in adapter.pairs.enumerated() {
            for (factor, dims) in [("A", [rank, pair.inputs]), ("B", [pair.outputs, rank])] {
                let name = pair.tensorName(factor)
                expected.insert(name)
                let info = try file.tensors.info(name)
                guard info.shape == dims else {
                    let what = info.shape.count == 2 && info.shape != dims ? " (rank \(rank) and the base shape imply \(dims))" : ""
                    throw FedRecError(.shape, file: path, "tensor \(name) has shape \(info.shape), expected \(dims)\(what)")
                }
                let values = try file.tensors.floats(name)
                guard values.allSatisfy(\.isFinite) else { throw FedRecError(.badData, file: path, "tensor \(name) holds a non-finite value") }
                if factor == "A" { adapter.pairs[i].a = values } else { adapter.pairs[i].b = values }
            }
        }
        if let extra = file.tensors.names.first(where: { !expected.contains($0) && $0 != ChunkedChecksum.tensorName }) {
            throw FedRecError(.shape, file: path, "holds tensor \(extra), which targets \(targets.map(\.rawValue)) do not explain")
        }
        self = adapter
    }
}
