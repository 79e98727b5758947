import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecWire
import FedRecFormats
import FedRecSupport
import FedRecModel

@Suite("ALS statistics on the wire: packed Gram blocks, spilled tensors and the streamed sum")
struct ALSStreamingTests {
    /// Explicit ALS at d = 2: n = 3, a packed block of 6 values.
    let config = ModelConfig(objective: .mse, dim: 2, items: 6, datasetId: "ds")

    @Test("the packed upper triangle of x xᵀ, by hand: x = (1, 2, 3) gives 1 2 3 4 6 9")
    func packedByHand() {
        var packed = [Float](repeating: 0, count: 6)
        let x: [Float] = [1, 2, 3]
        packed.withUnsafeMutableBufferPointer { p in x.withUnsafeBufferPointer { ALSStatistics.addPackedOuter(p.baseAddress!, $0.baseAddress!, n: 3, scale: 2) } }
        #expect(packed == [2, 4, 6, 8, 12, 18])
        var full = [Double](repeating: -1, count: 9)
        packed.withUnsafeBufferPointer { p in full.withUnsafeMutableBufferPointer { ALSStatistics.unpack(p.baseAddress!, n: 3, into: $0.baseAddress!) } }
        #expect(full == [2, 4, 6, 4, 8, 12, 6, 12, 18])
        #expect(ALSStatistics.packedCount(33) == 561)
    }

    @Test("a packed sum of weighted outer products holds the bits of the full sum's upper triangle", arguments: [3, 8, 33])
    func packedEqualsFull(n: Int) {
        var generator = SeededGenerator(seed: UInt64(n), stream: 7)
        var full = [Float](repeating: 0, count: n * n), packed = [Float](repeating: 0, count: n * (n + 1) / 2)
        for user in 0..<50 {
            // Negative, zero and tiny values, as solved user vectors have.
            let x = (0..<n).map { k -> Float in k == user % n ? 0 : Float(Double(generator.next() % 2001) / 1000 - 1) * (k % 5 == 0 ? 1e-6 : 1) }
            let scale: Float = user % 3 == 0 ? 1 : 0.37
            // What training did before the packed layout: the full outer product, then scaled into the sum.
            var outer = [Float](repeating: 0, count: n * n)
            outer.withUnsafeMutableBufferPointer { o in x.withUnsafeBufferPointer { VectorKernels.addOuter(o.baseAddress!, $0.baseAddress!, n: n, scale: 1) } }
            full.withUnsafeMutableBufferPointer { f in outer.withUnsafeBufferPointer { VectorKernels.addScaled(f.baseAddress!, $0.baseAddress!, n: n * n, scale: scale) } }
            packed.withUnsafeMutableBufferPointer { p in x.withUnsafeBufferPointer { ALSStatistics.addPackedOuter(p.baseAddress!, $0.baseAddress!, n: n, scale: scale) } }
        }
        let upper = ALSStatistics.pack(full: full, n: n, rows: 1)
        #expect(upper.map(\.bitPattern) == packed.map(\.bitPattern))
        // The full block is symmetric bit for bit, so the triangle loses nothing.
        #expect((0..<n).allSatisfy { a in (0..<n).allSatisfy { b in full[a * n + b].bitPattern == full[b * n + a].bitPattern } })
    }

    /// An explicit ALS update over `rows` with values drawn from `seed` (signed zeros included).
    func update(rows: [Int32], seed: UInt64, shard: String) -> ModelUpdate {
        var generator = SeededGenerator(seed: seed, stream: 1)
        func value() -> Float {
            let v = generator.next() % 9
            return v == 0 ? -0.0 : Float(Double(generator.next() % 100_000) / 7919 - 5)
        }
        var header = UpdateHeader(config: config, baseModel: "base", round: 2, algorithm: .als, weighting: .uniform,
                                  clients: 5, weight: 5)
        header.shards = [String(repeating: shard, count: 64)]
        return ModelUpdate(
            header: header, rows: rows, rowClients: rows.map { Int32($0 % 5) + 1 }, rowWeight: rows.map { _ in value() },
            rowTensors: [ALSStatistics.gramName: RowTensor(width: 6, values: (0..<(rows.count * 6)).map { _ in value() }),
                         ALSStatistics.rhsName: RowTensor(width: 3, values: (0..<(rows.count * 3)).map { _ in value() })],
            dense: [ALSStatistics.denseName(config): [value(), 7]])
    }

    /// Every row of a streamed sum, as (item, clients, weight bits, Gram bits, rhs bits).
    func streamed(_ paths: [String]) throws -> [[UInt32]] {
        guard let stream = try ALSSumStream.open(paths: paths) else { Issue.record("not streamed"); return [] }
        var out: [[UInt32]] = []
        try stream.forEachRow { row in
            out.append([UInt32(row.item), UInt32(row.clients), row.weight.bitPattern]
                + (0..<6).map { row.gram[$0].bitPattern } + (0..<3).map { row.rhs[$0].bitPattern })
        }
        return out
    }

    func inMemory(_ sum: ModelUpdate) -> [[UInt32]] {
        sum.rows.indices.map { r in
            [UInt32(sum.rows[r]), UInt32(sum.rowClients[r]), sum.rowWeight[r].bitPattern]
                + sum.rowTensors[ALSStatistics.gramName]!.values[(r * 6)..<(r * 6 + 6)].map(\.bitPattern)
                + sum.rowTensors[ALSStatistics.rhsName]!.values[(r * 3)..<(r * 3 + 3)].map(\.bitPattern)
        }
    }

    @Test("the streamed k-way merge of updates equals the in-memory sum bit for bit, one input or several")
    func streamedEqualsInMemory() throws {
        let dir = try TemporaryDirectory()
        let specs: [[Int32]] = [[0, 2, 5], [1, 2, 3], [2, 5], [4]]
        var paths: [String] = []
        for (i, rows) in specs.enumerated() {
            let path = dir.path + "/u\(i).safetensors"
            try update(rows: rows, seed: UInt64(i + 1), shard: "\(i)").write(to: path, kind: .update)
            paths.append(path)
        }
        for chosen in [[paths[0]], [paths[2], paths[0]], paths] {
            let sum = try ModelUpdate.sum(paths: chosen)
            let stream = try #require(try ALSSumStream.open(paths: chosen))
            #expect(stream.header == sum.header)
            #expect(stream.dense.map(\.bitPattern) == sum.dense[ALSStatistics.denseName(config)]!.map(\.bitPattern))
            #expect(stream.rowCount == sum.rows.count)
            #expect(try streamed(chosen) == inMemory(sum))
        }
        // By hand, row 2 of the first two inputs: its clients add up.
        let two = try streamed([paths[0], paths[1]])
        #expect(two.map { $0[0] } == [0, 1, 2, 3, 5] && two[2][1] == 3 + 3)
    }

    @Test("a flipped byte in a streamed Gram block is refused with a checksum error (82)")
    func streamedChecksum() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/u.safetensors"
        try update(rows: [0, 3], seed: 9, shard: "a").write(to: path, kind: .update)
        var bytes = try readBytes(path)
        let file = try SafeTensorsFile(path: path)
        let info = try file.info("rows.als_gram")
        let at = bytes.count - file.data.count + info.byteRange.lowerBound + 5
        bytes[at] ^= 0x40
        try writeAtomically(bytes, to: path)
        #expect { try streamed([path]) } throws: { ($0 as? FedRecError)?.failure == .checksum }
    }

    @Test("a Gram tensor spilled as it is computed makes the same file as one held in memory")
    func spilledIsSameFile() throws {
        let dir = try TemporaryDirectory()
        // Enough rows for several 4 KiB chunks and a short last one.
        let rows = (0..<Int32(5)).map { $0 }
        let big = ModelConfig(objective: .mse, dim: 40, items: 5, datasetId: "ds")
        let t = ALSStatistics.packedCount(41)
        var generator = SeededGenerator(seed: 3, stream: 3)
        let gram = (0..<(rows.count * t)).map { _ in Float(generator.next() % 1000) }
        let header = UpdateHeader(config: big, baseModel: "base", round: 0, algorithm: .als, weighting: .uniform, clients: 1, weight: 1)
        let rhs = RowTensor(width: 41, values: [Float](repeating: 0.5, count: rows.count * 41))
        let dense = [ALSStatistics.denseName(big): [Float(1), 2]]
        let held = ModelUpdate(header: header, rows: rows, rowClients: rows.map { _ in 1 }, rowWeight: rows.map { _ in 1 },
                               rowTensors: [ALSStatistics.gramName: RowTensor(width: t, values: gram), ALSStatistics.rhsName: rhs], dense: dense)
        try held.write(to: dir.path + "/held.safetensors", kind: .update)
        let spill = try SpilledTensor(directory: dir.path, dtype: .f32)
        for r in rows.indices { try gram[(r * t)..<((r + 1) * t)].withUnsafeBytes { try spill.append($0) } }
        try spill.finish()
        var streamed = held
        streamed.rowTensors[ALSStatistics.gramName] = nil
        try streamed.write(to: dir.path + "/spilled.safetensors", kind: .update, spilled: [ALSStatistics.gramName: (t, spill)])
        #expect(try readBytes(dir.path + "/spilled.safetensors") == readBytes(dir.path + "/held.safetensors"))
        // Nothing is left beside the output.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["held.safetensors", "spilled.safetensors"])
    }

    @Test("an ALS update of format version 3 (full Gram blocks) is read with its blocks packed")
    func legacyFullGram() throws {
        let dir = try TemporaryDirectory()
        let header = UpdateHeader(config: config, baseModel: "base", round: 0, algorithm: .als, weighting: .uniform, clients: 1, weight: 1)
        // x = (1, 2, 1) and x = (0, -1, 1): the full blocks x xᵀ.
        let full: [Float] = [1, 2, 1, 2, 4, 2, 1, 2, 1, 0, 0, 0, 0, 1, -1, 0, -1, 1]
        let old = ModelUpdate(header: header, rows: [1, 4], rowClients: [1, 1], rowWeight: [1, 1],
                              rowTensors: [ALSStatistics.gramName: RowTensor(width: 9, values: full), ALSStatistics.rhsName: RowTensor(width: 3, values: [1, 2, 3, 4, 5, 6])],
                              dense: [ALSStatistics.denseName(config): [0, 2]])
        var writer = old.writer(kind: .update)
        writer.metadata["format_version"] = "3"
        try writer.write(to: dir.path + "/old.safetensors")
        let read = try ModelUpdate.load(dir.path + "/old.safetensors")
        #expect(read.rowTensors[ALSStatistics.gramName] == RowTensor(width: 6, values: [1, 2, 1, 4, 2, 1, 0, 0, 0, 1, -1, 1]))
        // Not streamed: the old layout goes through the in-memory sum.
        #expect(try ALSSumStream.open(paths: [dir.path + "/old.safetensors"]) == nil)
        // A version-4 file with full blocks is a shape error, not silently packed.
        try old.write(to: dir.path + "/bad.safetensors", kind: .update)
        #expect(try ModelUpdate.load(dir.path + "/bad.safetensors").rowTensors[ALSStatistics.gramName]?.width == 9)
    }
}
