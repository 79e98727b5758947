import FedRecFormats
import FedRecSupport

/// Private per-user parameters of one shard: user embeddings p_u and user biases b_u.
/// They stay on the client side (the shard's state file) and never appear in an update.
public struct UserState: Sendable {
    public let dim: Int
    /// Dense user indices, ascending.
    public private(set) var users: [Int32]
    public var embedding: [Float]
    public var bias: [Float]
    /// Error feedback (`fl-train-local --compress topk:…`): what each client's compressed
    /// updates have not sent yet, by client index, over the flat index space of
    /// `SparseVector` of length `residualLength`. Client-side state like the user
    /// parameters: it never appears in an update.
    public var residuals: [Int32: SparseVector] = [:]
    /// The flat length the residuals index (`ClientVectorLayout.length`: items · (d + 1) + 1
    /// for an MF SGD update, items · d + the tower's values for NCF).
    public var residualLength = 0
    private var slot: [Int32: Int]

    /// A state of `users` (distinct; a repeated one is a programming error: `load` checks a
    /// file's), every parameter 0.
    public init(dim: Int, users: [Int32] = []) {
        self.dim = dim
        self.users = users.sorted()
        embedding = [Float](repeating: 0, count: users.count * dim)
        bias = [Float](repeating: 0, count: users.count)
        slot = Dictionary(uniqueKeysWithValues: self.users.enumerated().map { ($1, $0) })
    }

    /// The row of `user`, if this state holds one.
    public func row(of user: Int32) -> Int? { slot[user] }

    /// Stores one user's parameters, adding the user if new.
    public mutating func set(user: Int32, embedding vector: UnsafeBufferPointer<Float>, bias value: Float) {
        precondition(vector.count == dim)
        let r: Int
        if let existing = slot[user] {
            r = existing
        } else {
            r = users.count
            users.append(user)
            embedding.append(contentsOf: repeatElement(0, count: dim))
            bias.append(0)
            slot[user] = r
        }
        for k in 0..<dim { embedding[r * dim + k] = vector[k] }
        bias[r] = value
    }

    /// Writes the state file (rows sorted by user so equal states give equal bytes).
    /// - Parameter shard: the shard the state belongs to, recorded so that `load` refuses
    ///   the state for any other shard.
    public func write(to path: String, config: ModelConfig, round: Int, shard: ShardOrigin? = nil) throws {
        let order = users.indices.sorted { users[$0] < users[$1] }
        var sortedEmbedding = [Float](repeating: 0, count: embedding.count)
        for (to, from) in order.enumerated() {
            for k in 0..<dim { sortedEmbedding[to * dim + k] = embedding[from * dim + k] }
        }
        var metadata = config.metadata
        metadata["format"] = FedRecFormat.name
        metadata["format_version"] = String(FedRecFormat.version)
        metadata["kind"] = FileKind.state.rawValue
        metadata["round"] = String(round)
        if let shard { metadata.merge(shard.metadata) { _, new in new } }
        var writer = SafeTensorsWriter(metadata: metadata)
        writer.add(TensorName.users, shape: [users.count], int32s: order.map { users[$0] })
        writer.add(TensorName.userEmbedding, shape: [users.count, dim], floats: sortedEmbedding)
        writer.add(TensorName.userBias, shape: [users.count], floats: order.map { bias[$0] })
        if !residuals.isEmpty { try addResiduals(to: &writer, path: path) }
        try writer.write(to: path, durable: true)
    }

    static let residualClientsName = "residual.clients"
    static let residualOffsetsName = "residual.offsets"
    static let residualIndexName = "residual.index"
    static let residualValuesName = "residual.values"
    static let residualLengthKey = "residual_length"

    /// The residuals as four tensors: clients (ascending), offsets into the concatenated
    /// index and value tensors (clients + 1, from 0), indices and values.
    private func addResiduals(to writer: inout SafeTensorsWriter, path: String) throws {
        let clients = residuals.keys.sorted()
        var offsets = [Int64](), index = [Int32](), values = [Float]()
        offsets.reserveCapacity(clients.count + 1)
        offsets.append(0)
        for client in clients {
            guard let vector = residuals[client] else { continue }
            index.append(contentsOf: vector.index)
            values.append(contentsOf: vector.value)
            offsets.append(Int64(index.count))
        }
        guard index.count <= FedRecFile.maximumCount else {
            throw FedRecError(.usage, file: path, "error-feedback residuals of \(index.count) values do not fit one state file")
        }
        writer.metadata[Self.residualLengthKey] = String(residualLength)
        writer.add(Self.residualClientsName, shape: [clients.count], int32s: clients)
        writer.add(Self.residualOffsetsName, shape: [offsets.count], .i64(offsets))
        writer.add(Self.residualIndexName, shape: [index.count], int32s: index)
        writer.add(Self.residualValuesName, shape: [values.count], floats: values)
    }

    /// Reads the residuals of a state file, if it holds any: clients strictly ascending,
    /// offsets from 0 to the value count and non-decreasing, each client's indices strictly
    /// ascending within 0..<residual_length, values finite. Anything else is `.corrupt`.
    static func readResiduals(_ file: FedRecFile) throws -> (residuals: [Int32: SparseVector], length: Int) {
        let tensors = file.tensors
        guard tensors.tensors[residualClientsName] != nil else { return ([:], 0) }
        let path = file.path
        let length = try file.int(residualLengthKey, in: 1...FedRecFile.maximumCount)
        let clients = try tensors.int32s(residualClientsName)
        let offsets = try tensors.int32s(residualOffsetsName)
        let index = try tensors.int32s(residualIndexName)
        let values = try tensors.floats(residualValuesName)
        guard offsets.count == clients.count + 1, index.count == values.count, offsets.first == 0, offsets.last.map(Int.init) == index.count else {
            throw FedRecError(.corrupt, file: path, "error-feedback residual: \(clients.count) clients, \(offsets.count) offsets, \(index.count) indices and \(values.count) values do not fit together")
        }
        var residuals = [Int32: SparseVector]()
        for k in clients.indices {
            guard k == 0 || clients[k - 1] < clients[k] else {
                throw FedRecError(.corrupt, file: path, "error-feedback residual: clients are not strictly ascending")
            }
            let start = Int(offsets[k]), end = Int(offsets[k + 1])
            guard start <= end else { throw FedRecError(.corrupt, file: path, "error-feedback residual: offsets decrease") }
            for i in start..<end {
                guard index[i] >= 0, Int(index[i]) < length, i == start || index[i - 1] < index[i] else {
                    throw FedRecError(.corrupt, file: path, "error-feedback residual of client \(clients[k]): indices not strictly ascending within 0..<\(length)")
                }
                guard values[i].isFinite else {
                    throw FedRecError(.corrupt, file: path, "error-feedback residual of client \(clients[k]) holds \(values[i])")
                }
            }
            residuals[clients[k]] = SparseVector(index: Array(index[start..<end]), value: Array(values[start..<end]))
        }
        return (residuals, length)
    }

    /// Reads a state file and checks it belongs to `config`'s model and, when given, to
    /// the shard `shard` read from `shardPath`.
    /// - Throws: `.mismatch` (86) naming both files when the state records another shard
    ///   (or another dataset); a state that records no shard (written before format
    ///   version 3) is accepted.
    public static func load(_ path: String, config: ModelConfig, shard: ShardOrigin? = nil, shardPath: String = "the shard")
        throws -> (state: UserState, round: Int)
    {
        let file = try FedRecFile(path: path, kinds: [.state])
        try config.requireSame(try ModelConfig(file: file), file: path)
        if let shard, let recorded = ShardOrigin(metadata: file.metadata), recorded.identity != shard.identity {
            throw FedRecError(.mismatch, file: path, "is the state of \(recorded.description), not of \(shardPath), which is \(shard.description)")
        }
        let users = try file.tensors.int32s(TensorName.users)
        try file.tensors.require(TensorName.userEmbedding, .f32, [users.count, config.dim])
        try file.tensors.require(TensorName.userBias, .f32, [users.count])
        // Checked before the state is built: its index of users takes each once.
        guard zip(users, users.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw FedRecError(.corrupt, file: path, "users are not sorted and unique")
        }
        var state = UserState(dim: config.dim, users: users)
        state.embedding = try file.tensors.floats(TensorName.userEmbedding)
        state.bias = try file.tensors.floats(TensorName.userBias)
        (state.residuals, state.residualLength) = try readResiduals(file)
        return (state, try file.int("round", in: 0...FedRecFile.maximumRound))
    }
}

extension UserState {
    /// The conventional state file of a shard, `DIR/shard-00000.state.safetensors` for the
    /// shard `…/shard-00000.tar[.gz|.zst]` (what `fl-eval --state-dir` and `fl-rounds` use).
    public static func conventionalPath(directory: String, shard: String) -> String {
        var name = baseName(shard)
        for suffix in [".tar.gz", ".tgz", ".tar.zst", ".tzst", ".tar"] where name.hasSuffix(suffix) {
            name.removeLast(suffix.count)
            break
        }
        return directory + "/" + name + ".state.safetensors"
    }
}
