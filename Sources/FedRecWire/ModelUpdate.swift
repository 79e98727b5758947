import FedRecFormats
import FedRecModel
import FedRecSupport

/// Per-row values of one tensor in an update: `width` floats for each touched row.
public struct RowTensor: Sendable, Equatable {
    public var width: Int
    public var values: [Float]

    public init(width: Int, values: [Float]) {
        self.width = width
        self.values = values
    }
}

/// What the rows of an update hold (the `algorithm` metadata field).
public enum UpdateAlgorithm: String, Sendable, CaseIterable {
    /// Parameter differences from local SGD or Adam steps.
    case sgd
    /// Alternating-least-squares sufficient statistics (`ALSStatistics`).
    case als
    /// A graph filter's item–item co-occurrence and item degrees (`ItemPairSum`).
    case cooccurrence
}

/// How each client's contribution is weighted in a sum (the `weighting` metadata field).
public enum ContributionWeighting: String, Sendable, CaseIterable {
    /// By the client's number of training examples, n_k (FedAvg).
    case examples
    /// Every client counts 1 (what client-level DP needs).
    case uniform
}

/// What every update and sum says about where it came from. Files that disagree on any
/// of these cannot be added up.
public struct UpdateHeader: Sendable, Equatable {
    public var config: ModelConfig
    /// Identity (header SHA-256) of the model the clients trained from.
    public var baseModel: String
    /// That model's round.
    public var round: Int
    /// What the rows hold: SGD parameter deltas or least-squares statistics.
    public var algorithm: UpdateAlgorithm
    /// How client contributions were weighted.
    public var weighting: ContributionWeighting
    /// Number of client contributions summed.
    public var clients: Int
    /// Sum of the clients' weights.
    public var weight: Double
    /// Clip norm applied to each client's contribution (0: none).
    public var clip: Double = 0
    /// Number of clients whose contribution was scaled down by clipping.
    public var clipped: Int = 0
    /// Poisson sampling rate q of the round (`PoissonSampling`), nil when every client took part.
    public var sampleRate: Double?
    /// Clients that could have been sampled (every client of the shards summed), with sampling.
    public var population: Int = 0
    /// Identities of the shards whose clients are summed (`ShardOrigin.identity`),
    /// ascending; empty for files written before format version 3. Sums refuse to count
    /// a shard twice.
    public var shards: [String] = []
    /// Other metadata carried along unchanged (noise, sampling), only if all inputs agree.
    public var extra: [String: String] = [:]

    public init(config: ModelConfig, baseModel: String, round: Int, algorithm: UpdateAlgorithm, weighting: ContributionWeighting, clients: Int, weight: Double) {
        self.config = config
        self.baseModel = baseModel
        self.round = round
        self.algorithm = algorithm
        self.weighting = weighting
        self.clients = clients
        self.weight = weight
    }
}

/// A shard's update or a sum of updates, in sparse form: only item rows some client
/// touched are stored, each with the number of clients that touched it and their total
/// weight, so the server can average a row over the clients that actually trained it.
///
/// Sums are associative and commutative (up to float rounding), so a reduction can be a
/// tree: shard → rack → total.
public struct ModelUpdate: Sendable {
    public var header: UpdateHeader
    /// Touched item rows, ascending.
    public var rows: [Int32]
    /// Clients that touched each row.
    public var rowClients: [Int32]
    /// Total weight of the clients that touched each row.
    public var rowWeight: [Float]
    /// Per-row tensors (e.g. `item_embedding` deltas, width d).
    public var rowTensors: [String: RowTensor]
    /// Dense tensors (e.g. `global_bias`), summed element-wise.
    public var dense: [String: [Float]]

    public init(header: UpdateHeader, rows: [Int32] = [], rowClients: [Int32] = [], rowWeight: [Float] = [],
                rowTensors: [String: RowTensor] = [:], dense: [String: [Float]] = [:]) {
        self.header = header
        self.rows = rows
        self.rowClients = rowClients
        self.rowWeight = rowWeight
        self.rowTensors = rowTensors
        self.dense = dense
    }

    static let rowsName = "rows"
    static let rowClientsName = "row_clients"
    static let rowWeightName = "row_weight"
    static let rowPrefix = "rows."
    static let densePrefix = "dense."
    /// Dense tensors whose name starts with this are statistics the clients sent beside
    /// their deltas (summed as the deltas are), not changes of a parameter.
    public static let statisticsPrefix = "stat."

    /// Writes the update (`kind` update for one shard, sum for a combination).
    /// - Parameter spilled: row tensors too large to hold, computed aside in ascending row
    ///   order (`SpilledTensor`, finished), with their widths; they are not in `rowTensors`.
    @discardableResult
    public func write(to path: String, kind: FileKind, spilled: [String: (width: Int, tensor: SpilledTensor)] = [:]) throws -> String {
        let bytes = try writer(kind: kind, spilled: spilled).write(to: path, durable: false)
        return bytes.withUnsafeBytes { sha256Hex($0) }
    }

    /// The file's contents, ready to be written (`write(to:kind:)` writes them at once).
    public func writer(kind: FileKind, spilled: [String: (width: Int, tensor: SpilledTensor)] = [:]) -> SafeTensorsWriter {
        var writer = headerWriter(kind: kind)
        // ALS statistics are large: chunked, so a reader verifies them as it streams them.
        writer.chunkedChecksum = header.algorithm == .als
        writer.add(Self.rowsName, shape: [rows.count], int32s: rows)
        writer.add(Self.rowClientsName, shape: [rows.count], int32s: rowClients)
        writer.add(Self.rowWeightName, shape: [rows.count], floats: rowWeight)
        for (name, tensor) in rowTensors {
            writer.add(Self.rowPrefix + name, shape: [rows.count, tensor.width], floats: tensor.values)
        }
        for (name, tensor) in spilled {
            precondition(tensor.tensor.count == rows.count * tensor.width, "spilled tensor \(name) does not fit its rows")
            writer.add(Self.rowPrefix + name, shape: [rows.count, tensor.width], spilled: tensor.tensor)
        }
        for (name, values) in dense { writer.add(Self.densePrefix + name, shape: [values.count], floats: values) }
        precondition(spilled.isEmpty || writer.chunkedChecksum, "spilled tensors need the chunked checksum")
        return writer
    }

    /// A writer holding the header's metadata and no tensor yet (`kind` update or sum).
    func headerWriter(kind: FileKind) -> SafeTensorsWriter {
        var metadata = header.extra.merging(header.config.metadata) { _, new in new }
        metadata["format"] = FedRecFormat.name
        metadata["format_version"] = String(FedRecFormat.version)
        metadata["kind"] = kind.rawValue
        metadata["base_model"] = header.baseModel
        metadata["round"] = String(header.round)
        metadata["algorithm"] = header.algorithm.rawValue
        metadata["weighting"] = header.weighting.rawValue
        metadata["clients"] = String(header.clients)
        metadata["weight"] = "\(header.weight)"
        metadata["clip"] = "\(header.clip)"
        metadata["clipped"] = String(header.clipped)
        if let q = header.sampleRate {
            metadata["sample_rate"] = "\(q)"
            metadata["population"] = String(header.population)
        } else if header.population > 0 {
            metadata["population"] = String(header.population)  // private ALS: every client takes part
        }
        if !header.shards.isEmpty { metadata[UpdateHeader.shardsKey] = header.shards.joined(separator: ",") }
        return SafeTensorsWriter(metadata: metadata)
    }

    /// Reads and checks an update or sum.
    public static func load(_ path: String) throws -> ModelUpdate {
        try open(path).update
    }

    /// Reads and checks an update or sum, with the identity of its file.
    public static func open(_ path: String) throws -> (update: ModelUpdate, identity: String) {
        try read(FedRecFile(path: path, kinds: [.update, .sum]))
    }

    /// Reads and checks the header of an update or sum: every count and rate in range.
    public static func header(of file: FedRecFile) throws -> UpdateHeader {
        let config = try ModelConfig(file: file)
        let maximum = FedRecFile.maximumCount
        var header = UpdateHeader(
            config: config, baseModel: try file.string("base_model"), round: try file.int("round", in: 0...FedRecFile.maximumRound),
            algorithm: try file.enumValue("algorithm"), weighting: try file.enumValue("weighting"),
            clients: try file.int("clients", in: 0...maximum), weight: try file.double("weight", in: 0...Double.greatestFiniteMagnitude))
        header.clip = file.metadata["clip"] == nil ? 0 : try file.double("clip", in: 0...Double.greatestFiniteMagnitude)
        header.clipped = file.metadata["clipped"] == nil ? 0 : try file.int("clipped", in: 0...header.clients)
        if file.metadata["sample_rate"] != nil {
            header.sampleRate = try file.double("sample_rate", in: Double.leastNonzeroMagnitude...1)
            header.population = try file.int("population", in: 0...maximum)
        } else if file.metadata["population"] != nil {
            header.population = try file.int("population", in: 0...maximum)
        }
        if let list = file.metadata[UpdateHeader.shardsKey] {
            let shards = list.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard shards.allSatisfy({ $0.utf8.count == 64 && $0.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) } }),
                zip(shards, shards.dropFirst()).allSatisfy({ $0 < $1 })
            else { throw FedRecError(.corrupt, file: file.path, "metadata \(UpdateHeader.shardsKey) is not an ascending list of shard identities") }
            header.shards = shards
        }
        let reserved: Set<String> = [
            "format", "format_version", "kind", "checksum", "header_checksum", "model_type", "objective", "dim", "items", "dataset_id",
            "base_model", "round", "algorithm", "weighting", "clients", "weight", "clip", "clipped", "sample_rate", "population",
            UpdateHeader.shardsKey, UpdateCompression.key, ClientVectorLayout.rowsKey, ClientVectorLayout.denseKey,
        ]
        header.extra = file.metadata.filter { !reserved.contains($0.key) }
        return header
    }

    /// Reads and checks an update or sum from a verified fedrec file.
    public static func read(_ file: FedRecFile) throws -> (update: ModelUpdate, identity: String) {
        let path = file.path
        let header = try header(of: file)
        if file.metadata[UpdateCompression.key] != nil {
            guard file.kind == .update else { throw FedRecError(.corrupt, file: path, "a \(file.kind.rawValue) marked compressed: only a shard's update is") }
            return (try CompressedUpdate.decode(file, header: header), file.tensors.identity)
        }
        let tensors = file.tensors
        let (rows, rowClients, rowWeight) = try rowIndex(tensors, header: header)
        let n = rows.count
        var update = ModelUpdate(header: header, rows: rows, rowClients: rowClients, rowWeight: rowWeight)
        for (name, info) in tensors.tensors {
            if name.hasPrefix(rowPrefix) {
                guard info.shape.count == 2, info.shape[0] == n else {
                    throw FedRecError(.shape, file: path, "tensor \(name) has shape \(info.shape), expected [\(n), width]")
                }
                update.rowTensors[String(name.dropFirst(rowPrefix.count))] = RowTensor(width: info.shape[1], values: try tensors.floats(name))
            } else if name.hasPrefix(densePrefix) {
                update.dense[String(name.dropFirst(densePrefix.count))] = try tensors.floats(name)
            }
        }
        if (Int(file.metadata["format_version"] ?? "") ?? FedRecFormat.version) < 4 {
            update = try ALSStatistics.packingLegacyGram(update, file: path)
        }
        return (update, tensors.identity)
    }

    /// The checked `rows`, `row_clients` and `row_weight` of an update or sum: rows in the
    /// model's catalogue and strictly ascending, counts within the clients summed.
    static func rowIndex(_ tensors: SafeTensorsFile, header: UpdateHeader) throws -> (rows: [Int32], clients: [Int32], weights: [Float]) {
        let path = tensors.path, items = header.config.items
        let rows = try tensors.int32s(rowsName)
        let n = rows.count
        try tensors.require(rowsName, .i32, [n])
        try tensors.require(rowClientsName, .i32, [n])
        try tensors.require(rowWeightName, .f32, [n])
        for i in 0..<n {
            guard rows[i] >= 0 && Int(rows[i]) < items else {
                throw FedRecError(.shape, file: path, "row \(rows[i]) is outside the model's \(items) items")
            }
            guard i == 0 || rows[i - 1] < rows[i] else { throw FedRecError(.corrupt, file: path, "rows are not strictly ascending") }
        }
        let rowClients = try tensors.int32s(rowClientsName)
        // Each row was touched by at most every client summed: sums of counts cannot overflow.
        if let bad = rowClients.first(where: { $0 < 0 || Int($0) > header.clients }) {
            throw FedRecError(.corrupt, file: path, "row_clients holds \(bad), outside 0...\(header.clients) (the clients summed)")
        }
        return (rows, rowClients, try tensors.floats(rowWeightName))
    }

    /// Adds `other` to this update. Both must come from the same model, round, algorithm
    /// and weighting, and hold the same tensors.
    /// - Complexity: O(rows of both), a merge of the sorted row lists.
    public mutating func add(_ other: ModelUpdate, file: String) throws {
        var mergedHeader = header
        try mergedHeader.add(other.header, file: file)
        guard Set(rowTensors.keys) == Set(other.rowTensors.keys), Set(dense.keys) == Set(other.dense.keys) else {
            throw FedRecError(.shape, file: file, "holds tensors \((other.rowTensors.keys.map { "rows." + $0 } + other.dense.keys.map { "dense." + $0 }).sorted()), which do not match")
        }
        for (name, tensor) in rowTensors where other.rowTensors[name]!.width != tensor.width {
            throw FedRecError(.shape, file: file, "tensor rows.\(name) has width \(other.rowTensors[name]!.width), expected \(tensor.width)")
        }
        for (name, values) in dense where other.dense[name]!.count != values.count {
            throw FedRecError(.shape, file: file, "tensor dense.\(name) has \(other.dense[name]!.count) values, expected \(values.count)")
        }
        // Merge rows.
        var merged: [Int32] = []
        merged.reserveCapacity(rows.count + other.rows.count)
        var fromSelf: [Int] = [], fromOther: [Int] = []  // positions in merged
        fromSelf.reserveCapacity(rows.count)
        fromOther.reserveCapacity(other.rows.count)
        var i = 0, j = 0
        while i < rows.count || j < other.rows.count {
            if j == other.rows.count || (i < rows.count && rows[i] < other.rows[j]) {
                fromSelf.append(merged.count); merged.append(rows[i]); i += 1
            } else if i == rows.count || other.rows[j] < rows[i] {
                fromOther.append(merged.count); merged.append(other.rows[j]); j += 1
            } else {
                fromSelf.append(merged.count); fromOther.append(merged.count); merged.append(rows[i]); i += 1; j += 1
            }
        }
        func scatter<T: Numeric>(_ mine: [T], _ theirs: [T], width: Int) -> [T] {
            var out = [T](repeating: 0, count: merged.count * width)
            out.withUnsafeMutableBufferPointer { o in
                mine.withUnsafeBufferPointer { m in
                    for (r, p) in fromSelf.enumerated() { for k in 0..<width { o[p * width + k] += m[r * width + k] } }
                }
                theirs.withUnsafeBufferPointer { t in
                    for (r, p) in fromOther.enumerated() { for k in 0..<width { o[p * width + k] += t[r * width + k] } }
                }
            }
            return out
        }
        rowClients = scatter(rowClients, other.rowClients, width: 1)
        rowWeight = scatter(rowWeight, other.rowWeight, width: 1)
        for (name, tensor) in rowTensors {
            rowTensors[name] = RowTensor(width: tensor.width, values: scatter(tensor.values, other.rowTensors[name]!.values, width: tensor.width))
        }
        for (name, values) in dense {
            let theirs = other.dense[name]!
            dense[name] = zip(values, theirs).map { $0 + $1 }
        }
        rows = merged
        header = mergedHeader
    }

    /// The sum of updates read from `paths`, added in the order of their identities so
    /// the result does not depend on the order the files were named in.
    ///
    /// Streams: a first pass reads only each file's header (its identity, and the shards
    /// it holds) to order them and refuse duplicates; the second reads and adds one update
    /// at a time, so memory follows the sum, not the number of inputs.
    /// - Throws: `.usage` (64) when two paths name one file (a hard link too), or two
    ///   files are one update (the same identity); `.mismatch` (86) when two inputs hold
    ///   the same shard's clients; what reading and adding them throws.
    public static func sum(paths: [String]) throws -> ModelUpdate {
        guard !paths.isEmpty else { throw FedRecError(.emptyInput, "no updates to aggregate") }
        let order = try plan(paths: paths)
        func load(_ entry: (path: String, opened: SafeTensorsFile?)) throws -> ModelUpdate {
            // stdin cannot be read twice: its file stays open from the first pass.
            let file = try entry.opened ?? SafeTensorsFile(path: entry.path)
            return try read(FedRecFile(file: file, kinds: [.update, .sum])).update
        }
        var total = try load(order[0])
        for entry in order.dropFirst() { try total.add(try load(entry), file: entry.path) }
        return total
    }

    /// The order in which `sum(paths:)` adds `paths` (by identity, then path), after
    /// refusing duplicates; reads headers only.
    static func plan(paths: [String]) throws -> [(path: String, opened: SafeTensorsFile?)] {
        var files: [FileNode: String] = [:]
        var identities: [String: String] = [:]
        var shards: [String: String] = [:]
        var entries: [(identity: String, path: String, opened: SafeTensorsFile?)] = []
        for path in paths {
            if let id = FileNode(path: path) {
                if let earlier = files[id] {
                    throw FedRecError(.usage, file: path, "names the same file as \(earlier): each update is summed once")
                }
                files[id] = path
            }
            let file = try SafeTensorsFile(path: path)
            let identity = file.identity
            if let earlier = identities[identity] {
                throw FedRecError(.usage, file: path, "is the same update as \(earlier) (identity \(identity.prefix(12))…): each update is summed once")
            }
            identities[identity] = path
            // The header only: the tensor checksums are verified when the update is added.
            let header = try header(of: FedRecFile(file: file, kinds: [.update, .sum], verifyChecksum: false))
            for shard in header.shards {
                if let earlier = shards[shard] {
                    throw FedRecError(.mismatch, file: path, "holds the clients of shard \(shard.prefix(12))…, which \(earlier) holds too: each shard is summed once")
                }
                shards[shard] = path
            }
            entries.append((identity, path, path == "-" ? file : nil))
        }
        entries.sort { ($0.identity, $0.path) < ($1.identity, $1.path) }
        return entries.map { ($0.path, $0.opened) }
    }
}

extension UpdateHeader {
    /// Adds the header of another update to this sum's: both must come from the same
    /// model, round, algorithm, weighting, clip and sampling, neither noised, and no shard
    /// in both. Counts and weights add up; `extra` keeps what both agree on.
    public mutating func add(_ b: UpdateHeader, file: String) throws {
        let a = self
        try a.config.requireSame(b.config, file: file)
        guard a.baseModel == b.baseModel else {
            throw FedRecError(.mismatch, file: file, "was computed from model \(b.baseModel.prefix(12)), not \(a.baseModel.prefix(12))")
        }
        guard a.round == b.round else { throw FedRecError(.mismatch, file: file, "is from round \(b.round), expected round \(a.round)") }
        guard a.algorithm == b.algorithm, a.weighting == b.weighting else {
            throw FedRecError(.mismatch, file: file, "is a \(b.algorithm)/\(b.weighting) update, expected \(a.algorithm)/\(a.weighting)")
        }
        guard a.clip == b.clip else { throw FedRecError(.mismatch, file: file, "was clipped at \(b.clip), expected \(a.clip)") }
        guard a.sampleRate == b.sampleRate else {
            throw FedRecError(.mismatch, file: file, "was sampled at rate \(b.sampleRate.map { "\($0)" } ?? "none"), expected \(a.sampleRate.map { "\($0)" } ?? "none")")
        }
        guard a.extra[DPMetadata.mechanism] == nil, b.extra[DPMetadata.mechanism] == nil else {
            throw FedRecError(.mismatch, file: file, "a noised sum is final: apply it with fl-aggregate --model, do not add it to other updates")
        }
        if let twice = Set(a.shards).intersection(b.shards).min() {
            throw FedRecError(.mismatch, file: file, "holds the clients of shard \(twice.prefix(12))… a second time: it is already in the sum")
        }
        guard a.clients <= FedRecFile.maximumCount - b.clients else {
            throw FedRecError(.corrupt, file: file, "sums more than \(FedRecFile.maximumCount) clients")
        }
        clients += b.clients
        weight += b.weight
        clipped += b.clipped
        population += b.population
        shards = (a.shards + b.shards).sorted()
        extra = extra.filter { b.extra[$0.key] == $0.value }
    }
}

extension UpdateHeader {
    /// Throws unless this sum (`sumFile`) was computed from the model at `modelPath`:
    /// its configuration, identity and round.
    /// - Throws: `.shape` or `.mismatch` for another dataset or shape, `.mismatch` for
    ///   another model or round.
    public func requireComputed(from config: ModelConfig, identity: String, round: Int, modelPath: String, sumFile: String) throws {
        try config.requireSame(self.config, file: sumFile)
        guard baseModel == identity else {
            throw FedRecError(.mismatch, file: sumFile, "was computed from model \(baseModel.prefix(12)), but \(modelPath) is \(identity.prefix(12))")
        }
        guard self.round == round else {
            throw FedRecError(.mismatch, file: sumFile, "is from round \(self.round), the model is at round \(round)")
        }
    }
}

extension UpdateHeader {
    /// Metadata key of the shards an update or sum holds (comma-separated identities).
    public static let shardsKey = "shards"
}

extension ModelUpdate {
    /// What `fl-aggregate --json` reports of a sum written at `path`.
    public func summary(path: String) -> JSONValue {
        .object(["sum": .string(path), "clients": .number(Double(header.clients)), "weight": .number(header.weight),
                 "rows": .number(Double(rows.count))])
    }
}
