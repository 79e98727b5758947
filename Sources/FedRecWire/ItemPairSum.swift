import FedRecFormats
import FedRecModel
import FedRecSupport

/// A shard's share of a graph filter's statistics (`GraphFilterModel`), or a sum of them:
/// the item–item co-occurrence C = Σ_u r_u r_uᵀ / d_u over the users summed and their item
/// degrees d_i = Σ_u r_ui (update `algorithm` `cooccurrence`).
///
/// C is symmetric: only its upper triangle (j ≥ i) is stored, in compressed sparse rows
/// (`pairs.offset` I64 [items + 1], `pairs.item` I32, `pairs.value` F64), with
/// `item_count` F64 [items]. Values are F64 so a sum in any tree agrees with the flat sum
/// to rounding far below F32. Each user's share r_u r_uᵀ / d_u has Frobenius norm 1,
/// whatever the user's number of items.
///
/// The pairs a user touched are in the clear: a shard's update tells the server which
/// items its users saw together (for one user a shard, that user's items). Secure
/// aggregation of the dense items² triangle is not offered, nor DP.
public struct ItemPairSum: Sendable {
    public var header: UpdateHeader
    /// d_i summed over the users.
    public var itemCount: [Double]
    /// Row i's entries of the upper triangle are `columns[offsets[i] ..< offsets[i + 1]]`,
    /// strictly ascending and ≥ i.
    public var offsets: [Int]
    public var columns: [Int32]
    public var values: [Double]

    public static let countName = "item_count"
    public static let offsetName = "pairs.offset"
    public static let itemName = "pairs.item"
    public static let valueName = "pairs.value"

    public var pairs: Int { columns.count }

    /// The statistics of `users`, each the sorted, distinct item indices (below `items`)
    /// of one user; users with no items contribute nothing. Row by row through a dense
    /// accumulator, so each entry's terms are added in the users' order.
    /// - Complexity: O(Σ_u d_u² + items), memory 12 bytes a term.
    public init(header: UpdateHeader, users: [[Int32]]) {
        let n = header.config.items
        self.header = header
        var count = [Double](repeating: 0, count: n)
        var rowTerms = [Int](repeating: 0, count: n + 1)
        for items in users {
            for (p, item) in items.enumerated() {
                count[Int(item)] += 1
                rowTerms[Int(item) + 1] += items.count - p
            }
        }
        for i in 0..<n { rowTerms[i + 1] += rowTerms[i] }
        var termColumn = [Int32](repeating: 0, count: rowTerms[n])
        var termValue = [Double](repeating: 0, count: rowTerms[n])
        var cursor = rowTerms
        for items in users where !items.isEmpty {
            let w = 1 / Double(items.count)
            for (p, item) in items.enumerated() {
                let i = Int(item)
                for q in p..<items.count {
                    termColumn[cursor[i]] = items[q]
                    termValue[cursor[i]] = w
                    cursor[i] += 1
                }
            }
        }
        var accumulator = [Double](repeating: 0, count: n)
        var seen = [Bool](repeating: false, count: n)
        var touched: [Int32] = []
        var offsets = [0], columns: [Int32] = [], values: [Double] = []
        offsets.reserveCapacity(n + 1)
        for i in 0..<n {
            touched.removeAll(keepingCapacity: true)
            for e in rowTerms[i]..<rowTerms[i + 1] {
                let j = Int(termColumn[e])
                if !seen[j] { seen[j] = true; touched.append(termColumn[e]) }
                accumulator[j] += termValue[e]
            }
            touched.sort()
            for j in touched {
                columns.append(j)
                values.append(accumulator[Int(j)])
                accumulator[Int(j)] = 0
                seen[Int(j)] = false
            }
            offsets.append(columns.count)
        }
        itemCount = count
        self.offsets = offsets
        self.columns = columns
        self.values = values
    }

    init(header: UpdateHeader, itemCount: [Double], offsets: [Int], columns: [Int32], values: [Double]) {
        self.header = header
        self.itemCount = itemCount
        self.offsets = offsets
        self.columns = columns
        self.values = values
    }

    /// Writes the update (`kind` update for one shard, sum for a combination).
    /// - Returns: the file's identity.
    @discardableResult
    public func write(to path: String, kind: FileKind) throws -> String {
        var writer = ModelUpdate(header: header).headerWriter(kind: kind)
        writer.chunkedChecksum = true
        writer.add(Self.countName, shape: [itemCount.count], .f64(itemCount))
        writer.add(Self.offsetName, shape: [offsets.count], .i64(offsets.map { Int64($0) }))
        writer.add(Self.itemName, shape: [columns.count], int32s: columns)
        writer.add(Self.valueName, shape: [values.count], .f64(values))
        let bytes = try writer.write(to: path, durable: false)
        return bytes.withUnsafeBytes { sha256Hex($0) }
    }

    /// Whether the update or sum at `path` holds co-occurrence statistics (its header
    /// alone is read; nothing verified).
    public static func isPairSum(_ path: String) throws -> Bool {
        guard path != "-" else { return false }
        return try SafeTensorsFile(path: path).metadata["algorithm"] == UpdateAlgorithm.cooccurrence.rawValue
    }

    /// Reads and checks a co-occurrence update or sum: offsets ascending from 0, each
    /// row's columns strictly ascending from its own index and below the items, counts
    /// and values finite and non-negative.
    public static func read(_ file: FedRecFile) throws -> ItemPairSum {
        let path = file.path, tensors = file.tensors
        let header = try ModelUpdate.header(of: file)
        guard header.algorithm == .cooccurrence else { throw FedRecError(.shape, file: path, "is an \(header.algorithm.rawValue) update, expected co-occurrence statistics") }
        let n = header.config.items
        try tensors.require(countName, .f64, [n])
        let offsetInfo = try tensors.require(offsetName, .i64, [n + 1])
        let raw = tensors.bytes(of: offsetInfo)
        let offsets = (0...n).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
        let entries = offsets[n]
        try tensors.require(itemName, .i32, [entries])
        try tensors.require(valueName, .f64, [entries])
        let columns = try tensors.int32s(itemName)
        try SparseSymmetricMatrix.checkRows(offsets: offsets, columns: columns, size: n, fromDiagonal: true, offsetTensor: offsetName,
                                            columnTensor: itemName, file: path)
        let counts = try tensors.doubles(countName), values = try tensors.doubles(valueName)
        guard counts.allSatisfy({ $0 >= 0 && $0 <= Double(FedRecFile.maximumCount) }), values.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
            throw FedRecError(.corrupt, file: path, "holds a negative or non-finite count or co-occurrence")
        }
        return ItemPairSum(header: header, itemCount: counts, offsets: offsets, columns: columns, values: values)
    }

    /// Adds another shard's or sum's statistics (same model and round, no shard twice).
    /// - Complexity: O(entries of both), a merge of each row's sorted columns.
    public mutating func add(_ other: ItemPairSum, file: String) throws {
        var merged = header
        try merged.add(other.header, file: file)
        let n = itemCount.count
        var offsets = [0], columns: [Int32] = [], values: [Double] = []
        offsets.reserveCapacity(n + 1)
        columns.reserveCapacity(max(pairs, other.pairs))
        values.reserveCapacity(max(pairs, other.pairs))
        for i in 0..<n {
            var a = self.offsets[i], b = other.offsets[i]
            let aEnd = self.offsets[i + 1], bEnd = other.offsets[i + 1]
            while a < aEnd || b < bEnd {
                if b == bEnd || (a < aEnd && self.columns[a] < other.columns[b]) {
                    columns.append(self.columns[a]); values.append(self.values[a]); a += 1
                } else if a == aEnd || other.columns[b] < self.columns[a] {
                    columns.append(other.columns[b]); values.append(other.values[b]); b += 1
                } else {
                    columns.append(self.columns[a]); values.append(self.values[a] + other.values[b]); a += 1; b += 1
                }
            }
            offsets.append(columns.count)
        }
        for i in 0..<n { itemCount[i] += other.itemCount[i] }
        self.offsets = offsets
        self.columns = columns
        self.values = values
        header = merged
    }

    /// The sum of the statistics at `paths`, added in the order of their identities (as
    /// `ModelUpdate.sum`), refusing a file, an update or a shard given twice.
    public static func sum(paths: [String]) throws -> ItemPairSum {
        guard !paths.isEmpty else { throw FedRecError(.emptyInput, "no updates to aggregate") }
        let order = try ModelUpdate.plan(paths: paths)
        func load(_ entry: (path: String, opened: SafeTensorsFile?)) throws -> ItemPairSum {
            let file = try entry.opened ?? SafeTensorsFile(path: entry.path)
            return try read(FedRecFile(file: file, kinds: [.update, .sum]))
        }
        var total = try load(order[0])
        for entry in order.dropFirst() { try total.add(try load(entry), file: entry.path) }
        return total
    }

    /// What `fl-aggregate --json` reports of a sum written at `path`.
    public func summary(path: String) -> JSONValue {
        .object(["sum": .string(path), "clients": .number(Double(header.clients)), "weight": .number(header.weight),
                 "pairs": .number(Double(pairs))])
    }
}
