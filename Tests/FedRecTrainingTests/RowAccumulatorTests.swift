import Testing
@testable import FedRecTraining

@Suite("row sums of many clients")
struct RowAccumulatorTests {
    @Test("a client's rows added at once sum, count and order as added row by row")
    func clientAtOnce() {
        let width = 3
        // Three clients, rows in any order; rows 4 and 1 touched by more than one.
        let clients: [(rows: [Int32], weight: Float)] = [([4, 0, 7], 2), ([1, 4], 0.5), ([9, 1, 4, 2], 3)]
        let byRow = RowAccumulator(items: 10, width: width), atOnce = RowAccumulator(items: 10, width: width)
        for (c, client) in clients.enumerated() {
            let values = (0..<(client.rows.count * width)).map { Float(($0 + 5 * c) % 7) / 3 - 0.9 }
            values.withUnsafeBufferPointer { all in
                for (i, row) in client.rows.enumerated() {
                    let slot = byRow.slot(row)
                    byRow.countClient(slot: slot, weight: client.weight)
                    byRow.add(slot: slot, UnsafeBufferPointer(rebasing: all[(i * width)..<((i + 1) * width)]), scale: client.weight)
                }
                atOnce.addClient(rows: client.rows, all, weight: client.weight, scale: client.weight)
            }
        }
        #expect(atOnce.rows == [4, 0, 7, 1, 9, 2])
        #expect(atOnce.rows == byRow.rows)
        #expect(atOnce.clients == [3, 1, 1, 2, 1, 1])
        #expect(atOnce.weights == byRow.weights)
        #expect(atOnce.weights == [5.5, 2, 2, 3.5, 3, 3])
        #expect(atOnce.values.map(\.bitPattern) == byRow.values.map(\.bitPattern))
        // Row 0 (slot 1), touched by the first client only: 2 × its values 1…3 of that client.
        #expect(Array(atOnce.values[3..<6]) == [2 * (Float(3) / 3 - 0.9), 2 * (Float(4) / 3 - 0.9), 2 * (Float(5) / 3 - 0.9)])
    }
}
