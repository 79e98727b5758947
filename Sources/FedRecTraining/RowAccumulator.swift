#if canImport(Glibc)
import Glibc
#endif
import FedRecWire

/// Sums per-item-row contributions of many clients in compact storage: a slot per
/// touched row, found through an index over the catalogue whose pages the kernel zeroes
/// lazily, so the cost grows with the rows touched, not with the number of items.
final class RowAccumulator {
    let items: Int
    let width: Int
    private let slotOf: UnsafeMutablePointer<Int32>  // slot + 1, 0 = untouched
    private(set) var rows: [Int32] = []
    private(set) var values: [Float] = []
    private(set) var clients: [Int32] = []
    private(set) var weights: [Float] = []

    init(items: Int, width: Int) {
        self.items = items
        self.width = width
        slotOf = calloc(max(items, 1), MemoryLayout<Int32>.stride)!.assumingMemoryBound(to: Int32.self)
    }

    deinit { free(slotOf) }

    /// The slot of `row`, created zeroed on first use.
    @inline(__always)
    func slot(_ row: Int32) -> Int {
        let existing = Int(slotOf[Int(row)])
        if existing > 0 { return existing - 1 }
        let s = rows.count
        rows.append(row)
        clients.append(0)
        weights.append(0)
        values.append(contentsOf: repeatElement(0, count: width))
        slotOf[Int(row)] = Int32(s + 1)
        return s
    }

    /// Empties the accumulator for the next client (secure aggregation trains each client
    /// apart): O(rows touched), the catalogue's index is cleared only where it was set.
    func reset() {
        for row in rows { slotOf[Int(row)] = 0 }
        rows.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        clients.removeAll(keepingCapacity: true)
        weights.removeAll(keepingCapacity: true)
    }

    /// Counts one client (with `weight`) as having touched the row at `slot`.
    @inline(__always)
    func countClient(slot: Int, weight: Float) {
        clients[slot] += 1
        weights[slot] += weight
    }

    /// Adds `scale * contribution` into the slot's values.
    @inline(__always)
    func add(slot: Int, _ contribution: UnsafeBufferPointer<Float>, scale: Float) {
        values.withUnsafeMutableBufferPointer { v in
            let base = slot * width
            for k in 0..<width { v[base + k] += scale * contribution[k] }
        }
    }

    /// Adds one client's contribution to each of `touched` (distinct rows): row i gets
    /// `scale` times values `i * width ..< (i + 1) * width` of `contributions` and counts
    /// the client with `weight`. The same sums as `slot`, `countClient` and
    /// `add(slot:_:scale:)` row by row; the buffers are swapped out of the class for the
    /// loop, so no row pays the dynamic exclusivity checks of class-property accesses.
    func addClient(rows touched: [Int32], _ contributions: UnsafeBufferPointer<Float>, weight: Float, scale: Float) {
        precondition(contributions.count == touched.count * width, "one row of contributions per touched row")
        var rows: [Int32] = [], values: [Float] = [], clients: [Int32] = [], weights: [Float] = []
        swap(&rows, &self.rows); swap(&values, &self.values); swap(&clients, &self.clients); swap(&weights, &self.weights)
        // Slots and counts first, then every row's values in one pass over one buffer.
        for row in touched {
            var s = Int(slotOf[Int(row)]) - 1
            if s < 0 {
                s = rows.count
                rows.append(row)
                clients.append(0)
                weights.append(0)
                slotOf[Int(row)] = Int32(s + 1)
            }
            clients[s] += 1
            weights[s] += weight
        }
        values.append(contentsOf: repeatElement(0, count: rows.count * width - values.count))
        values.withUnsafeMutableBufferPointer { v in
            guard let values = v.baseAddress, let from = contributions.baseAddress else { return }
            for (i, row) in touched.enumerated() {
                // Row pointers: no overflow check per value, so the loop vectorises.
                let to = values + (Int(slotOf[Int(row)]) - 1) * width, source = from + i * width
                for k in 0..<width { to[k] += scale * source[k] }
            }
        }
        swap(&rows, &self.rows); swap(&values, &self.values); swap(&clients, &self.clients); swap(&weights, &self.weights)
    }

    /// Direct access to a slot's values for in-place accumulation.
    @inline(__always)
    func withSlot<R>(_ slot: Int, _ body: (UnsafeMutableBufferPointer<Float>) -> R) -> R {
        values.withUnsafeMutableBufferPointer { v in
            body(UnsafeMutableBufferPointer(rebasing: v[(slot * width)..<((slot + 1) * width)]))
        }
    }

    /// The touched rows in ascending order with their values, split into named tensors
    /// of the given widths (which must add up to `width`).
    func sortedTensors(split: [(name: String, width: Int)]) -> (rows: [Int32], clients: [Int32], weights: [Float], tensors: [String: RowTensor]) {
        let order = rows.indices.sorted { rows[$0] < rows[$1] }
        var tensors: [String: RowTensor] = [:]
        var offset = 0
        for (name, w) in split {
            var out = [Float](repeating: 0, count: order.count * w)
            for (to, from) in order.enumerated() {
                for k in 0..<w { out[to * w + k] = values[from * width + offset + k] }
            }
            tensors[name] = RowTensor(width: w, values: out)
            offset += w
        }
        precondition(offset == width)
        return (order.map { rows[$0] }, order.map { clients[$0] }, order.map { weights[$0] }, tensors)
    }
}
