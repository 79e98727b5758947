import FedRecFormats
import FedRecModel
import FedRecSecureAggregation
import FedRecSupport

/// A shard's update as its clients sent it, each client compressed apart
/// (`UpdateCompression`): `kind = update` with `compression` in the metadata and, instead of
/// the summed rows, one segment a client (docs/FORMATS.md, "Compressed updates"):
///
/// - `client_offset` I32 [clients + 1]: client c's entries are `client_offset[c] ..<
///   client_offset[c + 1]` of the per-entry tensors below (from 0, non-decreasing);
/// - `client_weight` F32 [clients]: each client's weight (its contribution to
///   `row_weight` for every row it sends);
/// - `f32` (the uncompressed baseline): `rows` I32 [R] (each client's rows strictly
///   ascending), `row_values` F32 [R, W], `dense_values` F32 [clients · D];
/// - QSGD (`q8`, `q4`): `rows` I32 [R] (each client's rows strictly ascending),
///   `row_scale` F32 [R], `row_levels` U8 [⌈R · W · b / 8⌉] (R · W signed b-bit levels,
///   packed as `BitPacking` does), `dense_scale` F32 [clients · B] (B dense buckets),
///   `dense_levels` U8 [⌈clients · D · b / 8⌉];
/// - top-k (`topk:RATIO`): `index` I32 [N] (flat `ClientVectorLayout` indices, each
///   client's strictly ascending), `value` F32 [N].
///
/// W, D and the dense buckets are the `ClientVectorLayout`'s: matrix factorisation's
/// (W = d + 1, D = B = 1) is implied; any other model's is recorded in the metadata
/// (`compression_rows`, `compression_dense`).
///
/// Decoding sums the clients into an ordinary update: a client counts for a row (its
/// `row_clients` and `row_weight`) when it sends any value of that row.
public struct CompressedUpdateBuilder: Sendable {
    public let compression: UpdateCompression
    public let layout: ClientVectorLayout
    var clientOffset: [Int32] = [0]
    var clientWeight: [Float] = []
    var rows: [Int32] = []
    var rowScale: [Float] = []
    var rowWords: [UInt32] = []
    var rowValues: [Float] = []
    var denseValues: [Float] = []
    var denseScale: [Float] = []
    var denseWords: [UInt32] = []
    var index: [Int32] = []
    var value: [Float] = []

    public init(compression: UpdateCompression, layout: ClientVectorLayout) {
        self.compression = compression
        self.layout = layout
    }

    /// Clients added.
    public var clients: Int { clientWeight.count }
    /// Entries sent: rows (QSGD) or values (top-k).
    public var entries: Int { Int(clientOffset[clientOffset.count - 1]) }

    /// Adds one client's update (values already scaled by `weight`) as it is (`f32`).
    public mutating func addPlain(_ update: ModelUpdate, weight: Float) throws {
        guard case .float32 = compression else { preconditionFailure("addPlain on a \(compression) builder") }
        var values: [Float] = []
        let dense = try layout.gather(update) { _, row in values.append(contentsOf: row) }
        rowValues.append(contentsOf: values)
        rows.append(contentsOf: update.rows)
        denseValues.append(contentsOf: dense)
        try finishClient(weight: weight, entries: rows.count)
    }

    /// Adds one client's update (values already scaled by `weight`) QSGD-quantised, one
    /// bucket a row and the layout's dense buckets, with rounding drawn from `generator`.
    public mutating func addQuantized<G: RandomNumberGenerator>(_ update: ModelUpdate, weight: Float, using generator: inout G) throws {
        guard case .qsgd(let bits) = compression else { preconditionFailure("addQuantized on a \(compression) builder") }
        let layout = self.layout
        var words = [UInt32](repeating: 0, count: max(layout.width, layout.denseBuckets.map(\.count).max() ?? 0))
        var scales: [Float] = [], levels: [UInt32] = []
        func quantize(_ bucket: UnsafeBufferPointer<Float>) throws {
            let scale = QSGD.scale(of: bucket)
            try words.withUnsafeMutableBufferPointer { all in
                let out = UnsafeMutableBufferPointer(rebasing: all[0..<bucket.count])
                try QSGD.quantize(bucket, scale: scale, bits: bits, into: out, using: &generator)
                levels.append(contentsOf: out)
            }
            scales.append(scale)
        }
        let dense = try layout.gather(update) { _, row in try quantize(row) }
        rows.append(contentsOf: update.rows)
        rowScale.append(contentsOf: scales)
        rowWords.append(contentsOf: levels)
        scales.removeAll()
        levels.removeAll()
        try dense.withUnsafeBufferPointer { values in
            for bucket in layout.denseBuckets { try quantize(UnsafeBufferPointer(rebasing: values[bucket])) }
        }
        denseScale.append(contentsOf: scales)
        denseWords.append(contentsOf: levels)
        try finishClient(weight: weight, entries: rows.count)
    }

    /// Adds the values one client sends after top-k with error feedback (`TopK.errorFeedback`).
    public mutating func addSparse(_ sent: SparseVector, weight: Float) throws {
        guard case .topK = compression else { preconditionFailure("addSparse on a \(compression) builder") }
        if let bad = sent.value.first(where: { !$0.isFinite }) { throw FedRecError(.badData, "an update value to compress is \(bad)") }
        index.append(contentsOf: sent.index)
        value.append(contentsOf: sent.value)
        try finishClient(weight: weight, entries: index.count)
    }

    private mutating func finishClient(weight: Float, entries: Int) throws {
        guard let end = Int32(exactly: entries) else { throw FedRecError(.usage, "a compressed update of more than \(Int32.max) entries") }
        clientOffset.append(end)
        clientWeight.append(weight)
    }

    static let offsetName = "client_offset"
    static let weightName = "client_weight"
    static let rowsName = "rows"
    static let rowScaleName = "row_scale"
    static let rowLevelsName = "row_levels"
    static let denseScaleName = "dense_scale"
    static let denseLevelsName = "dense_levels"
    static let rowValuesName = "row_values"
    static let denseValuesName = "dense_values"
    static let indexName = "index"
    static let valueName = "value"

    /// The file: `header`'s metadata (its clients and weight the shard's), `compression`,
    /// and the clients' segments.
    public func writer(header: UpdateHeader) -> SafeTensorsWriter {
        var header = header
        header.extra[UpdateCompression.decodedKey] = nil
        var writer = SafeTensorsWriter(metadata: ModelUpdate(header: header).writer(kind: .update).metadata)
        writer.metadata[UpdateCompression.key] = compression.description
        writer.metadata.merge(layout.metadata(config: header.config)) { _, new in new }
        writer.add(Self.offsetName, shape: [clientOffset.count], int32s: clientOffset)
        writer.add(Self.weightName, shape: [clientWeight.count], floats: clientWeight)
        switch compression {
        case .float32:
            writer.add(Self.rowsName, shape: [rows.count], int32s: rows)
            writer.add(Self.rowValuesName, shape: [rows.count, layout.width], floats: rowValues)
            writer.add(Self.denseValuesName, shape: [denseValues.count], floats: denseValues)
        case .qsgd(let bits):
            writer.add(Self.rowsName, shape: [rows.count], int32s: rows)
            writer.add(Self.rowScaleName, shape: [rowScale.count], floats: rowScale)
            writer.add(Self.rowLevelsName, shape: [BitPacking.byteCount(count: rowWords.count, bits: bits)], .u8(BitPacking.pack(rowWords, bits: bits)))
            writer.add(Self.denseScaleName, shape: [denseScale.count], floats: denseScale)
            writer.add(Self.denseLevelsName, shape: [BitPacking.byteCount(count: denseWords.count, bits: bits)], .u8(BitPacking.pack(denseWords, bits: bits)))
        case .topK:
            writer.add(Self.indexName, shape: [index.count], int32s: index)
            writer.add(Self.valueName, shape: [value.count], floats: value)
        }
        return writer
    }

    /// Writes the file; returns its SHA-256.
    @discardableResult
    public func write(header: UpdateHeader, to path: String) throws -> String {
        let bytes = try writer(header: header).write(to: path, durable: false)
        return bytes.withUnsafeBytes { sha256Hex($0) }
    }
}

/// Reading a compressed update back into an ordinary one (the sum of its clients' decoded
/// contributions). Every malformed part is refused with the file named: a tensor of the
/// wrong type or length (`.shape`), offsets, rows or indices out of range, unsorted or
/// repeated, a level outside [−s, s], a scale or weight that is negative or not finite
/// (`.corrupt`).
public enum CompressedUpdate {
    public static func decode(_ file: FedRecFile, header: UpdateHeader) throws -> ModelUpdate {
        let path = file.path
        let compression: UpdateCompression
        do { compression = try UpdateCompression(parsing: try file.string(UpdateCompression.key)) } catch let error as FedRecError {
            throw FedRecError(.corrupt, file: path, error.message)
        }
        guard header.algorithm == .sgd else { throw FedRecError(.corrupt, file: path, "a compressed update of \(header.algorithm) statistics: only SGD updates are compressed") }
        let layout = try ClientVectorLayout.recorded(in: file, config: header.config)
        let tensors = file.tensors
        let c = header.clients
        try tensors.require(CompressedUpdateBuilder.offsetName, .i32, [c + 1])
        try tensors.require(CompressedUpdateBuilder.weightName, .f32, [c])
        let offsets = try tensors.int32s(CompressedUpdateBuilder.offsetName)
        let weights = try tensors.floats(CompressedUpdateBuilder.weightName)
        guard offsets[0] == 0, zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw FedRecError(.corrupt, file: path, "client_offset does not rise from 0")
        }
        if let bad = weights.first(where: { !$0.isFinite || $0 < 0 }) {
            throw FedRecError(.corrupt, file: path, "client_weight holds \(bad)")
        }
        let entries = Int(offsets[c])
        var sum = RowSum(layout: layout)
        let w = layout.width, denseCount = layout.denseCount, buckets = layout.denseBuckets
        switch compression {
        case .float32:
            try tensors.require(CompressedUpdateBuilder.rowsName, .i32, [entries])
            try tensors.require(CompressedUpdateBuilder.rowValuesName, .f32, [entries, w])
            try tensors.require(CompressedUpdateBuilder.denseValuesName, .f32, [c * denseCount])
            let rows = try tensors.int32s(CompressedUpdateBuilder.rowsName)
            let rowValues = try tensors.floats(CompressedUpdateBuilder.rowValuesName)
            let denseValues = try tensors.floats(CompressedUpdateBuilder.denseValuesName)
            if let bad = (rowValues + denseValues).first(where: { !$0.isFinite }) { throw FedRecError(.corrupt, file: path, "a value is \(bad)") }
            var values = [Float](repeating: 0, count: w)
            for client in 0..<c {
                let start = Int(offsets[client]), end = Int(offsets[client + 1])
                for e in start..<end {
                    let row = try checkedRow(rows, e, start: start, client: client, items: layout.items, file: path)
                    for j in 0..<w { values[j] = rowValues[e * w + j] }
                    sum.addRow(row, values, weight: weights[client])
                }
                for k in 0..<denseCount { sum.dense[k] += denseValues[client * denseCount + k] }
            }
        case .qsgd(let bits):
            try tensors.require(CompressedUpdateBuilder.rowsName, .i32, [entries])
            try tensors.require(CompressedUpdateBuilder.rowScaleName, .f32, [entries])
            try tensors.require(CompressedUpdateBuilder.denseScaleName, .f32, [c * buckets.count])
            let rows = try tensors.int32s(CompressedUpdateBuilder.rowsName)
            let rowScale = try tensors.floats(CompressedUpdateBuilder.rowScaleName)
            let denseScale = try tensors.floats(CompressedUpdateBuilder.denseScaleName)
            if let bad = (rowScale + denseScale).first(where: { !$0.isFinite || $0 < 0 }) {
                throw FedRecError(.corrupt, file: path, "a QSGD scale is \(bad)")
            }
            let rowWords = try levels(file, CompressedUpdateBuilder.rowLevelsName, bits: bits, count: entries * w)
            let denseWords = try levels(file, CompressedUpdateBuilder.denseLevelsName, bits: bits, count: c * denseCount)
            let s = Float(QSGD.levels(bits: bits))
            var values = [Float](repeating: 0, count: w)
            for client in 0..<c {
                let start = Int(offsets[client]), end = Int(offsets[client + 1])
                for e in start..<end {
                    let row = try checkedRow(rows, e, start: start, client: client, items: layout.items, file: path)
                    let step = rowScale[e] / s
                    for j in 0..<w { values[j] = Float(rowWords[e * w + j]) * step }
                    sum.addRow(row, values, weight: weights[client])
                }
                for (b, bucket) in buckets.enumerated() {
                    let step = denseScale[client * buckets.count + b] / s
                    for k in bucket { sum.dense[k] += Float(denseWords[client * denseCount + k]) * step }
                }
            }
        case .topK:
            try tensors.require(CompressedUpdateBuilder.indexName, .i32, [entries])
            try tensors.require(CompressedUpdateBuilder.valueName, .f32, [entries])
            let index = try tensors.int32s(CompressedUpdateBuilder.indexName)
            let value = try tensors.floats(CompressedUpdateBuilder.valueName)
            if let bad = value.first(where: { !$0.isFinite }) { throw FedRecError(.corrupt, file: path, "a top-k value is \(bad)") }
            let length = layout.length, denseStart = layout.items * w
            for client in 0..<c {
                let start = Int(offsets[client]), end = Int(offsets[client + 1])
                var lastRow = -1
                for e in start..<end {
                    let i = index[e]
                    guard i >= 0, Int(i) < length, e == start || index[e - 1] < i else {
                        throw FedRecError(.corrupt, file: path, "client \(client)'s indices are not strictly ascending within 0..<\(length) (index \(i))")
                    }
                    if Int(i) >= denseStart {
                        sum.dense[Int(i) - denseStart] += value[e]
                        continue
                    }
                    let row = Int(i) / w
                    if row != lastRow {
                        sum.touch(row, weight: weights[client])
                        lastRow = row
                    }
                    sum.values[sum.slot(row) * w + Int(i) - row * w] += value[e]
                }
            }
        }
        var decoded = header
        decoded.extra[UpdateCompression.decodedKey] = compression.description
        return sum.update(header: decoded)
    }

    /// `rows[e]`, refused unless within 0..<items and above the client's previous row.
    static func checkedRow(_ rows: [Int32], _ e: Int, start: Int, client: Int, items: Int, file: String) throws -> Int {
        let row = rows[e]
        guard row >= 0, Int(row) < items, e == start || rows[e - 1] < row else {
            throw FedRecError(.corrupt, file: file, "client \(client)'s rows are not strictly ascending within 0..<\(items) (row \(row))")
        }
        return Int(row)
    }

    /// The signed levels of a packed tensor (`.shape` for a wrong length, `.corrupt` for stray
    /// bits or a level of −2^(b−1)).
    static func levels(_ file: FedRecFile, _ name: String, bits: Int, count: Int) throws -> [Int32] {
        let packed = try file.tensors.require(name, .u8, [BitPacking.byteCount(count: count, bits: bits)])
        var words = [UInt32](repeating: 0, count: count)
        do {
            try words.withUnsafeMutableBufferPointer { try BitPacking.unpack(file.tensors.bytes(of: packed), bits: bits, into: $0) }
        } catch let error as FedRecError {
            throw error.inFile(file.path)
        }
        var levels = [Int32](repeating: 0, count: count)
        for i in 0..<count {
            guard let level = QSGD.level(words[i], bits: bits) else {
                throw FedRecError(.corrupt, file: file.path, "tensor \(name) holds level \(-(1 << (bits - 1))) at \(i), outside ±\(QSGD.levels(bits: bits))")
            }
            levels[i] = level
        }
        return levels
    }
}

/// Decoded clients summed by item row: a slot a row, allocated on first touch, so memory
/// follows the rows sent, not the catalogue's values.
struct RowSum {
    let layout: ClientVectorLayout
    var slotOf: [Int32]
    var rows: [Int32] = []
    var clients: [Int32] = []
    var weights: [Float] = []
    var values: [Float] = []
    var dense: [Float]

    init(layout: ClientVectorLayout) {
        self.layout = layout
        slotOf = [Int32](repeating: -1, count: layout.items)
        dense = [Float](repeating: 0, count: layout.denseCount)
    }

    mutating func slot(_ row: Int) -> Int {
        let existing = slotOf[row]
        if existing >= 0 { return Int(existing) }
        let slot = rows.count
        slotOf[row] = Int32(slot)
        rows.append(Int32(row))
        clients.append(0)
        weights.append(0)
        values.append(contentsOf: repeatElement(0, count: layout.width))
        return slot
    }

    /// A client counts for `row` (once per client: the caller touches each row once).
    mutating func touch(_ row: Int, weight: Float) {
        let s = slot(row)
        clients[s] += 1
        weights[s] += weight
    }

    mutating func addRow(_ row: Int, _ add: [Float], weight: Float) {
        touch(row, weight: weight)
        let base = Int(slotOf[row]) * layout.width
        for j in 0..<layout.width { values[base + j] += add[j] }
    }

    /// The ordinary update: rows ascending, the layout's row and dense tensors split apart.
    func update(header: UpdateHeader) -> ModelUpdate {
        let order = rows.indices.sorted { rows[$0] < rows[$1] }
        let w = layout.width
        var rowTensors: [String: RowTensor] = [:]
        var offset = 0
        for part in layout.rowParts {
            var out = [Float]()
            out.reserveCapacity(order.count * part.width)
            for s in order { out.append(contentsOf: values[(s * w + offset)..<(s * w + offset + part.width)]) }
            rowTensors[part.name] = RowTensor(width: part.width, values: out)
            offset += part.width
        }
        var denseTensors: [String: [Float]] = [:]
        offset = 0
        for part in layout.denseParts {
            denseTensors[part.name] = Array(dense[offset..<(offset + part.count)])
            offset += part.count
        }
        return ModelUpdate(
            header: header, rows: order.map { rows[$0] }, rowClients: order.map { clients[$0] }, rowWeight: order.map { weights[$0] },
            rowTensors: rowTensors, dense: denseTensors)
    }
}
