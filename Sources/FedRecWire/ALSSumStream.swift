import FedRecFormats
import FedRecModel
import FedRecSupport

/// The sum of ALS updates, merged as it is read: the inputs stay memory-mapped and their
/// item rows (ascending in every file) are merged k ways, one summed row at a time, so
/// the server step can solve each item as it comes and memory holds one row, not the
/// catalogue's Gram blocks. The pages of each input are given back to the kernel as the
/// merge passes them (`SafeTensorsFile.releasePages`), and their chunked checksums are
/// verified as they are read (`check()` before anything is released).
///
/// Every summed value equals `ModelUpdate.sum(paths:)`'s bit for bit: inputs are added
/// in the same order (by identity), each row's contributions in that order from +0 (the
/// in-memory merge adds into zeros), a single input's rows as they are.
public final class ALSSumStream {
    /// The header of the sum (as `ModelUpdate.sum` merges it).
    public let header: UpdateHeader
    /// The summed dense part (`ALSStatistics.denseName`).
    public let dense: [Float]
    /// Rows of the sum (items touched by any input).
    public let rowCount: Int

    private struct Input {
        let file: FedRecFile
        let rows: [Int32]
        let clients: [Int32]
        let weights: [Float]
        let gram: (info: TensorInfo, values: UnsafeBufferPointer<Float>)
        let rhs: (info: TensorInfo, values: UnsafeBufferPointer<Float>)
    }
    private let inputs: [Input]
    private let gramWidth: Int
    private let n: Int
    /// Gram bytes of an input read before they are given back (whole pages of them).
    private static let releaseBytes = 512 << 10

    /// Opens `paths` for a streamed sum, or nil when one of them is not a plain ALS
    /// update or sum of format version 4 or later with a chunked checksum (a compressed,
    /// noised or older file, or stdin): `ModelUpdate.sum` reads those.
    /// - Throws: what reading the headers and the small tensors throws, and what adding
    ///   the headers throws (`UpdateHeader.add`): mismatched or duplicate inputs.
    public static func open(paths: [String]) throws -> ALSSumStream? {
        guard !paths.isEmpty, !paths.contains("-") else { return nil }
        let order = try ModelUpdate.plan(paths: paths)
        var files: [FedRecFile] = []
        for entry in order {
            let file = try SafeTensorsFile(path: entry.path)
            guard let version = Int(file.metadata["format_version"] ?? ""), version >= 4,
                file.metadata["checksum"]?.hasPrefix(ChunkedChecksum.prefix) == true,
                file.metadata["algorithm"] == UpdateAlgorithm.als.rawValue,
                file.metadata[UpdateCompression.key] == nil, file.metadata[DPMetadata.mechanism] == nil
            else { return nil }
            let lazy: Set<String> = [ModelUpdate.rowPrefix + ALSStatistics.gramName, ModelUpdate.rowPrefix + ALSStatistics.rhsName]
            files.append(try FedRecFile(file: file, kinds: [.update, .sum], lazyTensors: lazy))
        }
        return try ALSSumStream(files: files)
    }

    private init(files: [FedRecFile]) throws {
        var header: UpdateHeader?
        var dense: [Float] = []
        var inputs: [Input] = []
        var layout: [(name: String, width: Int)] = []
        for file in files {
            let path = file.path
            let own = try ModelUpdate.header(of: file)
            if header == nil {
                header = own
                layout = ALSStatistics.rowLayout(own.config)
            } else {
                try header?.add(own, file: path)
            }
            let tensors = file.tensors
            let (rows, clients, weights) = try ModelUpdate.rowIndex(tensors, header: own)
            let count = rows.count
            let expected = Set([layout[0].name, layout[1].name].map { ModelUpdate.rowPrefix + $0 } + [ModelUpdate.densePrefix + ALSStatistics.denseName(own.config)])
            let present = Set(tensors.names.filter { $0.hasPrefix(ModelUpdate.rowPrefix) || $0.hasPrefix(ModelUpdate.densePrefix) })
            guard present == expected else {
                throw FedRecError(.shape, file: path, "holds tensors \(present.sorted()), expected ALS statistics \(expected.sorted())")
            }
            func rowTensor(_ name: String, width: Int) throws -> (info: TensorInfo, values: UnsafeBufferPointer<Float>) {
                let info = try tensors.require(ModelUpdate.rowPrefix + name, .f32, [count, width])
                return (info, try tensors.floatView(info))
            }
            let gram = try rowTensor(layout[0].name, width: layout[0].width)
            let rhs = try rowTensor(layout[1].name, width: layout[1].width)
            let denseName = ModelUpdate.densePrefix + ALSStatistics.denseName(own.config)
            let values = try tensors.floats(denseName)
            guard values.count == ALSStatistics.denseCount(own.config) else {
                throw FedRecError(.shape, file: path, "tensor \(denseName) has \(values.count) values, expected \(ALSStatistics.denseCount(own.config))")
            }
            // As ModelUpdate.add: the first input's dense part, then each next one added.
            dense = dense.isEmpty ? values : zip(dense, values).map { $0 + $1 }
            inputs.append(Input(file: file, rows: rows, clients: clients, weights: weights, gram: gram, rhs: rhs))
        }
        guard let header else { throw FedRecError(.emptyInput, "no updates to aggregate") }
        self.header = header
        self.dense = dense
        self.inputs = inputs
        gramWidth = layout[0].width
        n = layout[1].width
        rowCount = Set(inputs.flatMap(\.rows)).count
    }

    /// One summed row: the item, its clients and weight, its packed Gram block and
    /// right-hand side (valid during the call only).
    public struct Row {
        public var item: Int
        public var clients: Int32
        public var weight: Float
        public var gram: UnsafePointer<Float>
        public var rhs: UnsafePointer<Float>
    }

    /// Hands every summed row to `body`, in ascending item order.
    /// - Throws: what `body` throws; `.checksum` for bytes of an input that do not match
    ///   their checksum (after the merge: call it before releasing any output).
    public func forEachRow(_ body: (Row) throws -> Void) throws {
        let k = inputs.count
        var cursor = [Int](repeating: 0, count: k)
        var released = [Int](repeating: 0, count: k)
        var gram = [Float](repeating: 0, count: gramWidth)
        var rhs = [Float](repeating: 0, count: n)
        let releaseRows = max(1, Self.releaseBytes / (4 * gramWidth))
        let firstChunks = inputs.map { ($0.file.chunks?.firstChunk(of: $0.gram.info), $0.file.chunks?.firstChunk(of: $0.rhs.info)) }
        while true {
            var item = Int32.max
            for i in 0..<k where cursor[i] < inputs[i].rows.count { item = min(item, inputs[i].rows[cursor[i]]) }
            guard item != Int32.max else { break }
            var clients: Int32 = 0
            var weight: Float = 0
            var single: Int?
            if k == 1 { single = 0 } else {
                for x in 0..<gramWidth { gram[x] = 0 }
                for x in 0..<n { rhs[x] = 0 }
            }
            for i in 0..<k where cursor[i] < inputs[i].rows.count && inputs[i].rows[cursor[i]] == item {
                let input = inputs[i], r = cursor[i]
                let g = r * gramWidth, h = r * n
                if let chunks = input.file.chunks {
                    if let first = firstChunks[i].0 { chunks.verify(input.gram.info, firstChunk: first, bytes: (g * 4)..<((g + gramWidth) * 4)) }
                    if let first = firstChunks[i].1 { chunks.verify(input.rhs.info, firstChunk: first, bytes: (h * 4)..<((h + n) * 4)) }
                }
                clients += input.clients[r]
                weight = single == nil ? weight + input.weights[r] : input.weights[r]
                if single == nil {
                    add(input.gram.values.baseAddress! + g, into: &gram)
                    add(input.rhs.values.baseAddress! + h, into: &rhs)
                }
                cursor[i] += 1
            }
            if let single {
                let input = inputs[single], r = cursor[single] - 1
                try body(Row(item: Int(item), clients: clients, weight: weight,
                             gram: input.gram.values.baseAddress! + r * gramWidth, rhs: input.rhs.values.baseAddress! + r * n))
            } else {
                try gram.withUnsafeBufferPointer { g in
                    try rhs.withUnsafeBufferPointer { h in
                        try body(Row(item: Int(item), clients: clients, weight: weight, gram: g.baseAddress!, rhs: h.baseAddress!))
                    }
                }
            }
            // Give back what every input has been read past.
            for i in 0..<k where cursor[i] - released[i] >= releaseRows || (cursor[i] == inputs[i].rows.count && cursor[i] > released[i]) {
                let input = inputs[i], from = released[i], to = cursor[i]
                input.file.tensors.releasePages(of: input.gram.info, bytes: (from * gramWidth * 4)..<(to * gramWidth * 4))
                input.file.tensors.releasePages(of: input.rhs.info, bytes: (from * n * 4)..<(to * n * 4))
                released[i] = to
            }
        }
        try check()
    }

    /// sum[x] += values[x] for every x of `sum`.
    @inline(__always)
    private func add(_ values: UnsafePointer<Float>, into sum: inout [Float]) {
        sum.withUnsafeMutableBufferPointer { sum in
            for x in 0..<sum.count { sum[x] += values[x] }
        }
    }

    /// Throws the first checksum failure the merge met, if any.
    public func check() throws {
        for input in inputs { try input.file.chunks?.check() }
    }
}
