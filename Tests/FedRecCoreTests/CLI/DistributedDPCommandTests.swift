import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport
import FedRecFormats
import FedRecMechanisms
import FedRecPrivacy
import FedRecWire

/// Distributed DP under secure aggregation from the command line: each shard one party,
/// its clients' vectors rotated and rounded one by one, its own noise share, then the
/// secure round's files; the server's unmask charges the ledger.
@Suite("distributed DP: noise shares added by the parties, the sum unmasked with a ledger", .serialized)
struct DistributedDPCommandTests {
    typealias Setup = SecureAggregationCommandTests.Setup

    /// Keys, roster, shares and relay for `parties` silo parties; returns the setup.
    static func secureRound(parties: Int = 4, users: Int = 80) throws -> Setup {
        let setup = try Setup(users: users, shards: parties)
        try setup.run("fl-init", ["--dataset", "ds", "--objective", "mse", "--dim", "16", "-o", "m16.safetensors"])
        try setup.run("fl-secagg", ["session", "--round", "0", "-o", "session"])
        for s in 0..<parties { try setup.run("fl-secagg", ["keys"] + setup.session(["--party", String(s), "--state", "p\(s).state", "-o", "p\(s).keys"])) }
        try setup.run("fl-secagg", ["roster"] + setup.session(["--dropout-rate", "0.1", "--bits", "20", "-q", "-o", "roster"] + (0..<parties).map { "p\($0).keys" }))
        for s in 0..<parties { try setup.run("fl-secagg", ["share"] + setup.session(["--state", "p\(s).state", "--roster", "roster", "-o", "p\(s).shares"])) }
        try setup.run("fl-secagg", ["relay"] + setup.session(["--roster", "roster", "-o", "deliveries"] + (0..<parties).map { "p\($0).shares" }))
        return setup
    }

    static let training = ["--model", "m16.safetensors", "--reconstruct", "--algorithm", "sgd", "--weighting", "uniform", "--clip", "0.5"]

    /// Party s's masked, noised vector (test seed s, so the test is reproducible: NOT private).
    static func mask(_ setup: Setup, _ s: Int, users: Int, minParties: Int) throws {
        try setup.run("fl-train-local", training + [
            "--shard", setup.shard(s), "--secagg-session", "session", "--secagg-state", "p\(s).state", "--secagg-roster", "roster",
            "--secagg-deliveries", "deliveries", "--secagg-silo", "--ddp-epsilon", "4", "--ddp-delta", "1e-5", "--ddp-rounds", "2",
            "--ddp-clients", String(users), "--ddp-min-parties", String(minParties), "--test-seed", String(s + 1), "-q", "-o", "p\(s).masked",
        ])
    }

    @Test("the unmasked sum is the plain sum plus noise of the promised standard deviation, charged to the ledger first")
    func siloRound() throws {
        let setup = try Self.secureRound()
        for s in 0..<4 { try Self.mask(setup, s, users: 80, minParties: 4) }
        try setup.run("fl-aggregate", (0..<4).map { "p\($0).masked" } + ["-o", "masked-sum"])
        try setup.run("fl-secagg", ["request"] + setup.session(["--roster", "roster", "--deliveries", "deliveries", "--sum", "masked-sum", "-o", "request"]))
        for s in 0..<4 { try setup.run("fl-secagg", ["reveal"] + setup.session(["--state", "p\(s).state", "--roster", "roster", "--request", "request", "-o", "p\(s).reveal"])) }
        let reveals = (0..<4).map { "p\($0).reveal" }
        // Without a ledger a distributed-DP sum is not unmasked.
        let bare = try Tool.run("fl-secagg", ["unmask"] + setup.session(["--roster", "roster", "--request", "request", "--sum", "masked-sum", "-o", "x.sum"] + reveals), in: setup.path)
        #expect(bare.status == FailureClass.usage.rawValue && bare.stderr.contains("--ledger"), "\(bare.stderr)")
        #expect(!FileManager.default.fileExists(atPath: setup.path + "/x.sum"))
        try setup.run("fl-secagg", ["unmask"] + setup.session([
            "--roster", "roster", "--request", "request", "--sum", "masked-sum", "-o", "ddp.sum", "--ledger", "ledger.jsonl",
            "--delta", "1e-5", "-q",
        ] + reveals))

        // The plain sum of the same training (fl-train-local is deterministic).
        for s in 0..<4 { try setup.run("fl-train-local", Self.training + ["--shard", setup.shard(s), "-o", "plain\(s).safetensors"]) }
        try setup.run("fl-aggregate", (0..<4).map { "plain\($0).safetensors" } + ["-o", "plain.sum"])
        let plain = try ReleaseVector.packSGD(try ModelUpdate.load(setup.path + "/plain.sum"))
        let noised = try ModelUpdate.load(setup.path + "/ddp.sum")
        #expect(noised.header.clients == 80)
        #expect(noised.header.extra[DPMetadata.mechanism] == DPMetadata.distributedGaussianMechanism)
        let released = try ReleaseVector.packSGD(noised)

        // The ledger: one line, four shares, the parameters the parties used.
        let ledger = try PrivacyLedger.read(path: setup.path + "/ledger.jsonl").entries
        #expect(ledger.count == 1 && ledger[0].mechanism == LedgerEntry.distributedGaussian && ledger[0].parties == 4)
        #expect(ledger[0].clip == 0.5 && !ledger[0].isPrivate)  // test seeds: marked not private
        let mechanism = try #require(ledger[0].distributed)
        // With t = n = 4 shares the promise (4, 1e-5) over 2 rounds is met, and nearly spent.
        let eps = try mechanism.epsilon(parties: 4, rounds: 2, delta: 1e-5)
        #expect(eps <= 4 && eps > 3.99)
        // The sum's noise is about the central Gaussian's for the same promise: z from the
        // central calibration times the rounded sensitivity Δ₂·γ (a fine grid: Δ₂γ ≈ c).
        let z = try RDPAccountant().calibrateNoiseMultiplier(targetEpsilon: 4, delta: 1e-5, sampleRate: 1, steps: 2)
        let sigma = mechanism.centralStddev(parties: 4)
        #expect(abs(sigma / (z * mechanism.roundedL2Bound * mechanism.granularity) - 1) < 0.01, "\(sigma) vs z \(z)")
        #expect(mechanism.roundedL2Bound * mechanism.granularity < 0.5 * 1.05)
        // The released sum minus the plain sum: noise of that σ (plus 80 clients' roundings,
        // each ≤ γ²/4 a coordinate), over 30·17 + 1 coordinates: its std within 20 %.
        let residual = zip(released, plain).map { Double($0) - Double($1) }
        let mean = residual.reduce(0, +) / Double(residual.count)
        let std = (residual.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(residual.count - 1)).squareRoot()
        let most = (sigma * sigma + 80 * mechanism.granularity * mechanism.granularity / 4).squareRoot()
        #expect(std > 0.8 * sigma && std < 1.2 * most, "residual std \(std), sigma \(sigma)")
        #expect(abs(mean) < 4 * sigma / Double(residual.count).squareRoot())
        // fl-dp-noise account reports the mechanism.
        let account = try setup.run("fl-dp-noise", ["account", "--ledger", "ledger.jsonl", "--delta", "1e-5", "--json"])
        let report = try JSONValue.parse(account.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report["mechanisms"]?[LedgerEntry.distributedGaussian]?["releases"]?.doubleValue == 1, "\(account.stdout)")
        // The next model, as from any noised sum.
        try setup.run("fl-aggregate", ["ddp.sum", "--model", "m16.safetensors", "--fixed-denominator", "80", "-o", "m1.safetensors"])
    }

    @Test("a sum of fewer parties than the noise was promised for is not unmasked, and nothing is charged")
    func tooFewShares() throws {
        let setup = try Self.secureRound()
        for s in 0..<4 { try Self.mask(setup, s, users: 80, minParties: 4) }
        // Party 3 masked but its upload never arrived: the sum holds three noise shares.
        try setup.run("fl-aggregate", (0..<3).map { "p\($0).masked" } + ["-o", "masked-sum"])
        try setup.run("fl-secagg", ["request"] + setup.session(["--roster", "roster", "--deliveries", "deliveries", "--sum", "masked-sum", "-o", "request"]))
        for s in 0..<3 { try setup.run("fl-secagg", ["reveal"] + setup.session(["--state", "p\(s).state", "--roster", "roster", "--request", "request", "-o", "p\(s).reveal"])) }
        let r = try Tool.run("fl-secagg", ["unmask"] + setup.session([
            "--roster", "roster", "--request", "request", "--sum", "masked-sum", "-o", "ddp.sum", "--ledger", "ledger.jsonl",
        ] + (0..<3).map { "p\($0).reveal" }), in: setup.path)
        #expect(r.status == FailureClass.tooFewParties.rawValue && r.stderrLines.count == 1 && r.stderr.contains("fewer than the 4"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: setup.path + "/ddp.sum"))
        #expect(!FileManager.default.fileExists(atPath: setup.path + "/ledger.jsonl"))
        // A party asked to promise more parties than the roster has refuses at once.
        let more = try Tool.run("fl-train-local", Self.training + [
            "--shard", setup.shard(0), "--secagg-session", "session", "--secagg-state", "p0.state", "--secagg-roster", "roster",
            "--secagg-deliveries", "deliveries", "--secagg-silo", "--ddp-epsilon", "4", "--ddp-delta", "1e-5",
            "--ddp-clients", "80", "--ddp-min-parties", "5", "-q", "-o", "again.masked",
        ], in: setup.path)
        #expect(more.status == FailureClass.usage.rawValue && more.stderr.contains("minimum parties"), "\(more.stderr)")
        // Distributed DP outside a secure round would be a noise share nobody masks: refused.
        let bare = try Tool.run("fl-train-local", Self.training + [
            "--shard", setup.shard(0), "--ddp-epsilon", "4", "--ddp-delta", "1e-5", "-q", "-o", "bare.safetensors",
        ], in: setup.path)
        #expect(bare.status == FailureClass.usage.rawValue && bare.stderrLines.count == 1 && bare.stderr.contains("--secagg-session"), "\(bare.stderr)")
        #expect(!FileManager.default.fileExists(atPath: setup.path + "/bare.safetensors"))
    }
}
