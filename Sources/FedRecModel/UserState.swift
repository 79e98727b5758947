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
    private var slot: [Int32: Int]

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
        try writer.write(to: path, durable: true)
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
        var state = UserState(dim: config.dim, users: users)
        guard state.users == users else { throw FedRecError(.corrupt, file: path, "users are not sorted and unique") }
        state.embedding = try file.tensors.floats(TensorName.userEmbedding)
        state.bias = try file.tensors.floats(TensorName.userBias)
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
