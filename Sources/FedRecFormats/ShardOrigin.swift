/// Which shard a file was made from: state files and updates record it (metadata
/// `shard_identity` and `shard`, format version 3), so a state is only ever used with its
/// own shard and `fl-aggregate` can tell two updates of one shard apart from two shards.
public struct ShardOrigin: Sendable, Equatable {
    /// The shard's identity: SHA-256 (hex) of its `__shard__.json` bytes (which name its
    /// dataset and index).
    public var identity: String
    /// The shard's index in its dataset, when its header says.
    public var index: Int?

    public init(identity: String, index: Int?) {
        self.identity = identity
        self.index = index
    }

    /// Metadata key of the identity.
    public static let identityKey = "shard_identity"
    /// Metadata key of the index.
    public static let indexKey = "shard"

    /// The metadata recording this origin.
    public var metadata: [String: String] {
        var out = [Self.identityKey: identity]
        if let index { out[Self.indexKey] = String(index) }
        return out
    }

    /// The origin a file records, nil when it records none (files before version 3).
    public init?(metadata: [String: String]) {
        guard let identity = metadata[Self.identityKey] else { return nil }
        self.identity = identity
        index = metadata[Self.indexKey].flatMap { Int($0) }
    }

    /// "shard 3 (identity 1a2b3c4d5e6f…)", for messages.
    public var description: String {
        (index.map { "shard \($0)" } ?? "a shard") + " (identity \(identity.prefix(12))…)"
    }
}
