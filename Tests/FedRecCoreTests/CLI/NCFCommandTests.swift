import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport
import FedRecModel

@Suite("neural CF through the commands", .serialized)
struct NCFCommandTests {
    final class Setup {
        let dir = try! TemporaryDirectory()
        var path: String { dir.path }
        init() throws {
            let p = try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "2", "--split", "leave-last-out", "--feedback", "implicit", "--seed", "1"], in: path)
            guard p.status == 0 else { throw FedRecError(.io, "fl-partition failed: \(p.stderr)") }
        }
        func run(_ tool: String, _ args: [String]) throws -> CommandResult { try Tool.run(tool, args, in: path) }

        /// One round of `variant` from `model`: both shards, their states into `state`, then aggregate.
        func round(_ model: String, next: String, state: String, extra: [String] = []) throws {
            try makeDirectories(path + "/" + state)
            for shard in 0..<2 {
                let t = try run("fl-train-local", ["--model", model, "--shard", "ds/shards/shard-0000\(shard).tar",
                                                    "--state", "\(state)/shard-0000\(shard).state.safetensors",
                                                    "--optimizer", "adam", "--lr", "0.01", "--batch-size", "8", "-o", "u\(shard).safetensors"] + extra)
                #expect(t.status == 0, "\(t.stderr)")
            }
            let a = try run("fl-aggregate", ["--model", model, "u0.safetensors", "u1.safetensors", "-o", next])
            #expect(a.status == 0, "\(a.stderr)")
        }
    }

    @Test("GMF and MLP trained, NeuMF pretrained from them with merged states, evaluated and recommended")
    func pipeline() throws {
        let s = try Setup()
        for variant in ["gmf", "mlp"] {
            let i = try s.run("fl-init", ["--dataset", "ds", "--model", "ncf", "--ncf-variant", variant, "--objective", "bce", "--dim", "4",
                                          "--mlp-dim", "4", "--layers", "8,4", "--init-scale", "0.05", "-o", "\(variant)-0.safetensors"])
            #expect(i.status == 0, "\(i.stderr)")
            try s.round("\(variant)-0.safetensors", next: "\(variant)-1.safetensors", state: variant)
        }
        let p = try s.run("fl-init", ["--dataset", "ds", "--model", "ncf", "--objective", "bce", "--pretrain-gmf", "gmf-1.safetensors",
                                      "--pretrain-mlp", "mlp-1.safetensors", "--pretrain-alpha", "0.5", "--pretrain-gmf-states", "gmf",
                                      "--pretrain-mlp-states", "mlp", "--pretrain-state-out", "neumf", "-o", "neumf-0.safetensors"])
        #expect(p.status == 0, "\(p.stderr)")
        // The merged state: each user's GMF vector then its MLP vector.
        let neumf = try NCFModel.open(s.path + "/neumf-0.safetensors").model
        let g = try UserState.load(s.path + "/gmf/shard-00000.state.safetensors", config: try NCFModel.open(s.path + "/gmf-1.safetensors").model.config).state
        let m = try UserState.load(s.path + "/mlp/shard-00000.state.safetensors", config: try NCFModel.open(s.path + "/mlp-1.safetensors").model.config).state
        let merged = try UserState.load(s.path + "/neumf/shard-00000.state.safetensors", config: neumf.config).state
        let user = merged.users[0]
        let row = merged.row(of: user)!, gr = g.row(of: user)!, mr = m.row(of: user)!
        #expect(Array(merged.embedding[(row * 8)..<(row * 8 + 8)]) == Array(g.embedding[(gr * 4)..<(gr * 4 + 4)]) + Array(m.embedding[(mr * 4)..<(mr * 4 + 4)]))
        // A pretrained NeuMF at α = 0.5 scores as the mean of its parts at round 0: evaluate it.
        try s.round("neumf-0.safetensors", next: "neumf-1.safetensors", state: "neumf")
        let e = try s.run("fl-eval", ["--model", "neumf-1.safetensors", "--dataset", "ds", "--state-dir", "neumf", "--json"])
        #expect(e.status == 0, "\(e.stderr)")
        let report = try JSONValue.parse(e.stdout)
        #expect(report["users"]?.intValue == 400)
        #expect(report["sampled_hr@10"] != nil && report["hr@10"] != nil)
        let pop = try s.run("fl-eval", ["--model", "neumf-1.safetensors", "--dataset", "ds", "--popularity", "--json"])
        #expect(pop.status == 0 && pop.stdout.contains("\"baseline\":\"popularity\""), "\(pop.stderr)")
        let r = try s.run("fl-recommend", ["--model", "neumf-1.safetensors", "--dataset", "ds", "--state-dir", "neumf", "--all", "-k", "3"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdoutLines.count == 1 + 400 * 3)
    }

    @Test("bad inputs are refused with one line and their exit code, nothing written")
    func refusals() throws {
        let s = try Setup()
        let wals = try s.run("fl-init", ["--dataset", "ds", "--model", "ncf", "--objective", "wals", "-o", "x.safetensors"])
        #expect(wals.status == 64 && wals.stderrLines.count == 1 && !fileExists(s.path + "/x.safetensors"))
        let noModel = try s.run("fl-init", ["--dataset", "ds", "--ncf-variant", "gmf", "-o", "x.safetensors"])
        #expect(noModel.status == 64)
        let layers = try s.run("fl-init", ["--dataset", "ds", "--model", "ncf", "--layers", "8,zero", "-o", "x.safetensors"])
        #expect(layers.status == 64 && layers.stderrLines.count == 1)
        let half = try s.run("fl-init", ["--dataset", "ds", "--model", "ncf", "--pretrain-gmf", "g.safetensors", "-o", "x.safetensors"])
        #expect(half.status == 64)
        #expect(try s.run("fl-init", ["--dataset", "ds", "--model", "ncf", "--objective", "bce", "--dim", "4", "-o", "m.safetensors"]).status == 0)
        let prox = try s.run("fl-train-local", ["--model", "m.safetensors", "--shard", "ds/shards/shard-00000.tar", "--reconstruct", "--prox-mu", "0.1", "-o", "u.safetensors"])
        #expect(prox.status == 64 && prox.stderrLines.count == 1 && prox.stderr.contains("--prox-mu") && !fileExists(s.path + "/u.safetensors"), "\(prox.stderr)")
        // A GMF model is not an MLP one for pretraining.
        let wrong = try s.run("fl-init", ["--dataset", "ds", "--model", "ncf", "--objective", "bce", "--pretrain-gmf", "m.safetensors",
                                          "--pretrain-mlp", "m.safetensors", "-o", "x.safetensors"])
        #expect(wrong.status == 64 && !fileExists(s.path + "/x.safetensors"), "\(wrong.stderr)")
        // A state directory without states for the shards.
        let cold = try s.run("fl-eval", ["--model", "m.safetensors", "--dataset", "ds", "--state-dir", "nowhere"])
        #expect(cold.status == 66, "\(cold.stderr)")
    }
}
