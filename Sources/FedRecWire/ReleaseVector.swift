import FedRecModel
import FedRecSupport

/// The one vector a DP release noises, for both kinds of round, and back: every
/// coordinate of the model's catalogue, untouched items' zeros included (a row left out
/// would tell that nobody touched it). Central DP (`CentralRelease`, `PrivateALSRelease`)
/// noises it at the server; distributed DP rotates, rounds and noises each client's own at
/// the parties and decodes the sum here.
///
/// - SGD deltas: each item's embedding row (n·d), each item's bias (n), the global bias.
///   Sensitivity: the clip C of one client's delta.
/// - Private ALS statistics (`ALSContributionBounds`): per item the Gram's upper triangle
///   (left out with the mean-field item Gram), the right-hand side and the count; then
///   the dense part (its triangle for WALS), scaled by w (`denseWeight`) so that one L2
///   sensitivity Δ covers all of it.
public enum ReleaseVector {
    /// How many values a release holds per item and for the dense part of ALS statistics.
    public struct ALSSizes: Sendable {
        /// n: the width of an item's system (d for WALS, d + 1 explicit).
        public let n: Int
        /// The item Gram's upper triangle (0 when the Grams are not shared).
        public let triangle: Int
        public let perItem: Int
        public let dense: Int

        public init(_ config: ModelConfig, sharesItemGram: Bool) {
            let wals = config.objective == .wals
            n = wals ? config.dim : config.dim + 1
            triangle = sharesItemGram ? n * (n + 1) / 2 : 0
            perItem = triangle + n + 1
            dense = wals ? config.dim * (config.dim + 1) / 2 : 2
        }
    }

    /// The release's length for a sum with `header`.
    public static func length(_ header: UpdateHeader) throws -> Int {
        let config = header.config
        if header.algorithm == .als {
            let bounds = try alsBounds(header)
            let sizes = ALSSizes(config, sharesItemGram: bounds.sharesItemGram(config))
            return config.items * sizes.perItem + sizes.dense
        }
        return config.items * (config.dim + 1) + 1
    }

    /// The L2 sensitivity of the release to one client: C for SGD, Δ for private ALS.
    public static func sensitivity(_ header: UpdateHeader) throws -> Double {
        if header.algorithm == .als { return try alsBounds(header).sensitivity(header.config) }
        guard header.clip > 0 else { throw FedRecError(.usage, "DP needs clipped updates (fl-train-local --clip C with C > 0)") }
        return header.clip
    }

    static func alsBounds(_ header: UpdateHeader) throws -> ALSContributionBounds {
        guard let bounds = try ALSContributionBounds(metadata: header.extra) else {
            throw FedRecError(.usage, "the ALS statistics are not bounded per user; train with fl-train-local --dp-max-items K --dp-user-clip G")
        }
        return bounds
    }

    /// The release vector of an update or sum (`length(update.header)` values).
    /// - Throws: `.shape` for tensors that do not fit the model.
    public static func pack(_ update: ModelUpdate) throws -> [Float] {
        update.header.algorithm == .als ? try packALS(update, bounds: try alsBounds(update.header)) : try packSGD(update)
    }

    /// The update a release vector stands for, every item a row (see the two cases).
    /// - Parameter clients: the denominator SGD rows are applied with (q·N or the parties'
    ///   clients); ALS statistics carry their own noised counts.
    public static func unpack(_ values: [Float], header: UpdateHeader, clients: Double) throws -> ModelUpdate {
        header.algorithm == .als
            ? try unpackALS(values, header: header, bounds: try alsBounds(header)) : unpackSGD(values, header: header, clients: clients)
    }

    // MARK: SGD deltas

    public static func packSGD(_ sum: ModelUpdate) throws -> [Float] {
        let n = sum.header.config.items, d = sum.header.config.dim
        guard let embedding = sum.rowTensors[TensorName.itemEmbedding], embedding.width == d,
            let bias = sum.rowTensors[TensorName.itemBias], bias.width == 1,
            let global = sum.dense[TensorName.globalBias], global.count == 1
        else { throw FedRecError(.shape, "a delta sum needs rows.item_embedding [n, \(d)], rows.item_bias [n, 1] and dense.global_bias [1]") }
        var values = [Float](repeating: 0, count: n * d + n + 1)
        for (r, row) in sum.rows.enumerated() {
            let item = Int(row)
            guard item >= 0, item < n else { throw FedRecError(.shape, "row \(item) is outside the catalogue of \(n) items") }
            for k in 0..<d { values[item * d + k] = embedding.values[r * d + k] }
            values[n * d + item] = bias.values[r]
        }
        values[n * d + n] = global[0]
        return values
    }

    /// The dense SGD sum: every item's row, `row_weight` = `clients` on every row and
    /// `weight` = `clients`, so the server step divides every row by that fixed denominator.
    public static func unpackSGD(_ values: [Float], header h: UpdateHeader, clients: Double) -> ModelUpdate {
        let n = h.config.items, d = h.config.dim
        let header = released(h, clients: clients)
        return ModelUpdate(
            header: header, rows: (0..<Int32(n)).map { $0 },
            rowClients: [Int32](repeating: Int32(clients.rounded()), count: n),
            rowWeight: [Float](repeating: Float(clients), count: n),
            rowTensors: [
                TensorName.itemEmbedding: RowTensor(width: d, values: Array(values[0..<(n * d)])),
                TensorName.itemBias: RowTensor(width: 1, values: Array(values[(n * d)..<(n * d + n)])),
            ],
            dense: [TensorName.globalBias: [values[n * d + n]]])
    }

    /// A released sum's header: `clients` and `weight` the fixed denominator, nothing
    /// said of the true count or of clipping (they are not noised).
    static func released(_ h: UpdateHeader, clients: Double) -> UpdateHeader {
        var header = h
        header.clients = Int(clients.rounded())
        header.weight = clients
        header.clipped = 0
        return header
    }

    // MARK: A tensor family's deltas (an ncf model's item rows and tower, a text-lora adapter's tensors)

    /// Whether `sum` is released tensor by tensor (`packTensors`) rather than as MF's
    /// deltas (`packSGD`): an ncf model's sum (rows `gmf_item`/`mlp_item`, the tower's and
    /// prediction layer's dense tensors), or a tensor family's with dense tensors only (a
    /// text-lora adapter's B). CTR models' rows are hashed features, not items: neither.
    public static func isTensorRelease(_ sum: ModelUpdate) -> Bool {
        let family = sum.header.config.family
        return family == .ncf || (family != .mf && sum.rowTensors.isEmpty)
    }

    /// The values a tensor release noises: every item's row of each row tensor, and every
    /// value of each dense tensor.
    public static func tensorLength(_ sum: ModelUpdate) -> Int {
        sum.rowTensors.values.reduce(0) { $0 + sum.header.config.items * $1.width } + sum.dense.values.reduce(0) { $0 + $1.count }
    }

    /// A tensor family's sum as one vector: each row tensor (name order) as items × width
    /// values, untouched items' rows zero (a row left out would tell nobody touched it),
    /// then each dense tensor (name order). The sensitivity is the clip C of one client's
    /// whole delta, as for MF's rows. With dense tensors only, the tensors in name order.
    /// - Throws: `.shape` for rows outside the catalogue or a tensor of the wrong size.
    public static func packTensors(_ sum: ModelUpdate) throws -> [Float] {
        let n = sum.header.config.items
        var values: [Float] = []
        values.reserveCapacity(tensorLength(sum))
        for name in sum.rowTensors.keys.sorted() {
            guard let tensor = sum.rowTensors[name], tensor.values.count == sum.rows.count * tensor.width else {
                throw FedRecError(.shape, "tensor rows.\(name) does not hold \(sum.rows.count) rows")
            }
            let w = tensor.width, at = values.count
            values += repeatElement(0, count: n * w)
            for (r, row) in sum.rows.enumerated() {
                let item = Int(row)
                guard item >= 0, item < n else { throw FedRecError(.shape, "row \(item) is outside the catalogue of \(n) items") }
                for k in 0..<w { values[at + item * w + k] = tensor.values[r * w + k] }
            }
        }
        for name in sum.dense.keys.sorted() { values += sum.dense[name] ?? [] }
        return values
    }

    /// The sum the vector stands for, with the tensors of `like` (the sum packed): every
    /// item a row, `row_weight` = `clients` on every row and `weight` = `clients`, so the
    /// server step divides every tensor by that fixed denominator.
    public static func unpackTensors(_ values: [Float], like sum: ModelUpdate, clients: Double) -> ModelUpdate {
        let n = sum.header.config.items
        let header = released(sum.header, clients: clients)
        var rowTensors: [String: RowTensor] = [:]
        var dense: [String: [Float]] = [:]
        var start = 0
        for name in sum.rowTensors.keys.sorted() {
            let count = n * (sum.rowTensors[name]?.width ?? 0)
            rowTensors[name] = RowTensor(width: sum.rowTensors[name]?.width ?? 0, values: Array(values[start..<(start + count)]))
            start += count
        }
        for name in sum.dense.keys.sorted() {
            let count = sum.dense[name]?.count ?? 0
            dense[name] = Array(values[start..<(start + count)])
            start += count
        }
        guard !rowTensors.isEmpty else { return ModelUpdate(header: header, dense: dense) }
        return ModelUpdate(
            header: header, rows: (0..<Int32(n)).map { $0 }, rowClients: [Int32](repeating: Int32(clients.rounded()), count: n),
            rowWeight: [Float](repeating: Float(clients), count: n), rowTensors: rowTensors, dense: dense)
    }

    // MARK: Private ALS statistics

    /// What both directions of an ALS release need to know of the model and the bounds.
    struct ALSRelease {
        let wals: Bool
        let d: Int, items: Int
        let layout: [(name: String, width: Int)]
        let sharesGram: Bool
        let sizes: ALSSizes

        init(_ config: ModelConfig, _ bounds: ALSContributionBounds) {
            wals = config.objective == .wals
            d = config.dim
            items = config.items
            layout = ALSStatistics.rowLayout(config)
            sharesGram = bounds.sharesItemGram(config)
            sizes = ALSSizes(config, sharesItemGram: sharesGram)
        }
    }

    public static func packALS(_ sum: ModelUpdate, bounds: ALSContributionBounds) throws -> [Float] {
        let config = sum.header.config
        let r = ALSRelease(config, bounds)
        let wals = r.wals, d = r.d, items = r.items, layout = r.layout, sharesGram = r.sharesGram, sizes = r.sizes
        let n = sizes.n, perItem = sizes.perItem
        guard let gram = sum.rowTensors[layout[0].name], gram.width == ALSStatistics.packedCount(n),
            let rhs = sum.rowTensors[layout[1].name], rhs.width == n,
            let dense = sum.dense[ALSStatistics.denseName(config)], dense.count == ALSStatistics.denseCount(config),
            sum.rowWeight.count == sum.rows.count
        else { throw FedRecError(.shape, "ALS statistics do not fit a \(config.objective.rawValue) model of d=\(d)") }
        var values = [Float](repeating: 0, count: items * perItem + sizes.dense)
        for (r, row) in sum.rows.enumerated() {
            let item = Int(row)
            guard item >= 0, item < items else { throw FedRecError(.shape, "row \(item) is outside the catalogue of \(items) items") }
            let at = item * perItem
            if sharesGram { for k in 0..<sizes.triangle { values[at + k] = gram.values[r * sizes.triangle + k] } }
            for i in 0..<n { values[at + sizes.triangle + i] = rhs.values[r * n + i] }
            values[at + sizes.triangle + n] = sum.rowWeight[r]
        }
        // The dense part goes out scaled by w (`denseWeight`): its noise is σ/w.
        let w = Float(bounds.denseWeight(config))
        let denseAt = items * perItem
        if wals {
            packUpper(dense, from: 0, n: d, into: &values, at: denseAt, scale: w)
        } else {
            values[denseAt] = dense[0] * w
            values[denseAt + 1] = dense[1] * w
        }
        return values
    }

    /// Packed Grams, every item a row, the noised counts in `row_weight` (and, as
    /// integers within 0…clients, in `row_clients`); `clients` is the population.
    public static func unpackALS(_ values: [Float], header h: UpdateHeader, bounds: ALSContributionBounds) throws -> ModelUpdate {
        let config = h.config
        let r = ALSRelease(config, bounds)
        let wals = r.wals, d = r.d, items = r.items, layout = r.layout, sharesGram = r.sharesGram, sizes = r.sizes
        let n = sizes.n, perItem = sizes.perItem
        guard values.count == items * perItem + sizes.dense else {
            throw FedRecError(.shape, "a release of \(values.count) values for ALS statistics of \(items * perItem + sizes.dense)")
        }
        let triangle = ALSStatistics.packedCount(n)
        var gramOut = [Float](repeating: 0, count: items * triangle)
        var rhsOut = [Float](repeating: 0, count: items * n)
        var counts = [Float](repeating: 0, count: items)
        for item in 0..<items {
            let at = item * perItem
            if sharesGram { for k in 0..<triangle { gramOut[item * triangle + k] = values[at + k] } }
            for i in 0..<n { rhsOut[item * n + i] = values[at + sizes.triangle + i] }
            counts[item] = values[at + sizes.triangle + n]
        }
        let w = Float(bounds.denseWeight(config))
        let denseAt = items * perItem
        var denseOut = [Float](repeating: 0, count: ALSStatistics.denseCount(config))
        if wals {
            unpackUpper(values, at: denseAt, n: d, into: &denseOut, from: 0, dividedBy: w)
        } else {
            denseOut[0] = values[denseAt] / w
            denseOut[1] = values[denseAt + 1] / w
        }
        var header = h
        header.clients = max(h.population, h.clients)
        // A noised count can exceed the population or fall below 0; the file's row_clients
        // must lie in 0…clients (the count itself stays noised in row_weight).
        let most = Float(header.clients)
        return ModelUpdate(
            header: header, rows: (0..<Int32(items)).map { $0 },
            rowClients: counts.map { Int32(max(0, min($0.rounded(), most))) }, rowWeight: counts,
            rowTensors: [layout[0].name: RowTensor(width: triangle, values: gramOut), layout[1].name: RowTensor(width: n, values: rhsOut)],
            dense: [ALSStatistics.denseName(config): denseOut])
    }

    /// Copies the upper triangle (diagonal included, row by row) of the n × n matrix at
    /// `matrix[from...]`, times `scale`, to `values[at...]`.
    static func packUpper(_ matrix: [Float], from: Int, n: Int, into values: inout [Float], at: Int, scale: Float = 1) {
        var k = at
        for i in 0..<n {
            for j in i..<n {
                values[k] = matrix[from + i * n + j] * scale
                k += 1
            }
        }
    }

    /// The inverse of `packUpper`: the symmetric n × n matrix whose upper triangle is at
    /// `values[at...]`, divided by `divisor`, written to `matrix[from...]`.
    static func unpackUpper(_ values: [Float], at: Int, n: Int, into matrix: inout [Float], from: Int, dividedBy divisor: Float = 1) {
        var k = at
        for i in 0..<n {
            for j in i..<n {
                matrix[from + i * n + j] = values[k] / divisor
                matrix[from + j * n + i] = values[k] / divisor
                k += 1
            }
        }
    }
}
