import Testing
import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecTestSupport
import FedRecWire

@Suite("co-occurrence statistics (ItemPairSum)")
struct ItemPairSumTests {
    func header(shard: String, clients: Int) -> UpdateHeader {
        var h = UpdateHeader(config: ModelConfig(family: .gfcf, objective: .filter, dim: 2, items: 4, datasetId: "d"), baseModel: "m", round: 0,
                             algorithm: .cooccurrence, weighting: .uniform, clients: clients, weight: Double(clients))
        h.shards = [String(repeating: shard, count: 64)]
        return h
    }

    /// The upper triangle as (row, column) → value.
    func entries(_ s: ItemPairSum) -> [[Int]: Double] {
        var out: [[Int]: Double] = [:]
        for i in 0..<4 { for e in s.offsets[i]..<s.offsets[i + 1] { out[[i, Int(s.columns[e])]] = s.values[e] } }
        return out
    }

    @Test("users {0, 1}, {1, 2, 3} and {0}: each pair's Σ 1/d_u and the item counts, worked by hand")
    func byHand() {
        let s = ItemPairSum(header: header(shard: "a", clients: 3), users: [[0, 1], [1, 2, 3], [0]])
        let third = 1.0 / 3
        let expected: [[Int]: Double] = [
            [0, 0]: 1.5, [0, 1]: 0.5, [1, 1]: 0.5 + third, [1, 2]: third, [1, 3]: third, [2, 2]: third, [2, 3]: third, [3, 3]: third,
        ]
        #expect(entries(s).keys.sorted { $0.lexicographicallyPrecedes($1) } == expected.keys.sorted { $0.lexicographicallyPrecedes($1) })
        for (key, value) in expected { #expect(abs((entries(s)[key] ?? -1) - value) < 1e-15, "\(key)") }
        #expect(s.itemCount == [2, 2, 1, 1])
    }

    @Test("two shards added equal one shard of all their users; written and read back unchanged")
    func addAndRoundTrip() throws {
        let all: [[Int32]] = [[0, 1], [1, 2, 3], [0], [0, 3], [2]]
        var left = ItemPairSum(header: header(shard: "a", clients: 2), users: Array(all.prefix(2)))
        let right = ItemPairSum(header: header(shard: "b", clients: 3), users: Array(all.dropFirst(2)))
        try left.add(right, file: "right")
        let whole = ItemPairSum(header: header(shard: "a", clients: 5), users: all)
        #expect(entries(left).count == entries(whole).count)
        for (key, value) in entries(whole) { #expect(abs((entries(left)[key] ?? -1) - value) < 1e-15, "\(key)") }
        #expect(left.itemCount == whole.itemCount && left.header.clients == 5 && left.header.shards.count == 2)
        // The same shard twice is refused.
        var again = left
        #expect(throws: FedRecError.self) { try again.add(right, file: "right") }
        let dir = try TemporaryDirectory()
        try left.write(to: dir.path + "/s", kind: .sum)
        let read = try ItemPairSum.read(FedRecFile(path: dir.path + "/s", kinds: [.sum]))
        #expect(read.offsets == left.offsets && read.columns == left.columns && read.values == left.values && read.itemCount == left.itemCount)
        #expect(try ItemPairSum.isPairSum(dir.path + "/s"))
    }
}
