import FedRecFormats
import FedRecModel
import FedRecSecureAggregation
import FedRecSupport

/// How each client's SGD update is compressed on the wire (`fl-train-local --compress`),
/// recorded in the update's `compression` metadata and decoded by every reader of updates
/// (`ModelUpdate.read`, so `fl-aggregate` sums compressed and plain updates alike).
///
/// A client's update is one vector over W values per item row and the dense tensors
/// (`ClientVectorLayout`: for matrix factorisation the row's `item_embedding` and
/// `item_bias` deltas and the `global_bias` delta; for NCF the row's `gmf_item` and
/// `mlp_item` deltas and the tower's), already multiplied by the client's weight.
public enum UpdateCompression: Sendable, Equatable, CustomStringConvertible {
    /// No compression, but each client's rows and float32 values apart, as each would send
    /// them on its own: the baseline the others are measured against (bytes per client).
    case float32
    /// QSGD (Alistarh, Grubic, Li, Tomioka & Vojnovic, NeurIPS 2017) with b = 8 or 4 bits a
    /// value: s = 2^(b−1) − 1 levels a sign, one bucket per touched item row (its W values)
    /// and per dense bucket (`ClientVectorLayout.denseBuckets`), each bucket's L2 norm sent
    /// as a float32 scale.
    case qsgd(bits: Int)
    /// Top-k sparsification with error feedback (Stich, Cordonnier & Jaggi, NeurIPS 2018):
    /// of u = e + Δ (the residual e the client kept plus this round's update Δ), the
    /// k = ⌈ratio · |Δ|⌉ coordinates of largest magnitude are sent exactly (index and
    /// float32 value), and the client keeps e' = u − top_k(u) for the next round.
    case topK(ratio: Double)

    /// `q8`, `q4` or `topk:RATIO` with RATIO in (0, 1]; throws `.usage` on anything else.
    public init(parsing text: String) throws {
        switch text {
        case "f32": self = .float32
        case "q8": self = .qsgd(bits: 8)
        case "q4": self = .qsgd(bits: 4)
        default:
            if text.hasPrefix("topk:"), let ratio = Double(text.dropFirst(5)), ratio > 0, ratio <= 1 {
                self = .topK(ratio: ratio)
                return
            }
            throw FedRecError(.usage, "a compression is f32, q8, q4 or topk:RATIO with RATIO in (0, 1], not '\(text)'")
        }
    }

    /// What the update's `compression` metadata says (`init(parsing:)` reads it back).
    public var description: String {
        switch self {
        case .float32: "f32"
        case .qsgd(let bits): "q\(bits)"
        case .topK(let ratio): "topk:\(ratio)"
        }
    }

    /// Whether the client keeps an error-feedback residual between rounds (top-k).
    public var keepsResidual: Bool {
        if case .topK = self { return true }
        return false
    }

    /// Under secure aggregation: the most integer levels a party's value may take, s =
    /// 2^(b−1) − 1 (QSGD with the shared scale c = --secagg-clip instead of each client's
    /// norm). nil for top-k, which does not compose: the server would need each client's
    /// index set, and masks hide it; nil for f32 too (a masked update is integers anyway).
    public var secureLevels: Int64? {
        if case .qsgd(let bits) = self { return QSGD.levels(bits: bits) }
        return nil
    }

    /// Metadata key of the compression an update's tensors are in.
    public static let key = "compression"
    /// Metadata key a decoded update or sum carries: the compression its clients sent
    /// (kept in a sum only when every input agrees).
    public static let decodedKey = "compressed"
}

/// One client's SGD update seen as a flat vector: item row r, column j at r · W + j, the
/// row tensors side by side in a row's W values, then the dense tensors, one after the
/// other, at items · W + k. Length items · W + D (D the dense tensors' values).
///
/// Matrix factorisation: W = d + 1 (columns 0..<d the `item_embedding` delta, column d the
/// `item_bias` delta) and D = 1 (`global_bias`). NCF: W = the model's `dim` (`gmf_item`
/// then `mlp_item`) and the tower and prediction layer in `NCFNetwork.denseLayout` order.
///
/// QSGD's buckets (`denseBuckets`): one a touched item row (its W values); a dense
/// matrix [h, n] one a row (a unit's n incoming weights), any other dense tensor one.
public struct ClientVectorLayout: Sendable, Equatable {
    /// A row tensor: its columns in a row's W values.
    public struct RowPart: Sendable, Equatable {
        public let name: String
        public let width: Int
        public init(_ name: String, width: Int) {
            self.name = name
            self.width = width
        }
    }

    /// A dense tensor and its shape (values row-major).
    public struct DensePart: Sendable, Equatable {
        public let name: String
        public let shape: [Int]
        public var count: Int { shape.reduce(1, *) }
        public init(_ name: String, shape: [Int]) {
            self.name = name
            self.shape = shape
        }
    }

    public let items: Int
    public let rowParts: [RowPart]
    public let denseParts: [DensePart]
    /// W: values of a row.
    public let width: Int
    /// D: values of the dense part.
    public let denseCount: Int
    /// QSGD's buckets of the dense part, ascending and covering 0..<D.
    public let denseBuckets: [Range<Int>]
    public var length: Int { items * width + denseCount }

    /// Throws `.usage` when a name repeats or is empty, a width or dimension is below 1, a
    /// dense tensor has more than two dimensions, or a flat index would not fit an Int32.
    public init(items: Int, rows: [RowPart], dense: [DensePart]) throws {
        let names = rows.map(\.name) + dense.map(\.name)
        guard items >= 0, !rows.isEmpty, Set(names).count == names.count, names.allSatisfy({ !$0.isEmpty && !$0.contains(",") && !$0.contains(":") }),
            rows.allSatisfy({ (1...FedRecFile.maximumDim).contains($0.width) }),
            dense.allSatisfy({ (1...2).contains($0.shape.count) && $0.shape.allSatisfy { (1...Int(Int32.max)).contains($0) } })
        else {
            throw FedRecError(.usage, "not a layout of named row tensors and dense tensors of one or two dimensions: rows \(rows.map { "\($0.name):\($0.width)" }), dense \(dense.map { "\($0.name):\($0.shape)" })")
        }
        let width = rows.reduce(0) { $0 + $1.width }
        var denseCount = 0
        var buckets: [Range<Int>] = []
        for part in dense {
            let (count, overflow) = part.shape.count == 2 ? part.shape[0].multipliedReportingOverflow(by: part.shape[1]) : (part.shape[0], false)
            guard !overflow, count < Int(Int32.max) - denseCount else {
                throw FedRecError(.usage, "a model of \(denseCount)+ dense values is too large to compress (flat indices are 32-bit)")
            }
            if part.shape.count == 2 {
                for r in 0..<part.shape[0] { buckets.append((denseCount + r * part.shape[1])..<(denseCount + (r + 1) * part.shape[1])) }
            } else {
                buckets.append(denseCount..<(denseCount + count))
            }
            denseCount += count
        }
        let (rowValues, overflow) = items.multipliedReportingOverflow(by: width)
        guard !overflow, rowValues < Int(Int32.max) - denseCount else {
            throw FedRecError(.usage, "a model of \(items) items × \(width) values is too large to compress (flat indices are 32-bit)")
        }
        self.items = items
        rowParts = rows
        denseParts = dense
        self.width = width
        self.denseCount = denseCount
        denseBuckets = buckets
    }

    /// Matrix factorisation's: `item_embedding` [n, d] and `item_bias` [n, 1] a row, `global_bias` [1].
    public init(items: Int, dim: Int) throws {
        guard dim >= 1 else { throw FedRecError(.usage, "a model of dimension \(dim) is not compressed") }
        try self.init(items: items, rows: [RowPart(TensorName.itemEmbedding, width: dim), RowPart(TensorName.itemBias, width: 1)],
                      dense: [DensePart(TensorName.globalBias, shape: [1])])
    }

    /// Matrix factorisation's layout for `config`'s model.
    public init(config: ModelConfig) throws { try self.init(items: config.items, dim: config.dim) }

    /// An NCF model's: `gmf_item` and `mlp_item` a row, the tower and prediction layer dense.
    public init(items: Int, network: NCFNetwork) throws {
        try self.init(items: items, rows: network.rowLayout.map { RowPart($0.name, width: $0.width) },
                      dense: network.denseLayout.map { DensePart($0.name, shape: $0.shape) })
    }

    /// Metadata keys of a layout other than matrix factorisation's (which files leave
    /// implicit): the row tensors `NAME:WIDTH,…` and the dense ones `NAME:H[xN],…`.
    public static let rowsKey = "compression_rows"
    public static let denseKey = "compression_dense"

    /// The metadata a compressed update of this layout carries (none for matrix factorisation's).
    func metadata(config: ModelConfig) -> [String: String] {
        if config.family == .mf, let mf = try? ClientVectorLayout(config: config), mf == self { return [:] }
        return [Self.rowsKey: rowParts.map { "\($0.name):\($0.width)" }.joined(separator: ","),
                Self.denseKey: denseParts.map { "\($0.name):" + $0.shape.map(String.init).joined(separator: "x") }.joined(separator: ",")]
    }

    /// The layout a compressed update's metadata records, or matrix factorisation's when it
    /// records none. Refused naming the file: a malformed record (`.corrupt`), none for a
    /// model that is not matrix factorisation (`.corrupt`), rows that are not the model's
    /// `dim` values (or, for matrix factorisation, not its layout) (`.shape`).
    static func recorded(in file: FedRecFile, config: ModelConfig) throws -> ClientVectorLayout {
        let path = file.path
        guard let rowsText = file.metadata[rowsKey], let denseText = file.metadata[denseKey] else {
            guard file.metadata[rowsKey] == nil, file.metadata[denseKey] == nil, config.family == .mf else {
                throw FedRecError(.corrupt, file: path, "a compressed \(config.modelType) update needs metadata \(rowsKey) and \(denseKey) (its layout)")
            }
            do { return try ClientVectorLayout(config: config) } catch let error as FedRecError { throw error.inFile(path) }
        }
        func entries(_ text: String) -> [(name: String, sizes: [Int])]? {
            var out: [(String, [Int])] = []
            for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
                let pair = entry.split(separator: ":", omittingEmptySubsequences: false)
                guard pair.count == 2 else { return nil }
                let sizes = pair[1].split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
                guard sizes.allSatisfy({ $0 != nil }) else { return nil }
                out.append((String(pair[0]), sizes.compactMap { $0 }))
            }
            return out
        }
        guard let rows = entries(rowsText), rows.allSatisfy({ $0.sizes.count == 1 }), let dense = entries(denseText) else {
            throw FedRecError(.corrupt, file: path, "metadata \(rowsKey) '\(rowsText)' or \(denseKey) '\(denseText)' is not a list of NAME:SIZE")
        }
        let layout: ClientVectorLayout
        do {
            layout = try ClientVectorLayout(items: config.items, rows: rows.map { RowPart($0.name, width: $0.sizes[0]) },
                                            dense: dense.map { DensePart($0.name, shape: $0.sizes) })
        } catch let error as FedRecError {
            throw FedRecError(.corrupt, file: path, error.message)
        }
        if config.family == .mf {
            guard let mf = try? ClientVectorLayout(config: config), mf == layout else {
                throw FedRecError(.shape, file: path, "records a layout (\(rowsText); \(denseText)) that is not the mf model's of dimension \(config.dim)")
            }
        } else if layout.width != config.dim {
            throw FedRecError(.shape, file: path, "records item rows of \(layout.width) values (\(rowsText)), the \(config.modelType) model's have \(config.dim)")
        }
        return layout
    }

    /// Calls `body` with each row of `update` (its position and its W values, the row
    /// tensors side by side) and returns the dense values (D, in layout order). The update
    /// must hold exactly this layout's tensors (`.shape` otherwise).
    func gather(_ update: ModelUpdate, _ body: (_ k: Int, _ row: UnsafeBufferPointer<Float>) throws -> Void) throws -> [Float] {
        let n = update.rows.count
        var parts: [[Float]] = []
        for part in rowParts {
            guard let tensor = update.rowTensors[part.name], tensor.width == part.width, tensor.values.count == n * part.width else {
                throw layoutError
            }
            parts.append(tensor.values)
        }
        guard update.rowTensors.count == rowParts.count, update.dense.count == denseParts.count else { throw layoutError }
        var dense = [Float]()
        dense.reserveCapacity(denseCount)
        for part in denseParts {
            guard let values = update.dense[part.name], values.count == part.count else { throw layoutError }
            dense.append(contentsOf: values)
        }
        var row = [Float](repeating: 0, count: width)
        try row.withUnsafeMutableBufferPointer { buffer in
            for k in 0..<n {
                var offset = 0
                for (p, part) in rowParts.enumerated() {
                    let w = part.width
                    parts[p].withUnsafeBufferPointer { values in
                        for j in 0..<w { buffer[offset + j] = values[k * w + j] }
                    }
                    offset += w
                }
                try body(k, UnsafeBufferPointer(buffer))
            }
        }
        return dense
    }

    var layoutError: FedRecError {
        let rows = rowParts.map { "rows.\($0.name) [n, \($0.width)]" }, dense = denseParts.map { "dense.\($0.name) [\($0.count)]" }
        return FedRecError(.shape, "only SGD updates of the model's layout (\((rows + dense).joined(separator: ", "))) are compressed")
    }

    /// The update's values as a sparse flat vector (rows ascending, so indices ascending).
    /// The update must hold SGD deltas of this layout (`.shape` otherwise).
    public func flatten(_ update: ModelUpdate) throws -> SparseVector {
        let w = width
        var index = [Int32](), value = [Float]()
        index.reserveCapacity(update.rows.count * w + denseCount)
        value.reserveCapacity(update.rows.count * w + denseCount)
        let dense = try gather(update) { k, row in
            let base = Int(update.rows[k]) * w
            for j in 0..<w {
                index.append(Int32(base + j))
                value.append(row[j])
            }
        }
        let base = items * w
        for (k, x) in dense.enumerated() {
            index.append(Int32(base + k))
            value.append(x)
        }
        return SparseVector(index: index, value: value)
    }
}

/// QSGD's stochastic quantiser Q_s (Alistarh et al. 2017, §3.1), applied per bucket v:
///
///     Q_s(v_i) = ‖v‖₂ · sgn(v_i) · ξ_i(v, s),
///
/// where, with 0 ≤ l < s the integer such that |v_i| / ‖v‖₂ ∈ [l/s, (l+1)/s],
/// ξ_i = (l + 1)/s with probability p = |v_i| s / ‖v‖₂ − l and l/s otherwise. Then
/// E[ξ_i] = |v_i| / ‖v‖₂, so E[Q_s(v)] = v (unbiased), and (Lemma 3.1)
///
///     E‖Q_s(v) − v‖₂² ≤ min(n / s², √n / s) · ‖v‖₂²     (n the bucket's length);
///
/// coordinate by coordinate Var[Q_s(v_i)] = (‖v‖₂ / s)² p (1 − p) ≤ ‖v‖₂² / (4 s²).
///
/// A value is sent as its signed level sgn(v_i) · s ξ_i ∈ [−s, s], in b-bit two's complement
/// (s = 2^(b−1) − 1, so −2^(b−1) never occurs and is refused by the decoder), and the bucket's
/// scale ‖v‖₂ as a float32, rounded up so that |v_i| ≤ scale holds exactly; the
/// probabilities use that float32 scale, so the decoder's scale · level / s has expectation
/// v_i exactly.
public enum QSGD {
    /// s = 2^(b−1) − 1: the levels a sign of a b-bit value (127 at 8 bits, 7 at 4).
    public static func levels(bits: Int) -> Int64 { (Int64(1) << Int64(bits - 1)) - 1 }

    /// ‖v‖₂ as a float32 no smaller than the exact norm (computed in double).
    public static func scale(of bucket: UnsafeBufferPointer<Float>) -> Float {
        var sum = 0.0
        for x in bucket { sum += Double(x) * Double(x) }
        let norm = sum.squareRoot()
        var scale = Float(norm)
        if Double(scale) < norm { scale = scale.nextUp }
        return scale
    }

    /// Writes the signed levels of `bucket` under `scale` (b-bit two's complement words,
    /// high bits zero) into `output`. One 64-bit draw per value from `generator`; a zero
    /// scale gives zero levels. Non-finite values are refused (`.badData`).
    public static func quantize<G: RandomNumberGenerator>(
        _ bucket: UnsafeBufferPointer<Float>, scale: Float, bits: Int, into output: UnsafeMutableBufferPointer<UInt32>,
        using generator: inout G
    ) throws {
        precondition(bucket.count == output.count && (bits == 4 || bits == 8))
        let s = levels(bits: bits)
        let mask: UInt32 = (1 << UInt32(bits)) - 1
        // A NaN anywhere in the bucket makes its norm NaN: refused here, not sent as zeros.
        guard scale.isFinite else { throw FedRecError(.badData, "an update value to compress is not finite (the bucket's scale is \(scale))") }
        guard scale > 0 else {
            for i in 0..<output.count { output[i] = 0 }
            return
        }
        let factor = Double(s) / Double(scale)
        for i in 0..<bucket.count {
            let x = bucket[i]
            guard x.isFinite else { throw FedRecError(.badData, "an update value to compress is \(x)") }
            let scaled = Double(abs(x)) * factor  // in [0, s]
            let floor = scaled.rounded(.down)
            let draw = Double(generator.next() >> 11) * 0x1p-53
            var level = Int64(floor) + (draw < scaled - floor ? 1 : 0)
            level = min(level, s)
            output[i] = UInt32(truncatingIfNeeded: x < 0 ? -level : level) & mask
        }
    }

    /// The signed level a b-bit word stands for, nil for −2^(b−1) (outside [−s, s]).
    @inline(__always)
    public static func level(_ word: UInt32, bits: Int) -> Int32? {
        let shift = UInt32(32 - bits)
        let value = Int32(bitPattern: word << shift) >> Int32(shift)
        return value == -(Int32(1) << Int32(bits - 1)) ? nil : value
    }
}

/// Top-k selection and the error-feedback step of "Sparsified SGD with Memory" (Stich,
/// Cordonnier & Jaggi 2018, Algorithm 1): with memory m and this round's update Δ,
///
///     u = m + Δ,   sent = top_k(u),   m' = u − top_k(u),
///
/// top_k keeping the k coordinates of largest magnitude (ties to the lower index) and
/// zeroing the rest. What is not sent is not lost: it is added to a later round's update,
/// so every coordinate is eventually sent (Theorem 2.4: the same rate as SGD for k/d
/// compression once the memory's delay is amortised).
public enum TopK {
    /// Positions (ascending) of the k largest |values|; ties go to the lower position.
    /// O(n) expected (quickselect on the magnitudes), one copy of them.
    public static func select(_ values: UnsafeBufferPointer<Float>, k: Int) -> [Int] {
        let n = values.count
        if k >= n { return Array(0..<n) }
        if k <= 0 { return [] }
        var magnitudes = [Float](repeating: 0, count: n)
        for i in 0..<n { magnitudes[i] = abs(values[i]) }
        // The k-th largest magnitude: quickselect for position n − k of the ascending order.
        let threshold = magnitudes.withUnsafeMutableBufferPointer { kthSmallest($0, n - k) }
        var greater = 0
        for i in 0..<n where abs(values[i]) > threshold { greater += 1 }
        var ties = k - greater
        var kept = [Int]()
        kept.reserveCapacity(k)
        for i in 0..<n {
            let m = abs(values[i])
            if m > threshold {
                kept.append(i)
            } else if m == threshold && ties > 0 {
                kept.append(i)
                ties -= 1
            }
        }
        return kept
    }

    /// The element that would be at `position` if `a` were sorted ascending (reorders `a`).
    static func kthSmallest(_ a: UnsafeMutableBufferPointer<Float>, _ position: Int) -> Float {
        var low = 0, high = a.count - 1
        while low < high {
            // Median of three as the pivot; Hoare partition.
            let mid = low + (high - low) / 2
            if a[mid] < a[low] { a.swapAt(mid, low) }
            if a[high] < a[low] { a.swapAt(high, low) }
            if a[high] < a[mid] { a.swapAt(high, mid) }
            let pivot = a[mid]
            var i = low, j = high
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j {
                    a.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if position <= j { high = j } else if position >= i { low = i } else { return a[position] }
        }
        return a[position]
    }

    /// One error-feedback step: u = residual + update (indices merged), the k = ⌈ratio ·
    /// |update|⌉ largest of u sent, the rest kept as the new residual (exact zeros dropped).
    public static func errorFeedback(update: SparseVector, residual: SparseVector, ratio: Double) -> (sent: SparseVector, residual: SparseVector) {
        var index = [Int32](), value = [Float]()
        index.reserveCapacity(update.count + residual.count)
        value.reserveCapacity(update.count + residual.count)
        var i = 0, j = 0
        while i < update.count || j < residual.count {
            if j == residual.count || (i < update.count && update.index[i] < residual.index[j]) {
                index.append(update.index[i]); value.append(update.value[i]); i += 1
            } else if i == update.count || residual.index[j] < update.index[i] {
                index.append(residual.index[j]); value.append(residual.value[j]); j += 1
            } else {
                index.append(update.index[i]); value.append(update.value[i] + residual.value[j]); i += 1; j += 1
            }
        }
        let k = min(index.count, max(1, Int((ratio * Double(update.count)).rounded(.up))))
        let kept = value.withUnsafeBufferPointer { select($0, k: k) }
        var sent = SparseVector(), left = SparseVector()
        sent.index.reserveCapacity(kept.count)
        sent.value.reserveCapacity(kept.count)
        left.index.reserveCapacity(index.count - kept.count)
        left.value.reserveCapacity(index.count - kept.count)
        var next = 0
        for p in 0..<index.count {
            if next < kept.count && kept[next] == p {
                sent.index.append(index[p]); sent.value.append(value[p]); next += 1
            } else if value[p] != 0 {
                left.index.append(index[p]); left.value.append(value[p])
            }
        }
        return (sent, left)
    }
}
