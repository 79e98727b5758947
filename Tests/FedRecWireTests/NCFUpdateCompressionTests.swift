import Foundation
import Testing
import FedRecTestSupport
@testable import FedRecWire
import FedRecFormats
import FedRecSupport
import FedRecModel

@Suite("NCF update compression: the layout and its buckets, f32 exact, QSGD unbiased, top-k's split, layouts refused when they do not fit")
struct NCFUpdateCompressionTests {
    /// NeuMF with 3 GMF factors, a 2-value MLP embedding and a 4, 2 tower: W = 5 and the
    /// dense tensors mlp.w0 [4, 4], mlp.b0 [4], mlp.w1 [2, 4], mlp.b1 [2], out.w [3 + 2], out.b [1].
    let network = try! NCFNetwork(variant: .neumf, gmfDim: 3, mlpDim: 2, layers: [4, 2])
    let config = ModelConfig(family: .ncf, objective: .bce, dim: 5, items: 6, datasetId: "ds")
    var layout: ClientVectorLayout { try! ClientVectorLayout(items: 6, network: network) }

    /// A client's NCF update: `rows` with values, every dense tensor, weight folded in.
    func clientUpdate(rows: [Int32], seed: UInt64) -> ModelUpdate {
        var g = SeededGenerator(seed: seed)
        let header = UpdateHeader(config: config, baseModel: "base", round: 1, algorithm: .sgd, weighting: .uniform, clients: 1, weight: 1)
        var dense: [String: [Float]] = [:]
        for entry in network.denseLayout { dense[entry.name] = (0..<entry.shape.reduce(1, *)).map { _ in Float(g.nextGaussian()) } }
        return ModelUpdate(
            header: header, rows: rows, rowClients: rows.map { _ in 1 }, rowWeight: rows.map { _ in 1 },
            rowTensors: [
                NCFNetwork.gmfItem: RowTensor(width: 3, values: rows.flatMap { _ in (0..<3).map { _ in Float(g.nextGaussian()) } }),
                NCFNetwork.mlpItem: RowTensor(width: 2, values: rows.flatMap { _ in (0..<2).map { _ in Float(g.nextGaussian()) } }),
            ],
            dense: dense)
    }

    let clientRows: [[Int32]] = [[0, 2, 5], [2, 3], [1, 2, 3, 4, 5]]

    var shardHeader: UpdateHeader {
        var header = clientUpdate(rows: [], seed: 0).header
        header.clients = clientRows.count
        header.weight = Double(clientRows.count)
        return header
    }

    var clients: [ModelUpdate] { clientRows.indices.map { clientUpdate(rows: clientRows[$0], seed: UInt64($0)) } }

    func builder(_ compression: UpdateCompression, seed: UInt64 = 5) throws -> CompressedUpdateBuilder {
        try CompressionFixture.builder(compression, layout: layout, clients: clients, seed: seed)
    }

    func plainSum() throws -> ModelUpdate { try CompressionFixture.plainSum(clients) }

    @Test("W = gmf + mlp widths, D the tower's values; a bucket per weight-matrix row and per other tensor; recorded in the metadata, mf's left implicit")
    func layoutAndBuckets() throws {
        #expect(layout.width == 5 && layout.denseCount == 16 + 4 + 8 + 2 + 5 + 1 && layout.length == 6 * 5 + 36)
        #expect(layout.rowParts == [.init("gmf_item", width: 3), .init("mlp_item", width: 2)])
        let expected: [Range<Int>] = [0..<4, 4..<8, 8..<12, 12..<16, 16..<20, 20..<24, 24..<28, 28..<30, 30..<35, 35..<36]
        #expect(layout.denseBuckets == expected)
        #expect(layout.metadata(config: config) == [
            "compression_rows": "gmf_item:3,mlp_item:2",
            "compression_dense": "mlp.w0:4x4,mlp.b0:4,mlp.w1:2x4,mlp.b1:2,out.w:5,out.b:1",
        ])
        let mf = ModelConfig(objective: .bpr, dim: 3, items: 6, datasetId: "ds")
        #expect(try ClientVectorLayout(config: mf).metadata(config: mf).isEmpty)
        #expect(try ClientVectorLayout(config: mf).denseBuckets == [0..<1])
        // GMF: one row tensor, the prediction layer only.
        let gmf = try ClientVectorLayout(items: 6, network: try NCFNetwork(variant: .gmf, gmfDim: 4, mlpDim: 0, layers: []))
        #expect(gmf.width == 4 && gmf.denseCount == 5 && gmf.denseBuckets == [0..<4, 4..<5])
        #expect(throws: FedRecError.self) { try ClientVectorLayout(items: 6, rows: [.init("a", width: 2)], dense: [.init("a", shape: [1])]) }
        #expect(throws: FedRecError.self) { try ClientVectorLayout(items: 6, rows: [.init("a", width: 2)], dense: [.init("b", shape: [1, 2, 3])]) }
    }

    @Test("f32 segments of NCF clients decode to the plain sum bit for bit, rows, counts, item rows and every tower tensor")
    func float32Exact() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/f32.safetensors"
        try builder(.float32).write(header: shardHeader, to: path)
        let file = try SafeTensorsFile(path: path)
        #expect(file.metadata["compression_rows"] == "gmf_item:3,mlp_item:2")
        let read = try ModelUpdate.load(path)
        let plain = try plainSum()
        #expect(read.rows == plain.rows && read.rowClients == plain.rowClients && read.rowWeight == plain.rowWeight)
        #expect(read.rowTensors == plain.rowTensors && read.dense == plain.dense)
        #expect(read.header.extra["compression_rows"] == nil && read.header.extra[UpdateCompression.decodedKey] == "f32")
    }

    /// Row k's W values: its gmf_item values, then its mlp_item values.
    func row(_ update: ModelUpdate, _ k: Int) -> [Float] {
        let g: [Float] = update.rowTensors[NCFNetwork.gmfItem]!.values, m: [Float] = update.rowTensors[NCFNetwork.mlpItem]!.values
        return Array(g[(k * 3)..<(k * 3 + 3)]) + Array(m[(k * 2)..<(k * 2 + 2)])
    }

    /// The L2 norm of each QSGD bucket of a client (rows then dense), computed here from the shapes.
    func bucketNorms(_ update: ModelUpdate) -> (rows: [Double], dense: [Double]) {
        func norm(_ v: [Float]) -> Double { v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        let rows = update.rows.indices.map { norm(row(update, $0)) }
        var dense: [Double] = []
        for entry in network.denseLayout {
            let values = update.dense[entry.name]!
            if entry.shape.count == 2 {
                for r in 0..<entry.shape[0] { dense.append(norm(Array(values[(r * entry.shape[1])..<((r + 1) * entry.shape[1])]))) }
            } else {
                dense.append(norm(values))
            }
        }
        return (rows, dense)
    }

    @Test("QSGD on NCF: scales are the buckets' norms; the mean of many decoded sums converges to the plain sum within Hoeffding's bound", arguments: [8, 4])
    func unbiased(bits: Int) throws {
        let dir = try TemporaryDirectory()
        let plain = try plainSum()
        let s = Double(QSGD.levels(bits: bits))
        let clients = clientRows.indices.map { clientUpdate(rows: clientRows[$0], seed: UInt64($0)) }
        let norms = clients.map(bucketNorms)
        // The scales written are the norms (rounded up to float32).
        let first = dir.path + "/first.safetensors"
        try builder(.qsgd(bits: bits), seed: 0).write(header: shardHeader, to: first)
        let file = try SafeTensorsFile(path: first)
        let scales: [Float] = try file.floats("row_scale") + file.floats("dense_scale")
        let bucketNorms: [Double] = norms.flatMap(\.rows) + norms.flatMap(\.dense)
        #expect(scales.count == bucketNorms.count && bucketNorms.count == 10 + 3 * 10)
        for (scale, norm) in zip(scales, bucketNorms) { #expect(Double(scale) >= norm && Double(scale) <= norm * (1 + 1e-6)) }
        // R_i: the width of the interval a coordinate's decoded sum lies in, Σ over the
        // clients sending it of their bucket's scale / s.
        let w = 5
        var rowRange = [Int32: [Double]](), denseRange = [Double](repeating: 0, count: 36)
        for (c, rows) in clientRows.enumerated() {
            for (k, row) in rows.enumerated() {
                var range = rowRange[row] ?? [Double](repeating: 0, count: w)
                for j in 0..<w { range[j] += norms[c].rows[k] / s }
                rowRange[row] = range
            }
            for (b, bucket) in layout.denseBuckets.enumerated() { for i in bucket { denseRange[i] += norms[c].dense[b] / s } }
        }
        func flat(_ u: ModelUpdate) -> (rows: [Double], dense: [Double]) {
            var rows: [Double] = [], dense: [Double] = []
            for k in u.rows.indices { rows += row(u, k).map(Double.init) }
            for entry in network.denseLayout { dense += u.dense[entry.name]!.map(Double.init) }
            return (rows, dense)
        }
        let want = flat(plain)
        let ranges = plain.rows.flatMap { rowRange[$0]! }
        let draws = 1500
        var mean = (rows: [Double](repeating: 0, count: want.rows.count), dense: [Double](repeating: 0, count: 36))
        for seed in 0..<UInt64(draws) {
            let path = dir.path + "/q.safetensors"
            try builder(.qsgd(bits: bits), seed: seed).write(header: shardHeader, to: path)
            let read = try ModelUpdate.load(path)
            #expect(read.rows == plain.rows && read.rowClients == plain.rowClients)
            let got = flat(read)
            for i in got.rows.indices {
                #expect(abs(got.rows[i] - want.rows[i]) <= ranges[i] * (1 + 1e-5))
                mean.rows[i] += got.rows[i] / Double(draws)
            }
            for i in got.dense.indices {
                #expect(abs(got.dense[i] - want.dense[i]) <= denseRange[i] * (1 + 1e-5))
                mean.dense[i] += got.dense[i] / Double(draws)
            }
        }
        // Hoeffding: the mean of `draws` values in an interval of width R is within
        // 5R / (2√draws) of its expectation but with probability 2e^(−12.5) < 10⁻⁵.
        let root = Double(draws).squareRoot()
        for i in want.rows.indices { #expect(abs(mean.rows[i] - want.rows[i]) < 5 * ranges[i] / (2 * root), "row value \(i)") }
        for i in want.dense.indices { #expect(abs(mean.dense[i] - want.dense[i]) < 5 * denseRange[i] / (2 * root), "dense value \(i)") }
    }

    @Test("top-k over the NCF vector: sent plus kept is u = e + Δ exactly, and the decoded sum puts each sent dense index in its tower tensor")
    func topK() throws {
        let update = clientUpdate(rows: [1, 4], seed: 9)
        let flat = try layout.flatten(update)
        #expect(flat.count == 2 * 5 + 36 && flat.index.last == Int32(6 * 5 + 35))
        // The flat vector by hand: row r's gmf then mlp values at r·5, the dense part at 30.
        #expect(flat.index[0] == 5 && flat.value[0] == update.rowTensors[NCFNetwork.gmfItem]!.values[0])
        #expect(flat.index[3] == 8 && flat.value[3] == update.rowTensors[NCFNetwork.mlpItem]!.values[0])
        #expect(flat.index[10] == 30 && flat.value[10] == update.dense["mlp.w0"]![0])
        #expect(flat.value[45] == update.dense[NCFNetwork.outBias]![0])
        var residual = SparseVector()
        for round in 0..<3 {
            let delta = try layout.flatten(clientUpdate(rows: [1, 4], seed: 9 + UInt64(round)))
            let step = TopK.errorFeedback(update: delta, residual: residual, ratio: 0.2)
            #expect(step.sent.count == 10)
            var u = [Int32: Float](), split = [Int32: Float]()
            for (i, v) in zip(delta.index, delta.value) { u[i, default: 0] += v }
            for (i, v) in zip(residual.index, residual.value) { u[i, default: 0] += v }
            for (i, v) in zip(step.sent.index, step.sent.value) { split[i, default: 0] += v }
            for (i, v) in zip(step.residual.index, step.residual.value) { split[i, default: 0] += v }
            // Each coordinate of u is either sent or kept, unchanged (exact zeros are dropped).
            #expect(Set(split.keys).isSubset(of: u.keys))
            for (i, v) in u { #expect((split[i] ?? 0) == v, "index \(i)") }
            residual = step.residual
        }
        let dir = try TemporaryDirectory()
        let path = dir.path + "/topk.safetensors"
        let b = try builder(.topK(ratio: 0.3))
        try b.write(header: shardHeader, to: path)
        let read = try ModelUpdate.load(path)
        var dense = [Float](repeating: 0, count: 36)
        for (i, v) in zip(b.index, b.value) where i >= 30 { dense[Int(i) - 30] += v }
        var offset = 0
        for entry in network.denseLayout {
            let count = entry.shape.reduce(1, *)
            #expect(read.dense[entry.name] == Array(dense[offset..<(offset + count)]), "\(entry.name)")
            offset += count
        }
    }

    /// The q8 file of `builder` with metadata `key` set to `value` (nil: removed).
    func relabelled(_ key: String, _ value: String?, compression: UpdateCompression = .qsgd(bits: 8), in dir: String) throws -> String {
        try CompressionFixture.written(try builder(compression), header: shardHeader, to: dir + "/relabelled-\(key)-\(value ?? "none").safetensors") { $0.metadata[key] = value }
    }

    @Test("a layout that does not fit is refused naming the file: none recorded or malformed (84), rows not the model's dim, buckets not the tensors' (83)")
    func layoutRefused() throws {
        let temporary = try TemporaryDirectory()
        let dir = temporary.path
        expectRefused(try relabelled("compression_rows", nil, in: dir), .corrupt, says: "compression_rows")
        expectRefused(try relabelled("compression_rows", "gmf_item", in: dir), .corrupt, says: "NAME:SIZE")
        expectRefused(try relabelled("compression_rows", "gmf_item:3,gmf_item:2", in: dir), .corrupt, says: "gmf_item")
        expectRefused(try relabelled("compression_rows", "gmf_item:3,mlp_item:3", in: dir), .shape, says: "6 values")
        // The same dense values in other buckets: the scales no longer fit.
        expectRefused(try relabelled("compression_dense", "mlp.w0:2x8,mlp.b0:4,mlp.w1:2x4,mlp.b1:2,out.w:5,out.b:1", in: dir), .shape, says: "dense_scale")
        expectRefused(try relabelled("compression_dense", "mlp.w0:4x4,mlp.b0:4,mlp.w1:2x4,mlp.b1:2,out.w:5,out.b:2", compression: .float32, in: dir), .shape, says: "dense_values")
        // An mf update (its layout implied) that records another one.
        let mf = ModelConfig(objective: .bpr, dim: 4, items: 6, datasetId: "ds")
        var header = shardHeader
        header.config = mf
        var writer = try builder(.float32).writer(header: header)
        _ = try writer.write(to: dir + "/mf.safetensors")
        expectRefused(dir + "/mf.safetensors", .shape, says: "not the mf model's")
        writer.metadata["compression_rows"] = nil
        writer.metadata["compression_dense"] = nil
        _ = try writer.write(to: dir + "/mf-implied.safetensors")
        expectRefused(dir + "/mf-implied.safetensors", .shape, says: "dense_values")
    }
}
