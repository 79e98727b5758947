import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecTestSupport
import FedRecSupport
import FedRecData
import FedRecModel

@Suite("cold start through the commands", .serialized)
struct ColdStartCommandTests {
    /// sample-data partitioned with 20 % cold items, a text table for it and one of the
    /// wrong size and of another dataset.
    final class Setup {
        let dir = try! TemporaryDirectory()
        var path: String { dir.path }
        init() throws {
            let p = try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "2", "--cold-items", "0.2", "--seed", "1", "--json"], in: path)
            guard p.status == 0 else { throw FedRecError(.io, "fl-partition failed: \(p.stderr)") }
            let manifest = try DatasetManifest.load(path + "/ds")
            var g = SeededGenerator(seed: 2)
            let items = manifest.items
            try writeTextTable((0..<(items * 8)).map { _ in Float(g.nextGaussian()) }, items: items, dim: 8, datasetId: manifest.datasetId, to: path + "/text.safetensors")
            try writeTextTable([Float](repeating: 1, count: (items - 1) * 8), items: items - 1, dim: 8, datasetId: nil, to: path + "/short.safetensors")
            try writeTextTable([Float](repeating: 1, count: items * 8), items: items, dim: 8, datasetId: String(repeating: "0", count: 64), to: path + "/other.safetensors")
        }
        func run(_ tool: String, _ args: [String]) throws -> CommandResult { try Tool.run(tool, args, in: path) }
    }

    @Test("partition, content-aware init, a round, cold evaluation with model, popularity and random")
    func pipeline() throws {
        let s = try Setup()
        let manifest = try DatasetManifest.load(s.path + "/ds")
        #expect(manifest.coldItems.count == Int((0.2 * Double(manifest.items)).rounded()))
        let initResult = try s.run("fl-init", ["--dataset", "ds", "--objective", "wals", "--dim", "8", "--init-scale", "0.01", "--item-text", "text.safetensors", "-o", "m0.safetensors"])
        #expect(initResult.status == 0)
        for shard in 0..<2 {
            let t = try s.run("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-0000\(shard).tar", "--algorithm", "als", "--alpha", "5", "--l2", "5", "--reconstruct", "-o", "u\(shard).safetensors"])
            #expect(t.status == 0, "\(t.stderr)")
        }
        let a = try s.run("fl-aggregate", ["u0.safetensors", "u1.safetensors", "--model", "m0.safetensors", "--l2", "5", "--item-text", "text.safetensors", "--text-l2", "1", "-o", "m1.safetensors"])
        #expect(a.status == 0, "\(a.stderr)")
        let model = try MFModel.load(s.path + "/m1.safetensors")
        #expect(model.textDim == 8 && model.textProjection != nil)
        for (extra, baseline) in [([] as [String], nil as String?), (["--popularity"], "popularity"), (["--random"], "random")] {
            let e = try s.run("fl-eval", ["--model", "m1.safetensors", "--dataset", "ds", "--cold", "--reconstruct", "--alpha", "5", "--l2", "5", "--json"] + extra)
            #expect(e.status == 0, "\(e.stderr)")
            let m = try JSONValue.parse(e.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(m["protocol"]?.stringValue == "cold")
            #expect(m["baseline"]?.stringValue == baseline)
            let hr = try #require(m["hr@10"]?.doubleValue)
            #expect(hr >= 0 && hr <= 1, "hr@10 \(hr)")
        }
        // The warm protocol still works and reports no protocol tag.
        let warm = try s.run("fl-eval", ["--model", "m1.safetensors", "--dataset", "ds", "--reconstruct", "--alpha", "5", "--l2", "5", "--json"])
        #expect(warm.status == 0)
        #expect(try JSONValue.parse(warm.stdout.trimmingCharacters(in: .whitespacesAndNewlines))["protocol"] == nil)
    }

    @Test("a table that does not fit is refused with one stderr line and exit 83 or 86, and nothing is written")
    func refusals() throws {
        let s = try Setup()
        let short = try s.run("fl-init", ["--dataset", "ds", "--objective", "wals", "--item-text", "short.safetensors", "-o", "x.safetensors"])
        #expect(short.status == 83 && short.stderrLines.count == 1)
        let other = try s.run("fl-init", ["--dataset", "ds", "--objective", "wals", "--item-text", "other.safetensors", "-o", "x.safetensors"])
        #expect(other.status == 86 && other.stderrLines.count == 1)
        #expect(!FileManager.default.fileExists(atPath: s.path + "/x.safetensors"))

        #expect(try s.run("fl-init", ["--dataset", "ds", "--objective", "wals", "--dim", "4", "--item-text", "text.safetensors", "-o", "m0.safetensors"]).status == 0)
        #expect(try s.run("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00000.tar", "--algorithm", "als", "--reconstruct", "-o", "u0.safetensors"]).status == 0)
        for (table, code) in [("other.safetensors", Int32(86)), ("short.safetensors", Int32(83))] {
            let r = try s.run("fl-aggregate", ["u0.safetensors", "--model", "m0.safetensors", "--item-text", table, "-o", "m1.safetensors"])
            #expect(r.status == code && r.stderrLines.count == 1, "\(r.stderr)")
        }
        let missing = try s.run("fl-aggregate", ["u0.safetensors", "--model", "m0.safetensors", "-o", "m1.safetensors"])
        #expect(missing.status == 64 && missing.stderrLines.count == 1)
        #expect(!FileManager.default.fileExists(atPath: s.path + "/m1.safetensors"))
        let noCold = try s.run("fl-eval", ["--model", "m0.safetensors", "ds/shards/shard-00000.tar", "--cold"])
        #expect(noCold.status == 64)
    }
}
