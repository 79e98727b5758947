import Foundation
import Testing
import FedRecTestSupport
@testable import FedRecWire
import FedRecSecureAggregation
import FedRecFormats
import FedRecSupport
import FedRecModel

@Suite("update compression: QSGD unbiased within Lemma 3.1's bound, top-k with error feedback, files refused when malformed")
struct UpdateCompressionTests {
    let config = ModelConfig(objective: .bpr, dim: 3, items: 6, datasetId: "ds")

    /// QSGD of `values` at `bits` with a seed: the decoded values scale · level / s.
    func decoded(_ values: [Float], bits: Int, seed: UInt64) throws -> [Double] {
        var generator = SeededGenerator(seed: seed)
        var words = [UInt32](repeating: 0, count: values.count)
        let scale = values.withUnsafeBufferPointer { QSGD.scale(of: $0) }
        try values.withUnsafeBufferPointer { v in
            try words.withUnsafeMutableBufferPointer { try QSGD.quantize(v, scale: scale, bits: bits, into: $0, using: &generator) }
        }
        let s = Double(QSGD.levels(bits: bits))
        return try words.map { word in
            let level = try #require(QSGD.level(word, bits: bits))
            return Double(scale) * Double(level) / s
        }
    }

    @Test("a NaN in a bucket is refused, not sent as zeros (its norm is NaN)")
    func nanRefused() throws {
        for bits in [4, 8] {
            let error = try #require(throws: FedRecError.self) { _ = try decoded([0.5, .nan, -0.25], bits: bits, seed: 1) }
            #expect(error.failure == .badData)
        }
    }

    @Test("s = 127 at 8 bits, 7 at 4; a level's word reads back, −2^(b−1) is out of range")
    func levels() {
        #expect(QSGD.levels(bits: 8) == 127 && QSGD.levels(bits: 4) == 7)
        for bits in [4, 8] {
            let s = Int32(QSGD.levels(bits: bits))
            let mask: UInt32 = (1 << UInt32(bits)) - 1
            for level in -s...s { #expect(QSGD.level(UInt32(bitPattern: level) & mask, bits: bits) == level) }
            #expect(QSGD.level(UInt32(1) << UInt32(bits - 1), bits: bits) == nil)
        }
    }

    @Test("exact small cases: (3, 4) has scale 5 and levels ⌊76.2⌋ or ⌈76.2⌉ and ⌊101.6⌋ or ⌈101.6⌉ at the right rates; a lone value and zeros are exact")
    func smallCases() throws {
        var ups = (0, 0)
        let draws = 4000
        for seed in 0..<UInt64(draws) {
            let q = try decoded([3, 4], bits: 8, seed: seed)
            let levels = q.map { ($0 * 127 / 5).rounded() }
            #expect(levels[0] == 76 || levels[0] == 77)
            #expect(levels[1] == 101 || levels[1] == 102)
            if levels[0] == 77 { ups.0 += 1 }
            if levels[1] == 102 { ups.1 += 1 }
        }
        // Binomial(4000, p): 5 standard deviations.
        for (count, p) in [(ups.0, 0.2), (ups.1, 0.6)] {
            #expect(abs(Double(count) / Double(draws) - p) < 5 * (p * (1 - p) / Double(draws)).squareRoot())
        }
        #expect(try decoded([-2], bits: 4, seed: 9) == [-2])
        #expect(try decoded([0, 0, 0], bits: 8, seed: 9) == [0, 0, 0])
        // The scale is rounded up: |v_i| ≤ scale for a value whose square root rounds down.
        let v: [Float] = [0.1]
        #expect(v.withUnsafeBufferPointer { QSGD.scale(of: $0) } >= 0.1)
    }

    @Test("the mean of many decodings converges to the vector, and the mean squared error is within Lemma 3.1's min(n/s², √n/s)·‖v‖²", arguments: [8, 4])
    func unbiased(bits: Int) throws {
        var g = SeededGenerator(seed: 42)
        let n = 33
        let v = (0..<n).map { _ in Float(g.nextGaussian()) }
        let scale = Double(v.withUnsafeBufferPointer { QSGD.scale(of: $0) })
        let s = Double(QSGD.levels(bits: bits))
        let draws = 3000
        var mean = [Double](repeating: 0, count: n)
        var squaredError = 0.0
        for seed in 0..<UInt64(draws) {
            let q = try decoded(v, bits: bits, seed: seed)
            for i in 0..<n {
                mean[i] += q[i] / Double(draws)
                squaredError += (q[i] - Double(v[i])) * (q[i] - Double(v[i])) / Double(draws)
            }
        }
        // Each decoding lies in an interval of width scale/s around v_i: by Hoeffding the mean
        // of `draws` is within 5 · (scale/s) / (2√draws) but with probability < 2e^(−12.5).
        let bound = 5 * (scale / s) / (2 * Double(draws).squareRoot())
        for i in 0..<n { #expect(abs(mean[i] - Double(v[i])) < bound, "coordinate \(i): \(mean[i]) against \(v[i])") }
        // The exact variance Σ (scale/s)² p(1 − p), and the lemma's bound above it.
        let exact = v.reduce(0.0) { total, x in
            let t = Double(abs(x)) * s / scale
            let p = t - t.rounded(.down)
            return total + (scale / s) * (scale / s) * p * (1 - p)
        }
        let norm2 = v.reduce(0.0) { $0 + Double($1) * Double($1) }
        let lemma = min(Double(n) / (s * s), Double(n).squareRoot() / s) * norm2
        #expect(exact <= lemma)
        #expect(abs(squaredError - exact) < 0.1 * exact, "mean squared error \(squaredError), expected \(exact)")
    }

    @Test("4-bit and 8-bit levels pack and unpack: every level of [−s, s] round-trips", arguments: [4, 8])
    func packing(bits: Int) throws {
        let s = Int32(QSGD.levels(bits: bits))
        let mask: UInt32 = (1 << UInt32(bits)) - 1
        let levels = (0..<37).map { Int32($0 % Int(2 * s + 1)) - s }
        let packed = BitPacking.pack(levels.map { UInt32(bitPattern: $0) & mask }, bits: bits)
        #expect(packed.count == (37 * bits + 7) / 8)
        let back = try BitPacking.unpack(packed, bits: bits, count: 37).map { QSGD.level($0, bits: bits) }
        #expect(back == levels)
    }

    /// Sort-based top-k: the positions of the k largest magnitudes, ties to the lower position.
    func referenceTopK(_ v: [Float], _ k: Int) -> [Int] {
        Array(v.indices.sorted { (abs(v[$0]), -$0) > (abs(v[$1]), -$1) }.prefix(k)).sorted()
    }

    @Test("top-k keeps exactly the k largest magnitudes (ties to the lower index), as sorting does")
    func topKSelection() {
        #expect([Float](arrayLiteral: 1, -5, 3, 5, 0).withUnsafeBufferPointer { TopK.select($0, k: 2) } == [1, 3])
        #expect([Float](arrayLiteral: 2, 2, 2, 2).withUnsafeBufferPointer { TopK.select($0, k: 3) } == [0, 1, 2])
        #expect([Float](arrayLiteral: 1, 2).withUnsafeBufferPointer { TopK.select($0, k: 5) } == [0, 1])
        var g = SeededGenerator(seed: 7)
        for trial in 0..<200 {
            let n = 1 + g.nextIndex(below: 300)
            // Few distinct values in some trials, so that ties are common.
            let v = (0..<n).map { _ in trial % 2 == 0 ? Float(g.nextGaussian()) : Float(g.nextIndex(below: 5)) - 2 }
            let k = g.nextIndex(below: n + 1)
            #expect(v.withUnsafeBufferPointer { TopK.select($0, k: k) } == referenceTopK(v, k), "trial \(trial)")
        }
    }

    @Test("error feedback: u = residual + update is split exactly into the k sent and the new residual; with no new updates the residual drains")
    func errorFeedback() {
        let update = SparseVector(index: [0, 2, 5, 9], value: [0.5, -3, 0.25, 1])
        let residual = SparseVector(index: [2, 4, 9], value: [1, -2, -1])
        // u = {0: 0.5, 2: -2, 4: -2, 5: 0.25, 9: 0}; k = ⌈0.5 · 4⌉ = 2: indices 2 and 4.
        let step = TopK.errorFeedback(update: update, residual: residual, ratio: 0.5)
        #expect(step.sent == SparseVector(index: [2, 4], value: [-2, -2]))
        #expect(step.residual == SparseVector(index: [0, 5], value: [0.5, 0.25]))  // 9 cancelled to 0: dropped
        var g = SeededGenerator(seed: 3)
        var memory = SparseVector()
        var total = [Float](repeating: 0, count: 100), sent = [Float](repeating: 0, count: 100)
        for round in 0..<120 {
            var delta = SparseVector()
            if round < 10 {
                for i in stride(from: Int32(round % 3), to: 100, by: 3) {
                    delta.index.append(i)
                    delta.value.append(Float(g.nextGaussian()))
                }
            }
            for (i, x) in zip(delta.index, delta.value) { total[Int(i)] += x }
            let before = memory
            let out = TopK.errorFeedback(update: delta, residual: before, ratio: 0.1)
            #expect(out.sent.count == min(max(1, Int((0.1 * Double(delta.count)).rounded(.up))), Set(delta.index + before.index).count))
            // Everything sent plus everything kept is u, value by value.
            var u = [Float](repeating: 0, count: 100)
            for (i, x) in zip(before.index, before.value) { u[Int(i)] += x }
            for (i, x) in zip(delta.index, delta.value) { u[Int(i)] += x }
            var split = [Float](repeating: 0, count: 100)
            for (i, x) in zip(out.sent.index, out.sent.value) { split[Int(i)] += x; sent[Int(i)] += x }
            for (i, x) in zip(out.residual.index, out.residual.value) { split[Int(i)] += x }
            #expect(split == u)
            memory = out.residual
        }
        // After the updates stop, one value a round drains the memory: all of it is sent.
        #expect(memory.isEmpty)
        for i in 0..<100 { #expect(abs(sent[i] - total[i]) < 1e-5) }
    }

    /// A client's update: rows with values, weight folded in.
    func clientUpdate(rows: [Int32], seed: UInt64, weight: Double = 1) -> ModelUpdate {
        var g = SeededGenerator(seed: seed)
        let header = UpdateHeader(config: config, baseModel: "base", round: 2, algorithm: .sgd, weighting: .uniform, clients: 1, weight: weight)
        return ModelUpdate(
            header: header, rows: rows, rowClients: rows.map { _ in 1 }, rowWeight: rows.map { _ in Float(weight) },
            rowTensors: [
                TensorName.itemEmbedding: RowTensor(width: 3, values: rows.flatMap { _ in (0..<3).map { _ in Float(g.nextGaussian()) } }),
                TensorName.itemBias: RowTensor(width: 1, values: rows.map { _ in Float(g.nextGaussian()) }),
            ],
            dense: [TensorName.globalBias: [Float(g.nextGaussian())]])
    }

    let clientRows: [[Int32]] = [[0, 2, 5], [2, 3], [], [1, 2, 3, 4, 5]]

    /// The shard's header for `clientRows`' clients.
    var shardHeader: UpdateHeader {
        var header = clientRows.indices.map { clientUpdate(rows: clientRows[$0], seed: UInt64($0)) }[0].header
        header.clients = clientRows.count
        header.weight = Double(clientRows.count)
        return header
    }

    var clients: [ModelUpdate] { clientRows.indices.map { clientUpdate(rows: clientRows[$0], seed: UInt64($0)) } }

    func builder(_ compression: UpdateCompression, seed: UInt64 = 5) throws -> CompressedUpdateBuilder {
        try CompressionFixture.builder(compression, layout: try ClientVectorLayout(config: config), clients: clients, seed: seed)
    }

    func plainSum() throws -> ModelUpdate { try CompressionFixture.plainSum(clients) }

    @Test("f32 segments decode to the plain sum exactly; q8/q4 to the same rows and counts, values within one level a client; the decoded sum says what it was")
    func fileRoundTrip() throws {
        let dir = try TemporaryDirectory()
        let plain = try plainSum()
        for compression in [UpdateCompression.float32, .qsgd(bits: 8), .qsgd(bits: 4)] {
            let path = dir.path + "/\(compression).safetensors"
            try builder(compression).write(header: shardHeader, to: path)
            let read = try ModelUpdate.load(path)
            #expect(read.header.extra[UpdateCompression.decodedKey] == compression.description)
            #expect(read.rows == plain.rows && read.rowClients == plain.rowClients && read.rowWeight == plain.rowWeight)
            #expect(read.header.clients == 4 && read.header.weight == 4)
            let got = try #require(read.rowTensors[TensorName.itemEmbedding]?.values), want = try #require(plain.rowTensors[TensorName.itemEmbedding]?.values)
            if compression == .float32 {
                #expect(read.rowTensors == plain.rowTensors && read.dense == plain.dense)
            } else {
                // Each client's value is within scale/s of its own (scale ≤ ‖row‖ ≤ 4 here); ≤ 3 clients a row.
                let s = Float(compression.secureLevels ?? 1)
                for (a, b) in zip(got, want) { #expect(abs(a - b) <= 3 * 4 / s) }
            }
        }
    }

    @Test("top-k decoded: a client counts for a row only when it sends a value of it; the values sent add up")
    func topKFile() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/topk.safetensors"
        let b = try builder(.topK(ratio: 0.25))
        try b.write(header: shardHeader, to: path)
        let read = try ModelUpdate.load(path)
        // Independently: each client's flat vector, its top ⌈0.25 n⌉, summed by row.
        let layout = try ClientVectorLayout(config: config)
        var expected = [Int32: (clients: Int32, values: [Float])]()
        var global: Float = 0
        for (k, rows) in clientRows.enumerated() {
            let flat = try layout.flatten(clientUpdate(rows: rows, seed: UInt64(k)))
            let kept = referenceTopK(flat.value, Int((0.25 * Double(flat.count)).rounded(.up)))
            var touched = Set<Int32>()
            for p in kept {
                let i = Int(flat.index[p]), row = Int32(i / 4)
                if row == 6 { global += flat.value[p]; continue }
                var entry = expected[row] ?? (0, [0, 0, 0, 0])
                if touched.insert(row).inserted { entry.clients += 1 }
                entry.values[i % 4] += flat.value[p]
                expected[row] = entry
            }
        }
        #expect(read.rows == expected.keys.sorted())
        #expect(read.rowClients == read.rows.map { expected[$0]?.clients ?? -1 })
        #expect(read.rowTensors[TensorName.itemEmbedding]?.values == read.rows.flatMap { Array((expected[$0]?.values ?? []).prefix(3)) })
        #expect(read.rowTensors[TensorName.itemBias]?.values == read.rows.map { expected[$0]?.values[3] ?? .nan })
        #expect(read.dense[TensorName.globalBias] == [global])
    }

    @Test("the same inputs and seed give bit-identical files; another seed other bytes")
    func deterministic() throws {
        let temporary = try TemporaryDirectory()
        let dir = temporary.path
        let a = try builder(.qsgd(bits: 4), seed: 1).writer(header: shardHeader).write(to: dir + "/a")
        let b = try builder(.qsgd(bits: 4), seed: 1).writer(header: shardHeader).write(to: dir + "/b")
        let c = try builder(.qsgd(bits: 4), seed: 2).writer(header: shardHeader).write(to: dir + "/c")
        #expect(a == b && a != c)
    }

    /// The builder's file with tensor `name` replaced by `payload` (checksums recomputed).
    func tampered(_ compression: UpdateCompression, _ name: String, shape: [Int], _ payload: SafeTensorsWriter.Payload, in dir: String) throws -> String {
        try CompressionFixture.written(try builder(compression), header: shardHeader, to: dir + "/bad-\(name).safetensors") { $0.add(name, shape: shape, payload) }
    }

    @Test("malformed compressed tensors are refused naming the file: wrong lengths (83), levels out of range, rows or indices out of range, unsorted or repeated (84)")
    func malformed() throws {
        let temporary = try TemporaryDirectory()
        let dir = temporary.path
        let b = try builder(.qsgd(bits: 4))
        let levelBytes = BitPacking.byteCount(count: b.entries * 4, bits: 4)
        expectRefused(try tampered(.qsgd(bits: 4), "row_levels", shape: [levelBytes - 1], .u8([UInt8](repeating: 0, count: levelBytes - 1)), in: dir), .shape, says: "row_levels")
        expectRefused(try tampered(.qsgd(bits: 4), "row_levels", shape: [levelBytes], .u8([UInt8](repeating: 0x88, count: levelBytes)), in: dir), .corrupt, says: "level -8")
        expectRefused(try tampered(.qsgd(bits: 8), "rows", shape: [b.entries], .i32([0, 5, 2] + b.rows.dropFirst(3)), in: dir), .corrupt, says: "not strictly ascending")
        expectRefused(try tampered(.qsgd(bits: 8), "rows", shape: [b.entries], .i32([0, 2, 6] + b.rows.dropFirst(3)), in: dir), .corrupt, says: "within 0..<6")
        expectRefused(try tampered(.qsgd(bits: 8), "row_scale", shape: [b.entries], .f32([-1] + b.rowScale.dropFirst()), in: dir), .corrupt, says: "scale")
        expectRefused(try tampered(.float32, "client_offset", shape: [5], .i32([0, 3, 2, 5, 10]), in: dir), .corrupt, says: "client_offset")
        expectRefused(try tampered(.float32, "client_offset", shape: [4], .i32([0, 3, 5, 10]), in: dir), .shape, says: "client_offset")
        let t = try builder(.topK(ratio: 0.5))
        var repeated = t.index
        repeated[1] = repeated[0]
        expectRefused(try tampered(.topK(ratio: 0.5), "index", shape: [t.index.count], .i32(repeated), in: dir), .corrupt, says: "strictly ascending")
        var outside = t.index
        outside[t.clientOffset[1] == 0 ? 0 : Int(t.clientOffset[1]) - 1] = 25
        expectRefused(try tampered(.topK(ratio: 0.5), "index", shape: [t.index.count], .i32(outside), in: dir), .corrupt, says: "within 0..<25")
        expectRefused(try tampered(.topK(ratio: 0.5), "value", shape: [t.index.count - 1], .f32(Array(t.value.dropFirst())), in: dir), .shape, says: "value")
        // Compression on an ALS update, or an unknown scheme.
        var writer = try builder(.float32).writer(header: shardHeader)
        writer.metadata[UpdateCompression.key] = "q3"
        _ = try writer.write(to: dir + "/q3.safetensors")
        expectRefused(dir + "/q3.safetensors", .corrupt, says: "q3")
    }

    @Test("fuzz: flipped bytes in every compressed tensor are decoded or refused with a FedRecError naming the file, never a crash")
    func flippedBytes() throws {
        let temporary = try TemporaryDirectory()
        let dir = temporary.path
        var g = SeededGenerator(seed: 11)
        var refused = 0
        for compression in [UpdateCompression.float32, .qsgd(bits: 8), .qsgd(bits: 4), .topK(ratio: 0.3)] {
            let path = dir + "/fuzz.safetensors"
            try builder(compression).write(header: shardHeader, to: path)
            let original = try SafeTensorsFile(path: path)
            let names = original.names.filter { (original.tensors[$0]?.byteRange.count ?? 0) > 0 }
            for _ in 0..<150 {
                let name = names[g.nextIndex(below: names.count)]
                let info = try #require(original.tensors[name])
                var bytes = Array(original.bytes(of: info))
                bytes[g.nextIndex(below: bytes.count)] ^= UInt8(1 << g.nextIndex(below: 8))
                var writer = try builder(compression).writer(header: shardHeader)
                writer.add(name, shape: info.shape, try Self.payload(info.dtype, bytes))
                let bad = dir + "/flipped.safetensors"
                _ = try writer.write(to: bad)
                do {
                    _ = try ModelUpdate.load(bad)
                } catch let error as FedRecError {
                    #expect(error.file == bad)
                    refused += 1
                }
            }
        }
        #expect(refused > 50)
    }

    static func payload(_ dtype: DType, _ bytes: [UInt8]) throws -> SafeTensorsWriter.Payload {
        func load<T>(_: T.Type) -> [T] {
            bytes.withUnsafeBytes { raw in (0..<(bytes.count / MemoryLayout<T>.size)).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self) } }
        }
        switch dtype {
        case .u8: return .u8(bytes)
        case .i32: return .i32(load(Int32.self))
        case .f32: return .f32(load(Float.self))
        default: throw FedRecError(.usage, "no payload for \(dtype)")
        }
    }

    @Test("under secure aggregation q4 caps a party's levels at 7 on the shared scale: integer sums decode within n·c/s, unbiased, counts exact beyond 7")
    func secureComposition() throws {
        let parties = 3
        let bits = Quantizer.bitsNeeded(parties: parties, levels: 7)
        #expect(bits == 6)
        let quantizer = try Quantizer(clipBound: 4, modulusBits: 12, maximumParties: parties, maximumLevels: 7)
        #expect(quantizer.levels == 7 && quantizer.countLevels == 2047 / 3)
        var updates = (0..<parties).map { clientUpdate(rows: clientRows[$0 == 2 ? 3 : $0], seed: UInt64($0)) }
        for k in updates.indices { updates[k].header.weighting = .examples; updates[k].header.weight = 20; updates[k].rowWeight = updates[k].rowWeight.map { _ in 20 } }
        let layout = try SecureUpdateLayout(update: updates[0], clip: 4)
        var plain = updates[0]
        for u in updates.dropFirst() { try plain.add(u, file: "u") }
        let draws = 400
        var mean = [Double](repeating: 0, count: 6 * 3)
        for seed in 0..<UInt64(draws) {
            var generator = SeededGenerator(seed: seed)
            var sum = [UInt32](repeating: 0, count: layout.length)
            for u in updates {
                let (words, _) = try layout.encode(u, quantizer: quantizer, using: &generator)
                for i in sum.indices { sum[i] = (sum[i] &+ words[i]) & quantizer.modulusMask }
            }
            let decoded = try layout.decode(sum, parties: parties, quantizer: quantizer, header: plain.header)
            #expect(decoded.rows == plain.rows && decoded.rowClients == plain.rowClients && decoded.rowWeight == plain.rowWeight)
            let got = try #require(decoded.rowTensors[TensorName.itemEmbedding]?.values), want = try #require(plain.rowTensors[TensorName.itemEmbedding]?.values)
            for (a, b) in zip(got, want) { #expect(abs(a - b) <= Float(parties) * 4 / 7 + 1e-5) }
            for i in got.indices { mean[i] += Double(got[i]) / Double(draws) }
        }
        let want = try #require(plain.rowTensors[TensorName.itemEmbedding]?.values)
        // Each party's rounding error lies in a width c/s = 4/7: Hoeffding at 5 standard widths.
        for i in want.indices { #expect(abs(mean[i] - Double(want[i])) < 5 * (Double(parties).squareRoot() * 4 / 7) / (2 * Double(draws).squareRoot())) }
    }

    @Test("a masked update records its level cap (secagg_levels) and reads back the same quantizer; without a cap none is written")
    func maskedFileRecordsLevels() throws {
        let temporary = try TemporaryDirectory()
        let update = clientUpdate(rows: [1, 2], seed: 1)
        let layout = try SecureUpdateLayout(update: update, clip: 2)
        for cap in [Int64(7), nil] {
            let quantizer = try Quantizer(clipBound: 2, modulusBits: 14, maximumParties: 5, maximumLevels: cap)
            #expect(quantizer.levels == (cap ?? 8191 / 5))
            var g = SeededGenerator(seed: 1)
            let (words, clipped) = try layout.encode(update, quantizer: quantizer, using: &g)
            #expect(words.allSatisfy { quantizer.signedValue($0) <= quantizer.countLevels })
            let masked = try MaskedInput(sessionID: [UInt8](repeating: 1, count: 32), round: 2, modulusBits: 14, parties: [0], values: words)
            let path = temporary.path + "/m\(cap ?? 0)"
            try MaskedUpdateFile(header: update.header, layout: layout, quantizer: quantizer, masked: masked, clipped: clipped).write(to: path, kind: .maskedUpdate)
            #expect(try SafeTensorsFile(path: path).metadata["secagg_levels"] == cap.map(String.init))
            #expect(try MaskedUpdateFile.read(path).file.quantizer == quantizer)
        }
    }
}
