import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport
import FedRecFormats
import FedRecWire
import FedRecSecureAggregation

/// Secure aggregation from the command line, every step a file, as a pipeline runs it.
@Suite("fl-secagg: secure rounds from the command line", .serialized)
struct SecureAggregationCommandTests {
    /// A directory with a 4-shard dataset of `users` users, a model and each shard's plain
    /// update (uniform weighting, so counts are small integers).
    final class Setup {
        let dir: TemporaryDirectory
        var path: String { dir.path }
        let shards: Int

        init(users: Int = 40, shards: Int = 4) throws {
            dir = try TemporaryDirectory()
            self.shards = shards
            try SyntheticDataset.csv(users: users, items: 30, perUser: 12).write(toFile: path + "/ratings.csv", atomically: true, encoding: .utf8)
            try run("fl-partition", ["ratings.csv", "-o", "ds", "--shards", String(shards), "--split", "ratio", "--test-ratio", "0.2"])
            try run("fl-init", ["--dataset", "ds", "--objective", "mse", "--dim", "4", "-o", "m0.safetensors"])
            for s in 0..<shards {
                try run("fl-train-local", ["--model", "m0.safetensors", "--shard", shard(s), "--reconstruct", "--weighting", "uniform", "-o", "u\(s).safetensors"])
            }
        }

        func shard(_ s: Int) -> String { "ds/shards/shard-0000\(s).tar" }

        @discardableResult
        func run(_ tool: String, _ args: [String]) throws -> CommandResult { try Tool.succeeding(tool, args, in: path) }

        func session(_ more: [String]) -> [String] { ["--session", "session"] + more }
    }

    /// |secure - plain| per value: each of the `parties` parties' roundings moves a value by
    /// less than one quantisation step c/M, M = ⌊(2^(b-1) - 1)/n⌋ (derived here, not read back).
    static func bound(parties: Int, clip: Double, bits: Int, rosterSize: Int) -> Double {
        let levels = Double(((1 << (bits - 1)) - 1) / rosterSize)
        return Double(parties) * clip / levels + 1e-5
    }

    static func expectClose(_ secure: ModelUpdate, _ plain: ModelUpdate, bound: Double) {
        #expect(secure.rows == plain.rows)
        #expect(secure.rowClients == plain.rowClients)
        #expect(secure.rowWeight == plain.rowWeight)
        #expect(secure.header.clients == plain.header.clients && secure.header.weight == plain.header.weight)
        #expect(Set(secure.rowTensors.keys) == Set(plain.rowTensors.keys))
        for (name, tensor) in plain.rowTensors {
            let other = secure.rowTensors[name]?.values ?? []
            #expect(other.count == tensor.values.count)
            let worst = zip(other, tensor.values).map { abs(Double($0) - Double($1)) }.max() ?? 0
            #expect(worst <= bound, "\(name): \(worst) > \(bound)")
        }
        for (name, values) in plain.dense {
            let worst = zip(secure.dense[name] ?? [], values).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
            #expect(worst <= bound, "\(name): \(worst) > \(bound)")
        }
    }

    /// Cross-silo: each shard one party. The unmasked sum is the plain sum of all four
    /// updates within the rounding bound, with one party gone after its masked upload.
    @Test("cross-silo: the unmasked sum equals fl-aggregate's plain sum within the quantisation bound, with a dropout after upload")
    func crossSilo() throws {
        let setup = try Setup()
        try setup.run("fl-secagg", ["session", "--round", "0", "-o", "session"])
        for s in 0..<4 { try setup.run("fl-secagg", ["keys"] + setup.session(["--party", String(s), "--state", "p\(s).state", "-o", "p\(s).keys"])) }
        let roster = try setup.run("fl-secagg", ["roster"] + setup.session(["--dropout-rate", "0.3", "--bits", "24", "--json", "-o", "roster"] + (0..<4).map { "p\($0).keys" }))
        let chosen = try JSONValue.parse(roster.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(chosen["degree"]?.doubleValue == 3 && chosen["threshold"]?.doubleValue == 2, "\(roster.stdout)")
        for s in 0..<4 { try setup.run("fl-secagg", ["share"] + setup.session(["--state", "p\(s).state", "--roster", "roster", "-o", "p\(s).shares"])) }
        try setup.run("fl-secagg", ["relay"] + setup.session(["--roster", "roster", "-o", "deliveries"] + (0..<4).map { "p\($0).shares" }))
        for s in 0..<4 {
            try setup.run("fl-secagg", ["mask"] + setup.session([
                "--state", "p\(s).state", "--roster", "roster", "--deliveries", "deliveries", "--update", "u\(s).safetensors",
                "--clip", "50", "-o", "p\(s).masked",
            ]))
        }
        // Masked sums in a tree: (0+1) + (2+3).
        try setup.run("fl-aggregate", ["p0.masked", "p1.masked", "-o", "a.masked"])
        try setup.run("fl-aggregate", ["p2.masked", "p3.masked", "-o", "b.masked"])
        try setup.run("fl-aggregate", ["a.masked", "b.masked", "-o", "masked-sum"])
        // The same masked update twice is refused: its shard (and party) would count twice.
        let twice = try Tool.run("fl-aggregate", ["a.masked", "p0.masked", "-o", "x.masked"], in: setup.path)
        #expect(twice.status == FailureClass.mismatch.rawValue && twice.stderrLines.count == 1, "\(twice.status) \(twice.stderr)")
        #expect(!FileManager.default.fileExists(atPath: setup.path + "/x.masked"))
        try setup.run("fl-secagg", ["request"] + setup.session(["--roster", "roster", "--deliveries", "deliveries", "--sum", "masked-sum", "-o", "request"]))
        for s in 0..<3 { try setup.run("fl-secagg", ["reveal"] + setup.session(["--state", "p\(s).state", "--roster", "roster", "--request", "request", "-o", "p\(s).reveal"])) }
        try setup.run("fl-secagg", ["unmask"] + setup.session(["--roster", "roster", "--request", "request", "--sum", "masked-sum", "-o", "secure.sum", "p0.reveal", "p1.reveal", "p2.reveal"]))
        try setup.run("fl-aggregate", (0..<4).map { "u\($0).safetensors" } + ["-o", "plain.sum"])
        let secure = try ModelUpdate.load(setup.path + "/secure.sum")
        let plain = try ModelUpdate.load(setup.path + "/plain.sum")
        Self.expectClose(secure, plain, bound: Self.bound(parties: 4, clip: 50, bits: 24, rosterSize: 4))
        // The next model from the secure sum, as from any sum.
        try setup.run("fl-aggregate", ["secure.sum", "--model", "m0.safetensors", "-o", "m1.safetensors"])

        // A party asked again refuses (89) and keeps its state; too few reveals release
        // nothing (88); a state file is its owner's only.
        let before = try readBytes(setup.path + "/p0.state")
        let again = try Tool.run("fl-secagg", ["reveal"] + setup.session(["--state", "p0.state", "--roster", "roster", "--request", "request", "-o", "again.reveal"]), in: setup.path)
        #expect(again.status == FailureClass.refused.rawValue && again.stderrLines.count == 1, "\(again.stderr)")
        #expect(try readBytes(setup.path + "/p0.state") == before)
        #expect(!FileManager.default.fileExists(atPath: setup.path + "/again.reveal"))
        let few = try Tool.run("fl-secagg", ["unmask"] + setup.session(["--roster", "roster", "--request", "request", "--sum", "masked-sum", "-o", "few.sum", "p0.reveal"]), in: setup.path)
        #expect(few.status == FailureClass.tooFewParties.rawValue && few.stderrLines.count == 1, "\(few.stderr)")
        #expect(!FileManager.default.fileExists(atPath: setup.path + "/few.sum"))
        let mode = try FileManager.default.attributesOfItem(atPath: setup.path + "/p0.state")[.posixPermissions] as? Int
        #expect(mode == 0o600)

        // Nothing the server holds contains a private key, a seed or a survivor's mask-key share.
        let session = try SecAggSession(path: setup.path + "/session")
        let serverFiles = try setup.dir.listing().filter { !$0.hasSuffix(".state") && !$0.hasPrefix("u") && !$0.hasPrefix("ds") }
        let seen = try serverFiles.map { try readBytes(setup.path + "/" + $0) }
        func found(_ needle: [UInt8]) -> Bool {
            seen.contains { hay in hay.count >= needle.count && (0...(hay.count - needle.count)).contains { Array(hay[$0..<($0 + needle.count)]) == needle } }
        }
        for s in 0..<4 {
            for party in try SecAggStateFile.read(setup.path + "/p\(s).state", session: session) {
                let record = party.record
                #expect(!found(record.encryptionPrivateKey) && !found(record.maskPrivateKey) && !found(record.selfMaskSeed))
                for held in record.heldShares { #expect(!found(held.maskKey.bytes)) }
            }
        }
    }

    /// Cross-device: every client a party (fl-train-local --secagg-session). With no client
    /// lost before its upload, the sum equals the plain sum; with simulated dropouts while
    /// sharing, the sum holds exactly the clients the request names.
    @Test("cross-device: each client masked apart; exact counts, values within the bound; dropouts leave the survivors' sum")
    func crossDevice() throws {
        let setup = try Setup(users: 40, shards: 2)
        for (tag, shareDrop) in [("all", "0"), ("drop", "0.2")] {
            let s = ["--session", "\(tag).session"]
            try setup.run("fl-secagg", ["session", "--round", "0", "-o", "\(tag).session"])
            for k in 0..<2 {
                try setup.run("fl-secagg", ["keys"] + s + ["--shard", setup.shard(k), "--state", "\(tag)\(k).state", "-o", "\(tag)\(k).keys"])
            }
            try setup.run("fl-secagg", ["roster"] + s + ["--dropout-rate", "0.3", "-q", "-o", "\(tag).roster", "\(tag)0.keys", "\(tag)1.keys"])
            for k in 0..<2 {
                try setup.run("fl-secagg", ["share"] + s + ["--state", "\(tag)\(k).state", "--roster", "\(tag).roster", "-o", "\(tag)\(k).shares",
                                                           "--simulate-dropout", shareDrop, "--dropout-seed", "5"])
            }
            try setup.run("fl-secagg", ["relay"] + s + ["--roster", "\(tag).roster", "-o", "\(tag).deliveries", "\(tag)0.shares", "\(tag)1.shares"])
            for k in 0..<2 {
                try setup.run("fl-train-local", [
                    "--model", "m0.safetensors", "--shard", setup.shard(k), "--reconstruct", "--weighting", "uniform",
                    "--secagg-session", "\(tag).session", "--secagg-state", "\(tag)\(k).state", "--secagg-roster", "\(tag).roster",
                    "--secagg-deliveries", "\(tag).deliveries", "--secagg-clip", "4", "-o", "\(tag)\(k).masked",
                ])
            }
            try setup.run("fl-aggregate", ["\(tag)0.masked", "\(tag)1.masked", "-o", "\(tag).masked-sum"])
            try setup.run("fl-secagg", ["request"] + s + ["--roster", "\(tag).roster", "--deliveries", "\(tag).deliveries", "--sum", "\(tag).masked-sum", "-o", "\(tag).request"])
            for k in 0..<2 {
                try setup.run("fl-secagg", ["reveal"] + s + ["--state", "\(tag)\(k).state", "--roster", "\(tag).roster", "--request", "\(tag).request", "-o", "\(tag)\(k).reveal"])
            }
            try setup.run("fl-secagg", ["unmask"] + s + ["--roster", "\(tag).roster", "--request", "\(tag).request", "--sum", "\(tag).masked-sum",
                                                        "-o", "\(tag).sum", "\(tag)0.reveal", "\(tag)1.reveal"])
        }
        try setup.run("fl-aggregate", ["u0.safetensors", "u1.safetensors", "-o", "plain.sum"])
        let plain = try ModelUpdate.load(setup.path + "/plain.sum")
        let all = try ModelUpdate.load(setup.path + "/all.sum")
        let maxRowClients = Int(plain.rowClients.max() ?? 0)
        Self.expectClose(all, plain, bound: Self.bound(parties: max(maxRowClients, plain.header.clients), clip: 4, bits: 24, rosterSize: 40))

        let session = try SecAggSession(path: setup.path + "/drop.session")
        let request = try UnmaskRequestFile.read(setup.path + "/drop.request", session: session)
        let survivors = request.survivors.count
        let shared = request.survivors.count + request.dropped.count
        #expect(survivors < 40 && survivors > 20, "\(survivors) survivors")
        #expect(shared == survivors)  // dropouts were while sharing: who shared also masked
        let partial = try ModelUpdate.load(setup.path + "/drop.sum")
        #expect(partial.header.clients == survivors)
        #expect(partial.rowClients.reduce(0, +) < plain.rowClients.reduce(0, +))
    }

    /// Out-of-round and replayed messages: a roster of another session (86), a second share
    /// step (89); both one line on stderr, the state untouched.
    @Test("another session's roster is refused (86), a second share step (89), state untouched")
    func replays() throws {
        let setup = try Setup(users: 12, shards: 2)
        for tag in ["a", "b"] {
            try setup.run("fl-secagg", ["session", "--round", "1", "-o", "\(tag).session"])
            for k in 0..<2 {
                try setup.run("fl-secagg", ["keys", "--session", "\(tag).session", "--party", String(k), "--state", "\(tag)\(k).state", "-o", "\(tag)\(k).keys"])
            }
            try setup.run("fl-secagg", ["roster", "--session", "\(tag).session", "-q", "-o", "\(tag).roster", "\(tag)0.keys", "\(tag)1.keys"])
        }
        let before = try readBytes(setup.path + "/a0.state")
        let other = try Tool.run("fl-secagg", ["share", "--session", "a.session", "--state", "a0.state", "--roster", "b.roster", "-o", "x.shares"], in: setup.path)
        #expect(other.status == FailureClass.mismatch.rawValue && other.stderrLines.count == 1 && other.stderr.contains("b.roster"), "\(other.stderr)")
        #expect(try readBytes(setup.path + "/a0.state") == before)
        try setup.run("fl-secagg", ["share", "--session", "a.session", "--state", "a0.state", "--roster", "a.roster", "-o", "a0.shares"])
        let shared = try readBytes(setup.path + "/a0.state")
        let second = try Tool.run("fl-secagg", ["share", "--session", "a.session", "--state", "a0.state", "--roster", "a.roster", "-o", "y.shares"], in: setup.path)
        #expect(second.status == FailureClass.refused.rawValue && second.stderrLines.count == 1, "\(second.stderr)")
        #expect(try readBytes(setup.path + "/a0.state") == shared)
        #expect(!FileManager.default.fileExists(atPath: setup.path + "/y.shares"))
    }

    /// `source` rewritten to `target` with some metadata replaced, sealed afresh (as a writer
    /// of those values would seal it); its tensors (U8 and I64 in these files) copied.
    static func rewrite(_ source: String, to target: String, metadata changes: [String: String]) throws {
        let file = try SafeTensorsFile(path: source)
        var writer = SafeTensorsWriter(metadata: file.metadata.merging(changes) { $1 })
        for name in file.names {
            let info = try file.info(name)
            let raw = file.bytes(of: info)
            switch info.dtype {
            case .u8: writer.add(name, shape: info.shape, .u8(Array(raw)))
            case .i64:
                writer.add(
                    name, shape: info.shape,
                    .i64((0..<info.elementCount).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }))
            default: throw FedRecError(.shape, file: source, "tensor \(name) of a dtype this test does not copy")
            }
        }
        _ = try writer.write(to: target)
    }

    @Test("a roster of protocol version 1 (ChaCha20 masks) or of another mask PRG is refused (86), of a newer version (80)")
    func otherVersionsAndPRGs() throws {
        let setup = try Setup(users: 12, shards: 2)
        try setup.run("fl-secagg", ["session", "--round", "1", "-o", "session"])
        for k in 0..<2 {
            try setup.run("fl-secagg", ["keys"] + setup.session(["--party", String(k), "--state", "p\(k).state", "-o", "p\(k).keys"]))
        }
        try setup.run("fl-secagg", ["roster"] + setup.session(["-q", "-o", "roster", "p0.keys", "p1.keys"]))
        let roster = try SafeTensorsFile(path: setup.path + "/roster")
        #expect(roster.metadata["secagg_version"] == "2" && roster.metadata["secagg_mask_prg"] == "aes-256-ctr")
        let before = try readBytes(setup.path + "/p0.state")
        for (name, changes, code) in [
            ("v1.roster", ["secagg_version": "1"], FailureClass.mismatch.rawValue),
            ("chacha.roster", ["secagg_mask_prg": "chacha20"], FailureClass.mismatch.rawValue),
            ("v3.roster", ["secagg_version": "3"], FailureClass.newerVersion.rawValue),
        ] {
            try Self.rewrite(setup.path + "/roster", to: setup.path + "/" + name, metadata: changes)
            let r = try Tool.run("fl-secagg", ["share"] + setup.session(["--state", "p0.state", "--roster", name, "-o", "x.shares"]), in: setup.path)
            #expect(r.status == code && r.stderrLines.count == 1 && r.stderr.contains(name), "\(name): \(r.status) \(r.stderr)")
        }
        #expect(try readBytes(setup.path + "/p0.state") == before)
        #expect(!FileManager.default.fileExists(atPath: setup.path + "/x.shares"))
    }

    /// `session --test-seed`: the id is the seeded stream's (a pipeline's reruns repeat it, and
    /// with it every seeded party message); without the seed two sessions never share an id.
    @Test("session --test-seed N: the id of SecAggSession(using: SeededGenerator(N)), the same on each run; CSPRNG without it")
    func seededSession() throws {
        let dir = try TemporaryDirectory()
        func session(_ name: String, _ more: [String]) throws -> SecAggSession {
            let r = try Tool.run("fl-secagg", ["session", "--round", "4", "-o", name] + more, in: dir.path)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(more.isEmpty || r.stderr.contains("NOT private"))
            return try SecAggSession(path: dir.path + "/" + name)
        }
        var generator = SeededGenerator(seed: 17)
        let expected = SecAggSession(round: 4, using: &generator)
        let a = try session("a", ["--test-seed", "17"])
        _ = try session("b", ["--test-seed", "17"])
        #expect(a.sessionID == expected.sessionID && a.round == 4)
        #expect(try readBytes(dir.path + "/a") == readBytes(dir.path + "/b"))
        #expect(try session("c", ["--test-seed", "18"]).sessionID != a.sessionID)
        #expect(try session("d", []).sessionID != session("e", []).sessionID)
    }
}
