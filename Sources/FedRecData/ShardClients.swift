import FedRecSupport

/// The clients of a shard, for tools that speak for each of them (secure aggregation's
/// cross-device groups: one party per client).
public enum ShardClients {
    /// The distinct client indices of the shard at `path`, in shard order, each as a
    /// non-negative id.
    public static func clients(of path: String) throws -> [UInt32] {
        let reader = try ShardUserReader(path: path)
        var clients = [UInt32]()
        var seen = Set<Int32>()
        while let record = try reader.next() {
            if seen.insert(record.client).inserted { clients.append(UInt32(bitPattern: record.client)) }
        }
        guard !clients.isEmpty else { throw FedRecError(.emptyInput, file: path, "the shard holds no clients") }
        return clients
    }
}
