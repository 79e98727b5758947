import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport
import FedRecData

@Suite("graph filter (gfcf) through the commands", .serialized)
struct GraphFilterCommandTests {
    func json(_ result: CommandResult) throws -> JSONValue { try JSONValue.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) }

    /// The sample data partitioned leave-last-out, implicit, in two shards (as for ncf).
    typealias Setup = NCFCommandTests.Setup

    /// HR@10 and NDCG@10 of the linear filter r_u P̃ over every user, computed here with
    /// dense arrays from the shards' training items (ties toward the smaller item).
    func linearFilterMetrics(_ users: [UserRecord], items n: Int) -> (hr: Double, ndcg: Double) {
        let rows = users.map { Array(Set($0.train.items.map(Int.init))).sorted() }
        var degree = [Double](repeating: 0, count: n)
        var c = [Double](repeating: 0, count: n * n)
        for items in rows {
            for i in items {
                degree[i] += 1
                for j in items { c[i * n + j] += 1 / Double(items.count) }
            }
        }
        var hits = 0.0, ndcg = 0.0, counted = 0
        for (u, record) in users.enumerated() where !record.test.items.isEmpty {
            counted += 1
            var scores = [Double](repeating: 0, count: n)
            for i in rows[u] { for j in 0..<n where degree[j] > 0 { scores[j] += c[i * n + j] / (degree[i] * degree[j]).squareRoot() } }
            let train = Set(rows[u])
            let ranked = (0..<n).filter { !train.contains($0) }.sorted { Float(scores[$0]) > Float(scores[$1]) || (Float(scores[$0]) == Float(scores[$1]) && $0 < $1) }
            let relevant = Set(record.test.items.map(Int.init))
            let top = Array(ranked.prefix(10))
            if top.contains(where: relevant.contains) { hits += 1 }
            var dcg = 0.0, ideal = 0.0
            for (r, item) in top.enumerated() where relevant.contains(item) { dcg += 1 / log2(Double(r) + 2) }
            for r in 0..<min(10, relevant.count) { ideal += 1 / log2(Double(r) + 2) }
            ndcg += dcg / ideal
        }
        return (hits / Double(counted), ndcg / Double(counted))
    }

    @Test("one round fits the filter; fl-eval's linear-filter metrics equal dense arithmetic; a sum tree gives the same model")
    func round() throws {
        let s = try Setup()
        let i = try s.run("fl-init", ["--dataset", "ds", "--model", "gfcf", "--eigenvectors", "8", "--filter-weight", "0.3", "-o", "m0", "--json"])
        #expect(i.status == 0, "\(i.stderr)")
        for shard in 0..<2 {
            let t = try s.run("fl-train-local", ["--model", "m0", "--shard", "ds/shards/shard-0000\(shard).tar", "--reconstruct", "-o", "u\(shard)", "--json"])
            #expect(t.status == 0, "\(t.stderr)")
        }
        let a = try s.run("fl-aggregate", ["u0", "u1", "--model", "m0", "-o", "m1", "--json"])
        #expect(a.status == 0, "\(a.stderr)")
        #expect(try json(a)["eigenvalue_top"].flatMap(\.doubleValue).map { abs($0 - 1) < 1e-4 } == true, "a normalised co-occurrence has top eigenvalue 1: \(a.stdout)")
        // A tree: the sum first, then the model from the sum: the same file.
        #expect(try s.run("fl-aggregate", ["u1", "u0", "-o", "sum"]).status == 0)
        #expect(try s.run("fl-aggregate", ["sum", "--model", "m0", "-o", "m1-tree"]).status == 0)
        #expect(try readBytes(s.path + "/m1") == readBytes(s.path + "/m1-tree"))

        let users = try readUsers(s.path + "/ds")
        let manifest = try DatasetManifest.load(s.path + "/ds")
        let expected = linearFilterMetrics(users, items: manifest.items)
        let linear = try s.run("fl-eval", ["--model", "m1", "--dataset", "ds", "--filter-weight", "0", "--json"])
        #expect(linear.status == 0, "\(linear.stderr)")
        let report = try json(linear)
        let hr = try #require(report["hr@10"]?.doubleValue), ndcg = try #require(report["ndcg@10"]?.doubleValue)
        #expect(abs(hr - expected.hr) < 1e-9 && abs(ndcg - expected.ndcg) < 1e-6, "fl-eval \(hr)/\(ndcg) against \(expected)")
        #expect(report["round"]?.intValue == 1 && report["objective"]?.stringValue == "filter")

        // The popularity baseline through a gfcf model equals an mf model's on the same data.
        #expect(try s.run("fl-init", ["--dataset", "ds", "--objective", "wals", "-o", "mf"]).status == 0)
        let popular = try json(try s.run("fl-eval", ["--model", "m1", "--dataset", "ds", "--popularity", "--json"]))
        let mfPopular = try json(try s.run("fl-eval", ["--model", "mf", "--dataset", "ds", "--popularity", "--json"]))
        #expect(popular["hr@10"]?.doubleValue == mfPopular["hr@10"]?.doubleValue && popular["baseline"]?.stringValue == "popularity")

        // With the low-pass part it ranks otherwise, and fl-recommend serves the same model.
        let full = try json(try s.run("fl-eval", ["--model", "m1", "--dataset", "ds", "--json"]))
        #expect(full["hr@10"]?.doubleValue != nil)
        let user = try #require(users.first)
        let r = try s.run("fl-recommend", ["--model", "m1", "--dataset", "ds", "--user", user.id, "-k", "5", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").count == 5)
    }

    @Test("fl-rounds fits a gfcf model in one round, as make -C pipelines rounds MODEL=gfcf runs it", .enabled(if: onPath("flock") && onPath("bash"), "needs bash and flock"))
    func rounds() throws {
        let dir = try TemporaryDirectory()
        let run = dir.path + "/run"
        let r = try Tool.run(roundsScript, [
            "--bin", CommandRunner.directory.path, "--data", sampleRatings, "--run", run, "--rounds", "1", "--objective", "filter",
            "--partition", "--split leave-last-out --feedback implicit --shards 2", "--init", "--model gfcf --eigenvectors 8", "--train", "--reconstruct",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdoutLines.count == 2 && r.stdoutLines[0].hasPrefix("round\t"), "\(r.stdout)")
        #expect(FileManager.default.fileExists(atPath: run + "/model-0001.safetensors"))
        let inspected = try Tool.run("fl-inspect", [run + "/model-0001.safetensors", "--field", "metadata.model_type"])
        #expect(inspected.stdout == "gfcf\n", "\(inspected.stdout) \(inspected.stderr)")
    }

    @Test("refusals: DP sampling and clipping, the cold protocol, another model's update, flags of other families")
    func refusals() throws {
        let s = try Setup()
        #expect(try s.run("fl-init", ["--dataset", "ds", "--model", "gfcf", "--eigenvectors", "4", "-o", "m0"]).status == 0)
        #expect(try s.run("fl-init", ["--dataset", "ds", "--model", "gfcf", "--eigenvectors", "4", "--seed", "2", "-o", "other"]).status == 0)
        let sampled = try s.run("fl-train-local", ["--model", "m0", "--shard", "ds/shards/shard-00000.tar", "--sample-rate", "0.5", "-o", "u"])
        #expect(sampled.status == 64 && sampled.stderrLines.count == 1, "\(sampled.stderr)")
        let clipped = try s.run("fl-train-local", ["--model", "m0", "--shard", "ds/shards/shard-00000.tar", "--clip", "1", "-o", "u"])
        #expect(clipped.status == 64 && clipped.stderrLines.count == 1, "\(clipped.stderr)")
        #expect(try s.run("fl-train-local", ["--model", "m0", "--shard", "ds/shards/shard-00000.tar", "-o", "u"]).status == 0)
        let wrongModel = try s.run("fl-aggregate", ["u", "--model", "other", "-o", "m1"])
        #expect(wrongModel.status == 86 && wrongModel.stderrLines.count == 1 && wrongModel.stderr.contains("u"), "\(wrongModel.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.path + "/m1"))
        let cold = try s.run("fl-eval", ["--model", "m0", "--dataset", "ds", "--cold"])
        #expect(cold.status == 64 && cold.stderrLines.count == 1)
        let mfFlag = try s.run("fl-init", ["--dataset", "ds", "--objective", "filter", "-o", "mf"])
        #expect(mfFlag.status == 64)
        #expect(try s.run("fl-init", ["--dataset", "ds", "--objective", "wals", "-o", "mf"]).status == 0)
        let weight = try s.run("fl-eval", ["--model", "mf", "--dataset", "ds", "--filter-weight", "1", "--reconstruct"])
        #expect(weight.status == 64 && weight.stderrLines.count == 1, "\(weight.stderr)")
    }
}
