import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport
import FedRecFormats
import FedRecModel
import FedRecWire

/// An ncf model under client-level DP and secure aggregation through the commands, as MF
/// is (`DPCommandLineTests`, `SecureAggregationCommandTests`): a sampled, clipped round
/// noised by fl-dp-noise; a cross-device secure round (each client a party, plain and q8);
/// a cross-silo one (each shard a party); and what is refused.
@Suite("ncf under DP and secure aggregation through the commands", .serialized)
struct NCFPrivacyCommandTests {
    /// 24 users (implicit feedback) in 2 shards, a NeuMF model and each shard's plain update
    /// (uniform weighting, the same training and seed the secure rounds use).
    final class Setup {
        let dir: TemporaryDirectory
        var path: String { dir.path }
        static let training = ["--reconstruct", "--weighting", "uniform", "--optimizer", "adam", "--lr", "0.01", "--batch-size", "8", "--epochs", "1"]

        init() throws {
            dir = try TemporaryDirectory()
            try SyntheticDataset.csv(users: 24, items: 30, perUser: 12).write(toFile: path + "/ratings.csv", atomically: true, encoding: .utf8)
            try run("fl-partition", ["ratings.csv", "-o", "ds", "--shards", "2", "--split", "ratio", "--test-ratio", "0.2", "--feedback", "implicit"])
            try run("fl-init", ["--dataset", "ds", "--model", "ncf", "--ncf-variant", "neumf", "--objective", "bce", "--dim", "4", "--mlp-dim", "4",
                                "--layers", "8,4", "--init-scale", "0.05", "-o", "m0.safetensors"])
            for s in 0..<2 { try run("fl-train-local", ["--model", "m0.safetensors", "--shard", shard(s), "-o", "u\(s).safetensors"] + Self.training) }
        }

        func shard(_ s: Int) -> String { "ds/shards/shard-0000\(s).tar" }

        @discardableResult
        func run(_ tool: String, _ args: [String]) throws -> CommandResult { try Tool.succeeding(tool, args, in: path) }

        /// A session, keys and shares for `groups` (each `--shard S` or `--party P`), relayed.
        func prepare(_ tag: String, groups: [[String]], bits: Int) throws {
            let s = ["--session", "\(tag).session"]
            try run("fl-secagg", ["session", "--round", "0", "-o", "\(tag).session"])
            for (k, group) in groups.enumerated() {
                try run("fl-secagg", ["keys"] + s + group + ["--state", "\(tag)\(k).state", "-o", "\(tag)\(k).keys"])
            }
            try run("fl-secagg", ["roster"] + s + ["--dropout-rate", "0.3", "--bits", String(bits), "-q", "-o", "\(tag).roster"] + groups.indices.map { "\(tag)\($0).keys" })
            for k in groups.indices {
                try run("fl-secagg", ["share"] + s + ["--state", "\(tag)\(k).state", "--roster", "\(tag).roster", "-o", "\(tag)\(k).shares"])
            }
            try run("fl-secagg", ["relay"] + s + ["--roster", "\(tag).roster", "-o", "\(tag).deliveries"] + groups.indices.map { "\(tag)\($0).shares" })
        }

        /// The masked uploads of `groups` summed, revealed by every group and unmasked to `TAG.sum`.
        func finish(_ tag: String, groups: Int) throws -> ModelUpdate {
            let s = ["--session", "\(tag).session"]
            try run("fl-aggregate", (0..<groups).map { "\(tag)\($0).masked" } + ["-o", "\(tag).masked-sum"])
            try run("fl-secagg", ["request"] + s + ["--roster", "\(tag).roster", "--deliveries", "\(tag).deliveries", "--sum", "\(tag).masked-sum", "-o", "\(tag).request"])
            for k in 0..<groups {
                try run("fl-secagg", ["reveal"] + s + ["--state", "\(tag)\(k).state", "--roster", "\(tag).roster", "--request", "\(tag).request", "-o", "\(tag)\(k).reveal"])
            }
            try run("fl-secagg", ["unmask"] + s + ["--roster", "\(tag).roster", "--request", "\(tag).request", "--sum", "\(tag).masked-sum", "-o", "\(tag).sum"]
                    + (0..<groups).map { "\(tag)\($0).reveal" })
            return try ModelUpdate.load(path + "/\(tag).sum")
        }
    }

    /// Cross-device: each client of both shards a party. The unmasked sum has the plain
    /// sum's rows and counts exactly and its values within the rounding bound: per value,
    /// each contributing client's rounding moves it by less than one step c/M, M =
    /// ⌊(2^(b-1) - 1)/n⌋ for plain masking, at most 127 levels with q8.
    @Test("cross-device: every ncf client masked apart, plain and q8; the unmasked sum is the plain fl-train-local sum within the quantisation bound")
    func crossDevice() throws {
        let setup = try Setup()
        try setup.run("fl-aggregate", ["u0.safetensors", "u1.safetensors", "-o", "plain.sum"])
        let plain = try ModelUpdate.load(setup.path + "/plain.sum")
        let clients = plain.header.clients
        #expect(clients == 24)
        let contributors = max(Int(plain.rowClients.max() ?? 0), clients)
        for (tag, compress) in [("plain", [String]()), ("q8", ["--compress", "q8"])] {
            try setup.prepare(tag, groups: (0..<2).map { ["--shard", setup.shard($0)] }, bits: 24)
            for k in 0..<2 {
                try setup.run("fl-train-local", ["--model", "m0.safetensors", "--shard", setup.shard(k), "--secagg-session", "\(tag).session",
                                                 "--secagg-state", "\(tag)\(k).state", "--secagg-roster", "\(tag).roster",
                                                 "--secagg-deliveries", "\(tag).deliveries", "--secagg-clip", "0.25", "-q", "-o", "\(tag)\(k).masked"]
                              + Setup.training + compress)
            }
            let secure = try setup.finish(tag, groups: 2)
            let levels = min(Double(((1 << 23) - 1) / clients), compress.isEmpty ? .infinity : 127)
            #expect(tag == "plain" || levels == 127)
            // An Adam client moves a value by about lr a step, well inside c = 0.25.
            let bound = Double(contributors) * 0.25 / levels + 1e-5
            SecureAggregationCommandTests.expectClose(secure, plain, bound: bound)
            // The bound is tight enough to fail: a tenth of the plain sum's largest dense value.
            let largest = plain.dense.values.flatMap { $0 }.map { abs(Double($0)) }.max() ?? 0
            #expect(bound < 0.1 * largest, "\(bound) against \(largest)")
            #expect(secure.header.extra[UpdateCompression.decodedKey] == (compress.isEmpty ? nil : "q8"))
            #expect(Set(secure.dense.keys) == Set(plain.dense.keys) && secure.dense.count == 6)
        }
        // The next model from a secure sum, as from any sum.
        try setup.run("fl-aggregate", ["q8.sum", "--model", "m0.safetensors", "-o", "m1.safetensors"])
        #expect(try NCFModel.open(setup.path + "/m1.safetensors").model.round == 1)
    }

    @Test("cross-silo: each shard's plain ncf update masked by fl-secagg mask --update; the unmasked sum is fl-aggregate's plain sum within the bound")
    func crossSilo() throws {
        let setup = try Setup()
        try setup.prepare("silo", groups: [["--party", "0"], ["--party", "1"]], bits: 24)
        for s in 0..<2 {
            try setup.run("fl-secagg", ["mask", "--session", "silo.session", "--state", "silo\(s).state", "--roster", "silo.roster", "--deliveries", "silo.deliveries",
                                        "--update", "u\(s).safetensors", "--clip", "50", "-o", "silo\(s).masked"])
        }
        let secure = try setup.finish("silo", groups: 2)
        try setup.run("fl-aggregate", ["u0.safetensors", "u1.safetensors", "-o", "plain.sum"])
        let plain = try ModelUpdate.load(setup.path + "/plain.sum")
        SecureAggregationCommandTests.expectClose(secure, plain, bound: SecureAggregationCommandTests.bound(parties: 2, clip: 50, bits: 24, rosterSize: 2))
        try setup.run("fl-aggregate", ["silo.sum", "--model", "m0.safetensors", "-o", "m1.safetensors"])
        #expect(try NCFModel.open(setup.path + "/m1.safetensors").model.round == 1)
    }

    @Test("a sampled, clipped ncf round: the sum records q, N, C and the clipped count; fl-dp-noise noises every item's rows and the tower, fl-aggregate --fixed-denominator applies it")
    func centralDP() throws {
        let setup = try Setup()
        try "3\n".write(toFile: setup.path + "/sample-key", atomically: true, encoding: .utf8)
        var clipped = 0, population = 0
        for s in 0..<2 {
            let r = try setup.run("fl-train-local", ["--model", "m0.safetensors", "--shard", setup.shard(s), "--clip", "0.05", "--sample-rate", "0.5",
                                                     "--sample-key-file", "sample-key", "--json", "-q", "-o", "d\(s).safetensors"] + Setup.training)
            let report = try JSONValue.parse(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            clipped += Int(report["clipped"]?.doubleValue ?? -1)
            population += Int(report["population"]?.doubleValue ?? -1)
        }
        try setup.run("fl-aggregate", ["d0.safetensors", "d1.safetensors", "-o", "dp.sum"])
        let sum = try ModelUpdate.load(setup.path + "/dp.sum")
        #expect(sum.header.sampleRate == 0.5 && sum.header.population == 24 && population == 24 && sum.header.clip == 0.05)
        #expect(sum.header.clipped == clipped && clipped > 0 && sum.header.clients < 24)
        try setup.run("fl-dp-noise", ["dp.sum", "-o", "noised.sum", "--ledger", "ledger.jsonl", "--noise-multiplier", "1.1", "--seed", "1", "-q"])
        let noised = try ModelUpdate.load(setup.path + "/noised.sum")
        let items = sum.header.config.items
        #expect(noised.rows.count == items && noised.rowTensors["gmf_item"]?.values.count == items * 4 && noised.rowTensors["mlp_item"]?.values.count == items * 4)
        #expect(noised.rowWeight.allSatisfy { $0 == 12 } && noised.header.weight == 12)
        #expect(Set(noised.dense.keys) == Set(sum.dense.keys))
        let ledger = try String(contentsOfFile: setup.path + "/ledger.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(ledger.count == 1)
        try setup.run("fl-aggregate", ["noised.sum", "--model", "m0.safetensors", "--fixed-denominator", "12", "-o", "m1.safetensors"])
        let (start, next) = (try NCFModel.open(setup.path + "/m0.safetensors").model, try NCFModel.open(setup.path + "/m1.safetensors").model)
        let out = try #require(noised.dense["out.b"]), offset = try #require(start.network.denseLayout.first { $0.name == "out.b" }?.offset)
        #expect(abs(Double(next.dense[offset]) - (Double(start.dense[offset]) + Double(out[0]) / 12)) <= 1e-6)
    }

    @Test("fl-rounds --secagg (each client a party, q8) and --secagg-silo run ncf rounds as they run mf ones",
          .enabled(if: onPath("flock") && onPath("bash"), "needs bash and flock (util-linux)"))
    func rounds() throws {
        let setup = try Setup()
        for mode in ["--secagg", "--secagg-silo"] {
            let run = setup.path + "/run" + mode
            let r = try Tool.run(roundsScript, ["--bin", CommandRunner.directory.path, "--data", setup.path + "/ds", "--run", run, "--rounds", "1",
                                                "--objective", "bce", "--dim", "4", "--init", "--model ncf --ncf-variant neumf --mlp-dim 4 --layers 8,4 --init-scale 0.05",
                                                "--train", (Setup.training + ["--compress", "q8"]).joined(separator: " "), mode, "--secagg-bits", "16", "--secagg-clip", "1"])
            #expect(r.status == 0, "\(mode): \(r.stderr)")
            #expect(try NCFModel.open(run + "/model-0001.safetensors").model.round == 1)
            let line = try #require(try String(contentsOfFile: run + "/rounds.jsonl", encoding: .utf8).split(separator: "\n").first)
            #expect(try JSONValue.parse(String(line))["clients"]?.doubleValue == 24, "\(line)")
        }
    }

    @Test("refused for ncf with one line naming the option, nothing written: distributed DP (--ddp-epsilon, --secagg-silo), --local-dp, --sample-rate under secure aggregation")
    func refusals() throws {
        let setup = try Setup()
        try setup.prepare("r", groups: [["--shard", setup.shard(0)]], bits: 24)
        let secure = ["--secagg-session", "r.session", "--secagg-state", "r0.state", "--secagg-roster", "r.roster", "--secagg-deliveries", "r.deliveries"]
        let before = try readBytes(setup.path + "/r0.state")
        for (extra, named) in [
            (secure + ["--clip", "0.5", "--ddp-epsilon", "8", "--ddp-delta", "1e-6"], "--ddp-epsilon"),
            (secure + ["--clip", "0.5", "--secagg-silo", "--ddp-epsilon", "8", "--ddp-delta", "1e-6"], "--secagg-silo"),
            (secure + ["--clip", "0.5", "--sample-rate", "0.5"], "--sample-rate"),
            (secure + ["--compress", "topk:0.1", "--state", "st"], "secure aggregation"),
            (["--clip", "0.5", "--local-dp", "--noise-multiplier", "1"], "--local-dp"),
        ] {
            let r = try Tool.run("fl-train-local", ["--model", "m0.safetensors", "--shard", setup.shard(0), "-o", "x.masked"] + Setup.training + extra, in: setup.path)
            #expect(r.status == 64 && r.stderrLines.count == 1 && r.stderr.contains(named), "\(extra.suffix(4)): \(r.status) \(r.stderr)")
        }
        #expect(!fileExists(setup.path + "/x.masked") && !fileExists(setup.path + "/st"))
        #expect(try readBytes(setup.path + "/r0.state") == before)
    }
}
