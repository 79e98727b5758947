import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecTestSupport
import FedRecSupport
import FedRecMechanisms
import FedRecWire
import FedRecPrivacy

@Suite("fl-dp-noise and private training from the command line", .serialized)
struct DPCommandLineTests {
    /// A sampled, clipped, uniform round on the sample data: m0, two shard updates, their sum.
    final class PrivateRound {
        let dir: TemporaryDirectory
        var path: String { dir.path }

        init(extraTraining: [String] = []) throws {
            dir = try TemporaryDirectory()
            let p = try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "2", "--split", "leave-last-out", "--seed", "1"], in: path)
            guard p.status == 0 else { throw FedRecError(.io, "fl-partition failed: \(p.stderr)") }
            // A secret sampling key shared by both shards, as fl-rounds keeps one in RUN/sample-seed
            // (a --test-sample-seed would make every release private=false).
            try "3\n".write(toFile: path + "/sample-key", atomically: true, encoding: .utf8)
            let train = ["--reconstruct", "--weighting", "uniform", "--clip", "0.5", "--sample-rate", "0.5", "--sample-key-file", "sample-key"] + extraTraining
            for (tool, args) in [
                ("fl-init", ["--dataset", "ds", "--objective", "bpr", "--dim", "8", "-o", "m0.safetensors"]),
                ("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00000.tar", "-o", "u0.safetensors"] + train),
                ("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00001.tar", "-o", "u1.safetensors"] + train),
                ("fl-aggregate", ["u0.safetensors", "u1.safetensors", "-o", "sum.safetensors"]),
            ] {
                let r = try Tool.run(tool, args, in: path)
                guard r.status == 0 else { throw FedRecError(.io, "\(tool) failed: \(r.stderr)") }
            }
        }
    }

    @Test("noise, then apply with the fixed denominator: a dense sum, ledger line, private=true, and the next model")
    func noiseAndApply() throws {
        let round = try PrivateRound()
        let sum = try ModelUpdate.load(round.path + "/sum.safetensors")
        #expect(sum.header.sampleRate == 0.5 && sum.header.population == 400)
        let r = try Tool.run("fl-dp-noise", ["sum.safetensors", "-o", "noised.safetensors", "--ledger", "ledger.jsonl",
                                             "--noise-multiplier", "1.1", "--budget-epsilon", "8", "--delta", "1e-5", "--json"], in: round.path)
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONValue.parse(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report["expected_clients"]?.doubleValue == 200 && report["private"]?.boolValue == true)
        let noised = try ModelUpdate.load(round.path + "/noised.safetensors")
        #expect(noised.rows.count == sum.header.config.items)
        #expect(noised.header.extra["dp_expected_clients"] == "200.0" && noised.header.extra["private"] == "true")
        #expect(noised.header.extra["noise_multiplier"] == "1.1" && noised.header.extra["dp_sample_rate"] == "0.5")
        let ledger = try PrivacyLedger.read(path: round.path + "/ledger.jsonl")
        #expect(ledger.entries.count == 1 && ledger.entries[0].clients == sum.header.clients && ledger.entries[0].clip == 0.5)
        let apply = try Tool.run("fl-aggregate", ["noised.safetensors", "--model", "m0.safetensors", "--fixed-denominator", "200", "-o", "m1.safetensors"], in: round.path)
        #expect(apply.status == 0, "\(apply.stderr)")
        // A noised sum is final: adding it to another update is refused.
        let add = try Tool.run("fl-aggregate", ["noised.safetensors", "sum.safetensors", "-o", "x.safetensors"], in: round.path)
        #expect(add.status == FailureClass.mismatch.rawValue)
    }

    @Test("a release past the budget exits 87, writes nothing, leaves the ledger as it was and says no round is left")
    func budgetRefusal() throws {
        let round = try PrivateRound()
        // A budget that one round of (q=0.5, z=1.5) fits and two do not.
        let one = try RDPAccountant().epsilon(sampleRate: 0.5, noiseMultiplier: 1.5, steps: 1, delta: 1e-5).epsilon
        let args = ["sum.safetensors", "--ledger", "ledger.jsonl", "--noise-multiplier", "1.5", "--budget-epsilon", "\(one * 1.001)", "--delta", "1e-5"]
        let first = try Tool.run("fl-dp-noise", args + ["-o", "n1.safetensors"], in: round.path)
        #expect(first.status == 0, "\(first.stderr)")
        let before = try readBytes(round.path + "/ledger.jsonl")
        let second = try Tool.run("fl-dp-noise", args + ["-o", "n2.safetensors"], in: round.path)
        #expect(second.status == 87)
        #expect(second.stderr.contains("0 rounds left") && second.stderrLines.count == 1)
        #expect(!FileManager.default.fileExists(atPath: round.path + "/n2.safetensors"))
        #expect(try readBytes(round.path + "/ledger.jsonl") == before)
        #expect(try round.dir.listing().filter { $0.hasPrefix(".") }.isEmpty)
    }

    @Test("refuses sums that are not uniform, clipped and sampled")
    func refusals() throws {
        let dir = try TemporaryDirectory()
        _ = try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "1", "--seed", "1"], in: dir.path)
        _ = try Tool.run("fl-init", ["--dataset", "ds", "--objective", "bpr", "--dim", "4", "-o", "m0.safetensors"], in: dir.path)
        let t = try Tool.run("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00000.tar", "--reconstruct", "-o", "u.safetensors"], in: dir.path)
        #expect(t.status == 0)
        let r = try Tool.run("fl-dp-noise", ["u.safetensors", "-o", "n.safetensors", "--ledger", "l.jsonl", "--noise-multiplier", "1"], in: dir.path)
        #expect(r.status == FailureClass.usage.rawValue && r.stderr.contains("--sample-rate"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/l.jsonl"))
    }

    @Test("account and calibrate print what RDPAccountant computes; the ledger's ε matches")
    func accountAndCalibrate() throws {
        let accountant = RDPAccountant()
        let account = try Tool.run("fl-dp-noise", ["account", "--sample-rate", "0.01", "--noise-multiplier", "1.1", "--rounds", "1000", "--delta", "1e-5"])
        #expect(account.status == 0)
        let expected = try accountant.epsilon(sampleRate: 0.01, noiseMultiplier: 1.1, steps: 1000, delta: 1e-5)
        #expect(Double(account.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == expected.epsilon)
        let json = try Tool.run("fl-dp-noise", ["account", "--sample-rate", "0.01", "--noise-multiplier", "1.1", "--rounds", "1000", "--delta", "1e-5", "--json"])
        let object = try JSONValue.parse(json.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(object["epsilon"]?.doubleValue == expected.epsilon && object["order"]?.doubleValue == expected.order && object["delta"]?.doubleValue == 1e-5)

        let calibrate = try Tool.run("fl-dp-noise", ["calibrate", "--epsilon", "8", "--delta", "1e-5", "--rounds", "50", "--sample-rate", "0.1"])
        #expect(calibrate.status == 0)
        let z = try #require(Double(calibrate.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(z == (try accountant.calibrateNoiseMultiplier(targetEpsilon: 8, delta: 1e-5, sampleRate: 0.1, steps: 50)))
        #expect(try accountant.epsilon(sampleRate: 0.1, noiseMultiplier: z, steps: 50, delta: 1e-5).epsilon <= 8)

        let dir = try TemporaryDirectory()
        for r in 0..<3 {
            try PrivacyLedger.append(LedgerEntry(round: r, noiseMultiplier: 1.1, sampleRate: 0.01, clip: 1, clients: 9, isPrivate: true), to: dir.path + "/l.jsonl")
        }
        let ledger = try Tool.run("fl-dp-noise", ["account", "--ledger", "l.jsonl", "--delta", "1e-5"], in: dir.path)
        #expect(Double(ledger.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == (try accountant.epsilon(sampleRate: 0.01, noiseMultiplier: 1.1, steps: 3, delta: 1e-5).epsilon))
    }

    @Test("--help explains the guarantee, the threat model and its limits")
    func help() throws {
        let r = try Tool.run("fl-dp-noise", ["--help"])
        #expect(r.status == 0)
        for phrase in ["entire data", "honest but curious", "secure aggregation", "Poisson", "uniform", "account", "calibrate"] {
            #expect(r.stdout.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "  ", with: " ").contains(phrase), "\(phrase)")
        }
    }

    @Test("local DP: every client's dense delta is noised on the client and its ε is recorded")
    func localDP() throws {
        let round = try PrivateRound(extraTraining: ["--local-dp", "--noise-multiplier", "2", "--json"])
        let u = try ModelUpdate.load(round.path + "/u0.safetensors")
        let eps = try RDPAccountant().epsilon(sampleRate: 1, noiseMultiplier: 2, steps: 1, delta: 1e-5).epsilon
        #expect(u.header.extra["local_dp_epsilon"] == "\(eps)" && u.header.extra["private"] == "true")
        #expect(u.rows.count == u.header.config.items && u.rowClients.allSatisfy { Int($0) == u.header.clients })
        // Clipped at 0.5, the noise-free sum of n clients has norm ≤ 0.5 n; noise of std
        // 2·0.5 on D coordinates makes it ≈ √(n D) — far above.
        let values = u.rowTensors["item_embedding"]!.values + u.rowTensors["item_bias"]!.values
        let norm = values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        #expect(norm > 10 * 0.5 * Double(u.header.clients))
    }

    @Test("adaptive-clipping options that do not fit: one stderr line, exit 64, nothing written")
    func adaptiveBadOptions() throws {
        let round = try PrivateRound()
        let base = ["sum.safetensors", "-o", "n.safetensors", "--ledger", "l.jsonl", "--noise-multiplier", "1.1"]
        let cases: [(args: [String], says: String)] = [
            (["--clip-lr", "0.3"], "need --adaptive-clip"),
            (["--clip-out", "clip"], "need --adaptive-clip"),
            (["--target-quantile", "0.7"], "need --adaptive-clip"),
            (["--adaptive-clip", "--target-quantile", "1.5"], "--target-quantile must be in [0, 1]"),
            (["--adaptive-clip", "--clip-lr", "0"], "--clip-lr must be positive"),
            (["--adaptive-clip", "--clip-noise-std", "0.5"], "2 * clip noise std > noise multiplier"),
            (["--adaptive-clip", "--clip-out", "-"], "--clip-out must be a file"),
        ]
        for c in cases {
            let r = try Tool.run("fl-dp-noise", base + c.args, in: round.path)
            #expect(r.status == 64 && r.stderrLines.count == 1 && r.stdout.isEmpty, "\(c.args): \(r.status) \(r.stderr)")
            #expect(r.stderr.hasPrefix("fl-dp-noise: ") && r.stderr.contains(c.says), "\(r.stderr)")
            #expect(try round.dir.listing().filter { ["n.safetensors", "l.jsonl", "clip"].contains($0) || $0.hasPrefix(".") }.isEmpty)
        }
    }

    /// Two rounds by hand, as fl-rounds runs them: train at C_r, sum, noise with
    /// --adaptive-clip --clip-out, apply, train round r+1 at the clip written. From C = 0.001
    /// every client is clipped (b̃ ≈ 0 < γ): the clip grows; from C = 100 none is (b̃ ≈ 1): it
    /// shrinks. The count noise (σ_b = q·N/20 = 10 on q·N = 200) moves b̃ by ≈ 0.05 only.
    @Test("two rounds of the built commands with adaptive clipping move the clip toward the update norms", arguments: [0.001, 100.0])
    func adaptiveTwoRounds(initial: Double) throws {
        let dir = try TemporaryDirectory()
        let p = dir.path
        func run(_ tool: String, _ args: [String]) throws -> CommandResult {
            let r = try Tool.run(tool, args, in: p)
            #expect(r.status == 0, "\(tool) \(args): \(r.stderr)")
            return r
        }
        _ = try run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "2", "--split", "leave-last-out", "--seed", "1"])
        _ = try run("fl-init", ["--dataset", "ds", "--objective", "bpr", "--dim", "8", "-o", "m0.safetensors"])
        var clips = [initial]
        for r in 0..<2 {
            for shard in 0..<2 {
                _ = try run("fl-train-local", ["--model", "m\(r).safetensors", "--shard", "ds/shards/shard-0000\(shard).tar", "-o", "u\(r)-\(shard).safetensors",
                                               "--reconstruct", "--weighting", "uniform", "--clip", "\(clips[r])", "--sample-rate", "0.5", "--test-sample-seed", "3"])
            }
            _ = try run("fl-aggregate", ["u\(r)-0.safetensors", "u\(r)-1.safetensors", "-o", "sum\(r).safetensors"])
            let noise = try run("fl-dp-noise", ["sum\(r).safetensors", "-o", "noised\(r).safetensors", "--ledger", "ledger.jsonl", "--noise-multiplier", "1.1",
                                                "--adaptive-clip", "--target-quantile", "0.5", "--clip-lr", "0.2", "--clip-out", "clip-\(r + 1)", "--seed", "\(r + 1)", "--json"])
            let text = try String(contentsOfFile: p + "/clip-\(r + 1)", encoding: .utf8)
            let next = try #require(Double(text.trimmingCharacters(in: .newlines)))
            let report = try JSONValue.parse(noise.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(report["next_clip"]?.doubleValue == next && report["clip"]?.doubleValue == clips[r])
            #expect(try ModelUpdate.load(p + "/noised\(r).safetensors").header.extra["dp_next_clip"] == "\(next)")
            clips.append(next)
            _ = try run("fl-aggregate", ["noised\(r).safetensors", "--model", "m\(r).safetensors", "--fixed-denominator", "200", "-o", "m\(r + 1).safetensors"])
        }
        if initial < 1 {
            #expect(clips[1] > clips[0] && clips[2] > clips[1], "\(clips)")
        } else {
            #expect(clips[1] < clips[0] && clips[2] < clips[1], "\(clips)")
        }
        // Each factor is exp(−η(b̃ − γ)) with |b̃ − γ| ≤ ½: at most e^0.1 either way.
        for r in 0..<2 { #expect(abs(log(clips[r + 1] / clips[r])) <= 0.1 + 1e-12) }
        let ledger = try PrivacyLedger.read(path: p + "/ledger.jsonl").entries
        #expect(ledger.map(\.clip) == Array(clips[0..<2]) && ledger.allSatisfy { $0.mechanism == LedgerEntry.adaptiveClipGaussian })
        // ε of the two adaptive releases is that of two fixed-clip releases at z = 1.1.
        let account = try Tool.run("fl-dp-noise", ["account", "--ledger", "ledger.jsonl", "--delta", "1e-5"], in: p)
        let fixed = try RDPAccountant().epsilon(sampleRate: 0.5, noiseMultiplier: 1.1, steps: 2, delta: 1e-5).epsilon
        #expect(Double(account.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == fixed)
    }

    @Test("fl-rounds --dp --adaptive-clip tracks the clip across rounds and a resumed run keeps it")
    func adaptivePipeline() throws {
        let dir = try TemporaryDirectory()
        let script = URL(fileURLWithPath: sampleRatings).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("pipelines/fl-rounds").path
        func rounds(_ n: Int) throws -> (status: Int32, stderr: String) {
            try runScript(script, ["--bin", CommandRunner.directory.path, "--data", sampleRatings, "--run", dir.path + "/run", "--rounds", "\(n)",
                                 "--objective", "bpr", "--dim", "8", "--partition", "--split leave-last-out --shards 2",
                                 "--train", "--reconstruct --epochs 1 --lr 0.05", "--dp", "--clip", "0.01", "--sample-rate", "0.5",
                                 "--noise-multiplier", "1.5", "--adaptive-clip"])
        }
        let first = try rounds(2)
        #expect(first.status == 0, "\(first.stderr)")
        func clip(_ r: Int) throws -> Double {
            try #require(Double(String(contentsOfFile: dir.path + "/run/clip-000\(r)", encoding: .utf8).trimmingCharacters(in: .newlines)))
        }
        #expect(try clip(0) == 0.01 && clip(1) > clip(0) && clip(2) > clip(1))
        let written = try clip(2)
        let resumed = try rounds(3)
        #expect(resumed.status == 0 && resumed.stderr.contains("resuming after round 2"), "\(resumed.stderr)")
        let ledger = try PrivacyLedger.read(path: dir.path + "/run/ledger.jsonl").entries
        // Round 2 trained (and was recorded) at the clip round 1's release wrote.
        #expect(ledger.map(\.clip) == [try clip(0), try clip(1), written], "\(ledger.map(\.clip))")
        #expect(try clip(3) > written)
        // Adaptive clipping without --dp is a usage error.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = ["--data", sampleRatings, "--run", dir.path + "/x", "--adaptive-clip"]
        let err = Pipe()
        process.standardError = err
        try process.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 64 && message.contains("--adaptive-clip needs --dp"), "\(message)")
    }

    @Test("fl-rounds --dp with ALS: private ALS, one als_gaussian line a round at q = 1 and the calibrated ε; a resume charges nothing more",
          arguments: ["noised", "mean"])
    func privateALSPipeline(itemGram: String) throws {
        let dir = try TemporaryDirectory()
        let script = URL(fileURLWithPath: sampleRatings).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("pipelines/fl-rounds").path
        func rounds(_ n: Int, extra: [String] = []) throws -> (status: Int32, stderr: String) {
            try runScript(script, ["--bin", CommandRunner.directory.path, "--data", sampleRatings, "--run", dir.path + "/run", "--rounds", "\(n)",
                                 "--objective", "wals", "--dim", "4", "--partition", "--split leave-last-out --feedback implicit --shards 2",
                                 "--train", "--algorithm als --alpha 5 --l2 5 --reconstruct", "--server", "--l2 5",
                                 "--dp", "--epsilon", "4", "--delta", "1e-5", "--dp-max-items", "10", "--dp-user-clip", "1",
                                 "--dp-item-gram", itemGram] + extra)
        }
        let first = try rounds(2)
        #expect(first.status == 0, "\(first.stderr)")
        let ledger = try PrivacyLedger.read(path: dir.path + "/run/ledger.jsonl").entries
        #expect(ledger.map(\.mechanism) == [LedgerEntry.alsGaussian, LedgerEntry.alsGaussian])
        #expect(ledger.allSatisfy { $0.sampleRate == 1 && $0.isPrivate })
        // clip records Δ from K = 10, G = 1, α = 5, with or without the item Grams.
        let perItem: Double = itemGram == "noised" ? 25 + 36 + 1 : 36 + 1
        let delta = (1.09 * 10 * perItem).squareRoot()  // the dense Gram weighted to 9 % of the items' share
        #expect(ledger.allSatisfy { abs($0.clip - delta) < 1e-9 * delta }, "\(ledger.map(\.clip))")
        // z was calibrated for 2 full-participation rounds at (4, 1e-5): the ledger spends at most that.
        let z = try #require(ledger.first?.noiseMultiplier)
        let spent = try RDPAccountant().epsilon(sampleRate: 1, noiseMultiplier: z, steps: 2, delta: 1e-5).epsilon
        #expect(spent <= 4 && spent > 3.9)
        let resumed = try rounds(2)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try PrivacyLedger.read(path: dir.path + "/run/ledger.jsonl").entries.count == 2)
        // Private ALS is bounded by K and G, not by --clip.
        let wrong = try rounds(2, extra: ["--clip", "0.5", "--force-config"])
        #expect(wrong.status == 64 && wrong.stderr.contains("private ALS"), "\(wrong.stderr)")
    }

    @Test("fl-rounds --dp --secagg: distributed DP, one distributed_discrete_gaussian line a round with every party's share; the promise kept; a resume charges nothing")
    func distributedPipeline() throws {
        let dir = try TemporaryDirectory()
        let script = URL(fileURLWithPath: sampleRatings).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("pipelines/fl-rounds").path
        func rounds(_ n: Int, extra: [String] = []) throws -> (status: Int32, stderr: String) {
            try runScript(script, ["--bin", CommandRunner.directory.path, "--data", sampleRatings, "--run", dir.path + "/run", "--rounds", "\(n)",
                                 "--objective", "wals", "--dim", "4", "--partition", "--split leave-last-out --feedback implicit --shards 3",
                                 "--train", "--algorithm als --alpha 5 --l2 5 --reconstruct", "--server", "--l2 5",
                                 "--dp", "--epsilon", "4", "--delta", "1e-5", "--dp-max-items", "10", "--dp-user-clip", "1",
                                 "--dp-item-gram", "mean", "--secagg-silo", "--ddp-min-parties", "3", "--test-noise-seed", "9"] + extra)
        }
        let first = try rounds(2)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("distributed DP (private ALS"), "\(first.stderr)")
        let ledger = try PrivacyLedger.read(path: dir.path + "/run/ledger.jsonl").entries
        #expect(ledger.map(\.mechanism) == [LedgerEntry.distributedGaussian, LedgerEntry.distributedGaussian])
        #expect(ledger.allSatisfy { $0.parties == 3 && $0.sampleRate == 1 && !$0.isPrivate })
        // Δ from K = 10, G = 1, α = 5 without the item Grams, as for central private ALS.
        let delta = (1.09 * 10 * 37).squareRoot()
        #expect(ledger.allSatisfy { abs($0.clip - delta) < 1e-9 * delta }, "\(ledger.map(\.clip))")
        let spent = try RDPAccountant().epsilon(ledger: ledger, delta: 1e-5).epsilon
        #expect(spent <= 4 && spent > 3.99)
        let resumed = try rounds(2)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try PrivacyLedger.read(path: dir.path + "/run/ledger.jsonl").entries.count == 2)
        // Under secure aggregation the server knows who took part: no sampling.
        let sampled = try rounds(2, extra: ["--sample-rate", "0.5", "--force-config"])
        #expect(sampled.status == 64 && sampled.stderr.contains("--sample-rate"), "\(sampled.stderr)")
    }

    @Test("fl-rounds --dp --secagg with SGD, every client a party: 400 noise shares, calibrated for the survivors a 10 % dropout rate guarantees")
    func distributedCrossDevice() throws {
        let dir = try TemporaryDirectory()
        let script = URL(fileURLWithPath: sampleRatings).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("pipelines/fl-rounds").path
        let result = try runScript(script, [
            "--bin", CommandRunner.directory.path, "--data", sampleRatings, "--run", dir.path + "/run", "--rounds", "1",
            "--objective", "bpr", "--dim", "4", "--partition", "--split leave-last-out --feedback implicit --shards 2",
            "--train", "--algorithm sgd --reconstruct --lr 0.05", "--dp", "--epsilon", "8", "--delta", "1e-5", "--clip", "0.5",
            "--secagg", "--test-noise-seed", "3",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let ledger = try PrivacyLedger.read(path: dir.path + "/run/ledger.jsonl").entries
        #expect(ledger.count == 1 && ledger[0].parties == 400 && ledger[0].clients == 400 && ledger[0].clip == 0.5)
        let mechanism = try #require(ledger[0].distributed)
        // t = ⌊400·0.9 − √(10·400·ln 2)⌋ = 307 (Hoeffding at 2^-20): the promise is tight there,
        // and the 400 shares actually summed spend less.
        let t = Int((400 * 0.9 - (10 * 400 * log(2.0)).squareRoot()).rounded(.down))
        #expect(t == 307)
        let promised = try mechanism.epsilon(parties: t, tauParties: 400, rounds: 1, delta: 1e-5)
        #expect(promised <= 8 && promised > 7.99)
        #expect(try RDPAccountant().epsilon(ledger: ledger, delta: 1e-5).epsilon < promised)
    }

    /// Runs a script with stdout discarded: its exit status and stderr.
    func runScript(_ script: String, _ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = arguments
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, stderr)
    }
}
