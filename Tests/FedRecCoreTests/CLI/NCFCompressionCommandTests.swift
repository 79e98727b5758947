import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport
import FedRecFormats
import FedRecModel
import FedRecWire

/// fl-train-local --compress for ncf models through the commands: marked updates that
/// fl-aggregate decodes and applies, error feedback in the state file, and what is refused.
@Suite("ncf update compression through the commands", .serialized)
struct NCFCompressionCommandTests {
    let dir = try! TemporaryDirectory()
    var path: String { dir.path }
    let shard = "ds/shards/shard-00000.tar"

    init() throws {
        let p = try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "2", "--split", "leave-last-out", "--feedback", "implicit", "--seed", "1"], in: dir.path)
        guard p.status == 0 else { throw FedRecError(.io, "fl-partition failed: \(p.stderr)") }
        for (name, layers) in [("a", "8,4"), ("b", "16,4")] {
            let i = try Tool.run("fl-init", ["--dataset", "ds", "--model", "ncf", "--ncf-variant", "neumf", "--objective", "bce", "--dim", "4",
                                             "--mlp-dim", "4", "--layers", layers, "--init-scale", "0.05", "-o", "\(name).safetensors"], in: dir.path)
            guard i.status == 0 else { throw FedRecError(.io, "fl-init failed: \(i.stderr)") }
        }
    }

    @discardableResult
    func train(_ output: String, _ extra: [String], model: String = "a.safetensors", expect code: Int32 = 0, sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        let r = try Tool.run("fl-train-local", ["--model", model, "--shard", shard, "--reconstruct", "--optimizer", "adam", "--lr", "0.01",
                                                "--batch-size", "8", "--epochs", "1", "-o", output, "--quiet"] + extra, in: path)
        #expect(r.status == code, "\(extra): \(r.stderr)", sourceLocation: sourceLocation)
        return r
    }

    @Test("NeuMF: f32 decodes to the plain update bit for bit; q8, q4 and top-k are marked, smaller, summed and applied by fl-aggregate")
    func schemes() throws {
        try train("plain.safetensors", [])
        try train("f32.safetensors", ["--compress", "f32"])
        let plain = try ModelUpdate.load(path + "/plain.safetensors"), f32 = try ModelUpdate.load(path + "/f32.safetensors")
        #expect(f32.rows == plain.rows && f32.rowClients == plain.rowClients && f32.rowWeight == plain.rowWeight)
        #expect(f32.rowTensors == plain.rowTensors && f32.dense == plain.dense && f32.dense.count == 6)
        var sizes = [String: Int]()
        for scheme in ["f32", "q8", "q4", "topk:0.1"] {
            let update = "u-\(scheme).safetensors"
            try train(update, ["--compress", scheme, "--state", "st-\(scheme)", "--compress-seed", "1"])
            sizes[scheme] = try readBytes(path + "/" + update).count
            let marked = try Tool.run("fl-inspect", [update, "--field", "metadata.compression"], in: path)
            #expect(marked.stdout == scheme + "\n", "\(marked.stdout) \(marked.stderr)")
            let layout = try Tool.run("fl-inspect", [update, "--field", "metadata.compression_dense"], in: path)
            #expect(layout.stdout == "mlp.w0:8x8,mlp.b0:8,mlp.w1:4x8,mlp.b1:4,out.w:8,out.b:1\n", "\(layout.stdout) \(layout.stderr)")
            let sum = try Tool.run("fl-aggregate", [update, "-o", "sum-\(scheme).sum"], in: path)
            #expect(sum.status == 0, "\(sum.stderr)")
            #expect(try ModelUpdate.load(path + "/sum-\(scheme).sum").header.extra[UpdateCompression.decodedKey] == scheme)
            let next = try Tool.run("fl-aggregate", [update, "--model", "a.safetensors", "-o", "next-\(scheme).safetensors"], in: path)
            #expect(next.status == 0, "\(next.stderr)")
            #expect(try NCFModel.open(path + "/next-\(scheme).safetensors").model.round == 1)
        }
        #expect(fileExists(path + "/st-topk:0.1") && !fileExists(path + "/st-q8"))
        #expect(sizes["f32", default: 0] > sizes["q8", default: 0] && sizes["q8", default: 0] > sizes["q4", default: 0])
        #expect(sizes["f32", default: 0] > 2 * sizes["topk:0.1", default: .max])
    }

    /// `update` rewritten with metadata `key` = `value` (checksums recomputed).
    func relabelled(_ update: String, _ key: String, _ value: String, to output: String) throws {
        let file = try SafeTensorsFile(path: path + "/" + update)
        var writer = SafeTensorsWriter(metadata: file.metadata.filter { $0.key != "checksum" && $0.key != "header_checksum" })
        writer.metadata[key] = value
        for name in file.names {
            let info = try #require(file.tensors[name])
            switch info.dtype {
            case .u8: writer.add(name, shape: info.shape, .u8(Array(file.bytes(of: info))))
            case .f32: writer.add(name, shape: info.shape, floats: try file.floats(name))
            default: writer.add(name, shape: info.shape, int32s: try file.int32s(name))
            }
        }
        _ = try writer.write(to: path + "/" + output)
    }

    @Test("refused with one line and its exit code, nothing overwritten: a compressed update against a model of another shape (86; relabelled, 83), a layout of the wrong width (83), top-k without --state, top-k under secure aggregation (64)")
    func refusals() throws {
        try train("q.safetensors", ["--compress", "q8", "--compress-seed", "1"])
        try "keep".write(toFile: path + "/next.safetensors", atomically: true, encoding: .utf8)
        func aggregate(_ update: String, model: String = "b.safetensors") throws -> CommandResult {
            let r = try Tool.run("fl-aggregate", [update, "--model", model, "-o", "next.safetensors"], in: path)
            #expect(try String(contentsOfFile: path + "/next.safetensors", encoding: .utf8) == "keep")
            return r
        }
        // Model b's tower is 16,4: the update was computed from a (8,4).
        let other = try aggregate("q.safetensors")
        #expect(other.status == 86 && other.stderrLines.count == 1 && other.stderr.contains("q.safetensors"), "\(other.status) \(other.stderr)")
        // Claimed to be computed from b: decoded, then refused for its tower tensors' sizes.
        try relabelled("q.safetensors", "base_model", try NCFModel.open(path + "/b.safetensors").identity, to: "claimed.safetensors")
        let claimed = try aggregate("claimed.safetensors")
        #expect(claimed.status == 83 && claimed.stderrLines.count == 1 && claimed.stderr.contains("mlp."), "\(claimed.status) \(claimed.stderr)")
        // A recorded layout whose rows are not the model's dim values.
        try relabelled("q.safetensors", "compression_rows", "gmf_item:4,mlp_item:8", to: "wide.safetensors")
        let wide = try aggregate("wide.safetensors", model: "a.safetensors")
        #expect(wide.status == 83 && wide.stderrLines.count == 1 && wide.stderr.hasPrefix("fl-aggregate: wide.safetensors: "), "\(wide.status) \(wide.stderr)")
        let topk = try train("x.safetensors", ["--compress", "topk:0.1"], expect: 64)
        #expect(topk.stderrLines.count == 1 && topk.stderr.contains("--state"))
        let secure = try train("x.safetensors", ["--compress", "topk:0.1", "--state", "st-x", "--secagg-session", "session"], expect: 64)
        #expect(secure.stderrLines.count == 1 && secure.stderr.contains("secure aggregation"), "\(secure.stderr)")
        #expect(!fileExists(path + "/x.safetensors"))
    }

    @Test("GMF with top-k over two rounds in fl-rounds: residuals kept in the state files under --reconstruct, fewer bytes uploaded",
          .enabled(if: onPath("flock") && onPath("bash"), "needs bash and flock (util-linux)"))
    func rounds() throws {
        var bytes = [String: Double]()
        for scheme in ["f32", "topk:0.1"] {
            let run = path + "/run-\(scheme)"
            let r = try Tool.run(roundsScript, ["--bin", CommandRunner.directory.path, "--data", path + "/ds", "--run", run, "--rounds", "2",
                                                "--objective", "bce", "--dim", "4", "--init", "--model ncf --ncf-variant gmf --init-scale 0.05",
                                                "--train", "--reconstruct --optimizer adam --lr 0.05 --epochs 1 --compress \(scheme)"])
            #expect(r.status == 0, "\(r.stderr)")
            let lines = try String(contentsOfFile: run + "/rounds.jsonl", encoding: .utf8).split(separator: "\n")
            bytes[scheme] = try lines.map { try JSONValue.parse(String($0))["upload_bytes"]?.doubleValue ?? 0 }.reduce(0, +)
            #expect(fileExists(run + "/state/0002") == (scheme != "f32"))
            #expect(try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").count == 2)
        }
        #expect(bytes["topk:0.1", default: .infinity] < 0.5 * bytes["f32", default: 0])
    }
}
