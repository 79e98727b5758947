import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport
import FedRecFormats
import FedRecModel
import FedRecWire

/// fl-train-local --compress through the commands: marked updates that fl-aggregate decodes,
/// error feedback kept in the state file, malformed files refused, and what does not compose.
@Suite("update compression through the commands: f32, q8, q4, top-k with error feedback", .serialized)
struct CompressionCommandTests {
    let data: SyntheticDataset
    let model: String
    var dir: String { data.directory.path }
    var shard: String { data.shards[0] }

    init() throws {
        data = try SyntheticDataset(users: 30, items: 25, perUser: 10)
        model = try data.initialModel(.mse, dim: 4)
    }

    /// fl-train-local on shard 0 (SGD, users rebuilt) with `extra`; the update's path.
    @discardableResult
    func train(_ name: String, _ extra: [String], expect code: Int32 = 0, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let out = dir + "/" + name
        let r = try Tool.run("fl-train-local", ["--model", model, "--shard", shard, "--reconstruct", "--algorithm", "sgd", "--epochs", "2", "--lr", "0.05", "-o", out, "--quiet"] + extra)
        #expect(r.status == code, "\(extra): \(r.stderr)", sourceLocation: sourceLocation)
        return out
    }

    func size(_ path: String) throws -> Int { try readBytes(path).count }

    @Test("f32 segments sum to the plain update exactly; q8, q4 and top-k are marked, smaller, and fl-aggregate sums and applies them")
    func schemes() throws {
        let plain = try ModelUpdate.load(try train("plain.safetensors", []))
        let f32Path = try train("f32.safetensors", ["--compress", "f32"])
        let f32 = try ModelUpdate.load(f32Path)
        #expect(f32.rows == plain.rows && f32.rowClients == plain.rowClients && f32.rowWeight == plain.rowWeight)
        #expect(f32.rowTensors == plain.rowTensors && f32.dense == plain.dense)
        var sizes = [String: Int]()
        for scheme in ["f32", "q8", "q4", "topk:0.1"] {
            let path = try train("u-\(scheme).safetensors", ["--compress", scheme, "--state", dir + "/st-\(scheme)", "--compress-seed", "1"])
            sizes[scheme] = try size(path)
            let marked = try Tool.run("fl-inspect", [path, "--field", "metadata.compression"])
            #expect(marked.stdout == scheme + "\n", "\(marked.stdout) \(marked.stderr)")
            let sum = try Tool.run("fl-aggregate", [path, "-o", dir + "/sum-\(scheme).sum"])
            #expect(sum.status == 0, "\(sum.stderr)")
            let summed = try ModelUpdate.load(dir + "/sum-\(scheme).sum")
            #expect(summed.header.extra[UpdateCompression.decodedKey] == scheme && summed.header.clients == plain.header.clients)
            let next = try Tool.run("fl-aggregate", [path, "--model", model, "-o", dir + "/next-\(scheme).safetensors"])
            #expect(next.status == 0, "\(next.stderr)")
        }
        // Per value: f32 4 bytes, q8 1 byte plus a scale a row, q4 half a byte, top-k 8 bytes for
        // a tenth; the header (about 1.5 kB here) the same for all.
        #expect(sizes["f32", default: 0] > sizes["q8", default: 0] && sizes["q8", default: 0] > sizes["q4", default: 0])
        #expect(sizes["f32", default: 0] > 2 * sizes["topk:0.1", default: .max])
    }

    @Test("the same --compress-seed gives bit-identical updates; without one the rounding is fresh each run")
    func seeded() throws {
        let a = try readBytes(try train("a.safetensors", ["--compress", "q4", "--compress-seed", "3"]))
        let b = try readBytes(try train("b.safetensors", ["--compress", "q4", "--compress-seed", "3"]))
        let c = try readBytes(try train("c.safetensors", ["--compress", "q4"]))
        let d = try readBytes(try train("d.safetensors", ["--compress", "q4"]))
        #expect(a == b && c != d && a != c)
    }

    /// Every client's sent values plus its kept residual, summed over clients, by flat index.
    func sentPlusKept(update: String, state: String, residualScale: Float = 1) throws -> [Int: Float] {
        let file = try SafeTensorsFile(path: update)
        var total = [Int: Float]()
        for (i, v) in zip(try file.int32s("index"), try file.floats("value")) { total[Int(i), default: 0] += v }
        let config = try ModelUpdate.load(update).header.config
        let residuals = try UserState.load(state, config: config).state.residuals
        for vector in residuals.values {
            for (i, v) in zip(vector.index, vector.value) { total[Int(i), default: 0] += residualScale * v }
        }
        return total
    }

    @Test("top-k keeps its residual in the state file: round two sends and keeps residual + update, what round one kept counted twice")
    func errorFeedbackState() throws {
        let r = try Tool.run("fl-train-local", ["--model", model, "--shard", shard, "--reconstruct", "--compress", "topk:0.2", "-o", dir + "/x"])
        #expect(r.status == 64 && r.stderrLines.count == 1 && r.stderr.contains("--state"), "\(r.stderr)")
        let first = try train("t1.safetensors", ["--compress", "topk:0.2", "--state", dir + "/none", "--state-out", dir + "/s1"])
        let names = try SafeTensorsFile(path: dir + "/s1").names
        #expect(names.contains("residual.index") && names.contains("residual.values"))
        // The same model and seed train the same Δ again: u₂ = e₁ + Δ = e₁ + (sent₁ + e₁).
        let second = try train("t2.safetensors", ["--compress", "topk:0.2", "--state", dir + "/s1", "--state-out", dir + "/s2"])
        let expected = try sentPlusKept(update: first, state: dir + "/s1", residualScale: 2)
        let got = try sentPlusKept(update: second, state: dir + "/s2")
        #expect(Set(expected.filter { $0.value != 0 }.keys) == Set(got.filter { $0.value != 0 }.keys))
        for (i, v) in expected { #expect(abs((got[i] ?? 0) - v) <= 1e-5 * max(1, abs(v)), "index \(i)") }
        #expect(try readBytes(first) != readBytes(second))
    }

    @Test("a malformed compressed update is refused by fl-aggregate with one line naming it (84), nothing written")
    func malformed() throws {
        let path = try train("q.safetensors", ["--compress", "q8", "--compress-seed", "1"])
        let file = try SafeTensorsFile(path: path)
        var writer = SafeTensorsWriter(metadata: file.metadata.filter { $0.key != "checksum" && $0.key != "header_checksum" })
        for name in file.names {
            let info = try #require(file.tensors[name])
            switch info.dtype {
            case .u8: writer.add(name, shape: info.shape, .u8(Array(file.bytes(of: info))))
            case .f32: writer.add(name, shape: info.shape, floats: try file.floats(name))
            default:
                var values = try file.int32s(name)
                if name == "rows" { values[0] = 999 }
                writer.add(name, shape: info.shape, int32s: values)
            }
        }
        _ = try writer.write(to: dir + "/bad.safetensors")
        let r = try Tool.run("fl-aggregate", ["bad.safetensors", "-o", "out.sum"], in: dir)
        #expect(r.status == 84 && r.stderrLines.count == 1 && r.stderr.hasPrefix("fl-aggregate: bad.safetensors: ") && r.stderr.contains("rows"), "\(r.status) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/out.sum"))
    }

    @Test("what does not compose is refused (64): compression of ALS statistics, of clipped (DP) deltas, top-k under secure aggregation, an unknown scheme")
    func refusals() throws {
        let als = try Tool.run("fl-train-local", ["--model", model, "--shard", shard, "--reconstruct", "--algorithm", "als", "--compress", "q8", "-o", dir + "/x"])
        #expect(als.status == 64 && als.stderrLines.count == 1 && als.stderr.contains("SGD"), "\(als.stderr)")
        let secure = try Tool.run("fl-train-local", ["--model", model, "--shard", shard, "--reconstruct", "--compress", "topk:0.1", "--state", dir + "/s",
                                                     "--secagg-session", dir + "/session", "-o", dir + "/x"])
        #expect(secure.status == 64 && secure.stderrLines.count == 1 && secure.stderr.contains("secure aggregation"), "\(secure.stderr)")
        let clipped = try Tool.run("fl-train-local", ["--model", model, "--shard", shard, "--reconstruct", "--compress", "q8", "--clip", "0.5", "-o", dir + "/x"])
        #expect(clipped.status == 64 && clipped.stderrLines.count == 1 && clipped.stderr.contains("--clip"), "\(clipped.stderr)")
        let unknown = try Tool.run("fl-train-local", ["--model", model, "--shard", shard, "--reconstruct", "--compress", "q3", "-o", dir + "/x"])
        #expect(unknown.status == 64 && unknown.stderr.contains("q3"), "\(unknown.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/x"))
    }

    @Test("fl-rounds: top-k keeps state files under --reconstruct and uploads fewer bytes; q4 under --secagg masks at most 7 levels a client and completes",
          .enabled(if: onPath("flock") && onPath("bash"), "needs bash and flock (util-linux)"))
    func rounds() throws {
        let temporary = try TemporaryDirectory()
        let ratings = try tinyRatings(in: temporary.path)
        let common = ["--bin", CommandRunner.directory.path, "--data", ratings, "--rounds", "2", "--dim", "4",
                      "--partition", "--split ratio --test-ratio 0.2 --shards 2"]
        let train = "--algorithm sgd --reconstruct --epochs 1 --weighting uniform"
        var bytes = [String: Double]()
        for scheme in ["f32", "topk:0.1"] {
            let run = temporary.path + "/\(scheme)"
            let r = try Tool.run(roundsScript, common + ["--run", run, "--train", "\(train) --compress \(scheme)"])
            #expect(r.status == 0, "\(r.stderr)")
            let lines = try String(contentsOfFile: run + "/rounds.jsonl", encoding: .utf8).split(separator: "\n")
            bytes[scheme] = try lines.map { try JSONValue.parse(String($0))["upload_bytes"]?.doubleValue ?? 0 }.reduce(0, +)
            #expect(FileManager.default.fileExists(atPath: run + "/state/0002") == (scheme != "f32"))
        }
        #expect(bytes["topk:0.1", default: .infinity] < 0.5 * bytes["f32", default: 0])
        let secure = try Tool.run(roundsScript, common + ["--run", temporary.path + "/secure", "--train", "\(train) --compress q4", "--secagg", "--secagg-bits", "16", "--secagg-clip", "2"])
        #expect(secure.status == 0, "\(secure.stderr)")
        let metrics = try String(contentsOfFile: temporary.path + "/secure/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(metrics.count == 2)
    }
}
