/// Each item's number of training interactions over `shards`, in one pass over every
/// user: the popularity baseline's scores and the counts that shrink explicit item biases.
/// - Throws: the shards' read errors, `.mismatch` for a shard of another dataset.
public func trainingInteractionCounts(shards: [String], datasetId: String, items: Int) throws -> [Int] {
    var counts = [Int](repeating: 0, count: items)
    for shard in shards {
        let reader = try ShardUserReader(path: shard, datasetId: datasetId, items: items)
        while let record = try reader.next() { for item in record.train.items { counts[Int(item)] += 1 } }
    }
    return counts
}
