import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport
import FedRecFormats
import FedRecData
import FedRecModel
import FedRecTraining

/// Inputs that used to be destroyed or to mislead silently (issue 10, section 1).
@Suite("inputs are never destroyed, and never silently misread", .serialized)
struct InputSafetyTests {
    typealias Round = CommandLineTests.Round

    /// Runs `script` with bash, the built commands first on PATH.
    struct ShellResult {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func bash(_ script: String, in directory: String) throws -> ShellResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = Tool.directory.path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ShellResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                             stderr: String(decoding: stderr, as: UTF8.self))
    }

    @Test("an output that names an input (same path, another spelling, a hard link, a file of the dataset) is refused with exit 64")
    func outputIsInput() throws {
        let round = try Round()
        let p = round.path
        try FileManager.default.createDirectory(atPath: p + "/sub", withIntermediateDirectories: true)
        #expect(link(p + "/u0.safetensors", p + "/hard.safetensors") == 0)
        #expect(try Tool.run("fl-aggregate", ["u0.safetensors", "u1.safetensors", "-o", "sum.safetensors"], in: p).status == 0)
        #expect(try Tool.run("fl-dp-noise", ["account", "--sample-rate", "0.1", "--noise-multiplier", "1", "--rounds", "1", "--delta", "1e-5"], in: p).status == 0)
        let watched = ["u0.safetensors", "u1.safetensors", "s0.safetensors", "m0.safetensors", "ds/dataset.json", "ds/items.tsv",
                       "ds/shards/shard-00000.tar", "sum.safetensors"]
        let before = try watched.map { try readBytes(p + "/" + $0) }
        let cases: [(tool: String, args: [String], file: String)] = [
            ("fl-aggregate", ["u0.safetensors", "-o", "u0.safetensors"], "u0.safetensors"),
            ("fl-aggregate", ["u0.safetensors", "u1.safetensors", "-o", "sub/../u1.safetensors"], "sub/../u1.safetensors"),
            ("fl-aggregate", ["hard.safetensors", "-o", "u0.safetensors"], "u0.safetensors"),
            ("fl-aggregate", ["u0.safetensors", "--model", "m0.safetensors", "-o", "m0.safetensors"], "m0.safetensors"),
            ("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00000.tar", "--state", "s0.safetensors", "-o", "s0.safetensors"], "s0.safetensors"),
            ("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00000.tar", "--reconstruct", "-o", "ds/shards/shard-00000.tar"], "ds/shards/shard-00000.tar"),
            ("fl-init", ["--dataset", "ds", "-o", "ds/dataset.json"], "ds/dataset.json"),
            ("fl-init", ["--dataset", "ds", "-o", "ds/items.tsv"], "ds/items.tsv"),
            ("fl-compact", ["m0.safetensors", "-o", "./m0.safetensors"], "./m0.safetensors"),
            ("fl-eval", ["--model", "m0.safetensors", "--dataset", "ds", "--reconstruct", "--metrics-log", "m0.safetensors"], "m0.safetensors"),
            ("fl-dp-noise", ["sum.safetensors", "-o", "sum.safetensors", "--ledger", "l.jsonl", "--noise-multiplier", "1"], "sum.safetensors"),
            ("fl-dp-noise", ["sum.safetensors", "-o", "n.safetensors", "--ledger", "sum.safetensors", "--noise-multiplier", "1"], "sum.safetensors"),
        ]
        for c in cases {
            let r = try Tool.run(c.tool, c.args, in: p)
            #expect(r.status == 64, "\(c.tool) \(c.args): exit \(r.status), \(r.stderr)")
            #expect(r.stderrLines.count == 1 && r.stderr.hasPrefix("\(c.tool): \(c.file): "), "\(r.stderr)")
        }
        #expect(try watched.map { try readBytes(p + "/" + $0) } == before)
        #expect(!fileExists(p + "/l.jsonl") && !fileExists(p + "/n.safetensors"))

        // A state file rewritten over itself is what --state means, and a new file in a
        // dataset directory destroys nothing.
        #expect(try Tool.run("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00000.tar", "--state", "s0.safetensors",
                                                "-o", "again.safetensors"], in: p).status == 0)
        #expect(try Tool.run("fl-init", ["--dataset", "ds", "-o", "ds/model.safetensors"], in: p).status == 0)
    }

    @Test("fl-partition --force refuses to replace a directory that holds one of its inputs")
    func partitionKeepsInputs() throws {
        let dir = try TemporaryDirectory()
        let p = dir.path
        #expect(try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--split", "ratio"], in: p).status == 0)
        try FileManager.default.copyItem(atPath: sampleRatings, toPath: p + "/ds/ratings.csv")
        let original = try readBytes(p + "/ds/ratings.csv")
        let r = try Tool.run("fl-partition", ["ds/ratings.csv", "-o", "ds", "--split", "ratio", "--force"], in: p)
        #expect(r.status == 64 && r.stderrLines.count == 1 && r.stderr.contains("holds the input"), "\(r.stderr)")
        #expect(try readBytes(p + "/ds/ratings.csv") == original)
        #expect(fileExists(p + "/ds/dataset.json"))
        // A key file inside the output is an input too.
        try writeAtomically(Array(repeating: UInt8(7), count: 32), to: p + "/ds/key.bin")
        let k = try Tool.run("fl-partition", [sampleRatings, "-o", "./ds/", "--split", "ratio", "--force", "--pseudonymize-key", "ds/key.bin"], in: p)
        #expect(k.status == 64 && fileExists(p + "/ds/key.bin"), "\(k.stderr)")
    }

    @Test("FileRoles: distinct files pass; an in-place file may be itself but nothing else")
    func fileRoles() throws {
        let dir = try TemporaryDirectory()
        let p = dir.path
        try writeAtomically("a", to: p + "/a")
        try writeAtomically("b", to: p + "/b")
        try FileRoles(inputs: [p + "/a", "-"], outputs: [p + "/new", "-"], updatedInPlace: [p + "/b"]).check()
        #expect(throws: FedRecError.self) { try FileRoles(inputs: [p + "/a"], outputs: [p + "/new", p + "/new"]).check() }
        #expect(throws: FedRecError.self) { try FileRoles(inputs: [p + "/a"], outputs: [], updatedInPlace: [p + "/a"]).check() }
        #expect(throws: FedRecError.self) { try FileRoles(inputs: [p + "/a"], outputs: [], directoryOutputs: [p]).check() }
        #expect(symlink(p + "/a", p + "/link") == 0)
        #expect(throws: FedRecError.self) { try FileRoles(inputs: [p + "/link"], outputs: [p + "/a"]).check() }
    }

    @Test("fl-eval and fl-recommend rebuild users with the settings the model records, and warn when a flag differs")
    func recordedUserSettings() throws {
        let round = try Round()
        let p = round.path
        let training = ["--reconstruct", "--algorithm", "als", "--l2", "0.5", "--l2-bias", "2"]
        for s in 0..<2 {
            let r = try Tool.run("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-0000\(s).tar", "-o", "a\(s).safetensors"] + training, in: p)
            #expect(r.status == 0, "\(r.stderr)")
        }
        let aggregate = try Tool.run("fl-aggregate", ["a0.safetensors", "a1.safetensors", "--model", "m0.safetensors", "--l2", "0.5", "-o", "m1.safetensors"], in: p)
        #expect(aggregate.status == 0 && aggregate.stderr.isEmpty, "\(aggregate.stderr)")
        func rmse(_ args: [String]) throws -> (Double?, String) {
            let r = try Tool.run("fl-eval", ["--model", "m1.safetensors", "--dataset", "ds", "--json"] + args, in: p)
            #expect(r.status == 0, "\(r.stderr)")
            return ((try? JSONValue.parse(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))?["rmse"]?.doubleValue, r.stderr)
        }
        let (repeated, quietRepeated) = try rmse(training)
        let (recorded, quietRecorded) = try rmse([])
        let (other, warning) = try rmse(["--reconstruct", "--l2", "0.02"])
        #expect(repeated != nil && recorded == repeated)
        #expect(quietRepeated.isEmpty && quietRecorded.isEmpty)
        #expect(other != nil && other != repeated)
        #expect(warning.split(separator: "\n").count == 1 && warning.contains("--l2 0.5") && warning.contains("--l2 0.02"), "\(warning)")

        // The item step with λ = 0: items with fewer ratings than unknowns have no unique
        // solution, which is an error rather than a row silently left as it was.
        let singular = try Tool.run("fl-aggregate", ["a0.safetensors", "a1.safetensors", "--model", "m0.safetensors", "--l2", "0", "-o", "m0b.safetensors"], in: p)
        #expect(singular.status == 64 && singular.stderr.contains("no unique solution") && !fileExists(p + "/m0b.safetensors"), "\(singular.stderr)")

        let recommend = try Tool.run("fl-recommend", ["--model", "m1.safetensors", "--dataset", "ds", "--user", "1", "-k", "5"], in: p)
        let repeatedRecommend = try Tool.run("fl-recommend", ["--model", "m1.safetensors", "--dataset", "ds", "--user", "1", "-k", "5"] + training, in: p)
        #expect(recommend.status == 0 && recommend.stdout == repeatedRecommend.stdout && recommend.stderr.isEmpty, "\(recommend.stderr)")
        let inspect = try Tool.run("fl-inspect", ["m1.safetensors", "--json"], in: p)
        #expect(inspect.stdout.contains("client_settings"))
    }

    @Test("client_settings round-trips, fills what was not given, and names what differs")
    func userSideSettings() throws {
        var trained = TrainingOptions()
        trained.alpha = 5
        trained.l2 = 5
        trained.userParameters = .reconstruct
        trained.reconstructionEpochs = 7
        let record = try UserSideSettings(metadata: UserSideSettings(trained).metadataValue, file: "m")
        let (filled, none) = try record.resolve(TrainingOptions(), explicit: [], file: "m")
        #expect(filled.alpha == 5 && filled.l2 == 5 && filled.l2Bias == nil && filled.userParameters == .reconstruct && filled.reconstructionEpochs == 7)
        #expect(none.isEmpty)
        var given = TrainingOptions()
        given.alpha = 10
        let (mixed, differences) = try record.resolve(given, explicit: [.alpha, .userParameters], file: "m")
        #expect(mixed.alpha == 10 && mixed.l2 == 5 && mixed.userParameters == .state)
        #expect(differences == [UserSideSettings.Difference(field: .alpha, recorded: "5.0", given: "10.0")])
        #expect(throws: FedRecError.self) { _ = try UserSideSettings(metadata: "{\"l2\":\"-1\"}", file: "m") }
        #expect(throws: FedRecError.self) { _ = try UserSideSettings(metadata: "[1]", file: "m") }
    }

    @Test("a user solve without a unique solution (λ = 0, fewer items than unknowns) is an error, not a made-up user")
    func singularSolve() throws {
        let data = try SyntheticDataset(users: 20, items: 30, perUser: 8)
        let view = try ModelView(path: try data.initialModel(.mse, dim: 4))
        let train = Interactions(items: [1, 5], ratings: [4, 2], times: [0, 0])
        #expect(throws: FedRecError.self) { _ = try UserSolver(model: view, l2: 0, alpha: 1).solve(train) }
        let solved = try UserSolver(model: view, l2: 0.1, alpha: 1).solve(train)
        #expect(solved.embedding.allSatisfy(\.isFinite) && solved.bias.isFinite)
    }

    @Test("a FIFO or process substitution is read whole, as the same file would be")
    func pipesAsInput() throws {
        let dir = try TemporaryDirectory()
        let p = dir.path
        let plain = try Tool.run("fl-partition", [sampleRatings, "-o", "plain", "--split", "ratio", "--no-items", "--json"], in: p)
        #expect(plain.status == 0)
        let piped = try Self.bash("fl-partition <(cat '\(sampleRatings)') -o piped --split ratio --no-items --json", in: p)
        #expect(piped.status == 0, "\(piped.stderr)")
        func counts(_ text: String) throws -> [Int?] {
            let json = try JSONValue.parse(text.trimmingCharacters(in: .whitespacesAndNewlines))
            return ["users", "items", "train", "test"].map { json[$0]?.intValue }
        }
        #expect(try counts(piped.stdout) == counts(plain.stdout))
        #expect(mkfifo(p + "/fifo", 0o600) == 0)
        let fifo = try Self.bash("cat '\(sampleRatings)' > fifo & fl-partition fifo -o fifo-ds --split ratio --no-items --json; s=$?; wait; exit $s", in: p)
        #expect(fifo.status == 0, "\(fifo.stderr)")
        #expect(try counts(fifo.stdout) == counts(plain.stdout))
    }

    @Test("a write error on stdout (> /dev/full) exits non-zero with one line")
    func fullStdout() throws {
        let round = try Round()
        for command in ["fl-inspect m0.safetensors", "fl-eval --model m0.safetensors --dataset ds --reconstruct",
                        "fl-recommend --model m0.safetensors --dataset ds --reconstruct --user 1", "fl-compact m0.safetensors -o -"] {
            let r = try Self.bash("\(command) > /dev/full", in: round.path)
            #expect(r.status == 74, "\(command): exit \(r.status)")
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("-: "), "\(command): \(r.stderr)")
        }
    }

    @Test("a rating outside the declared scale is refused with its line; the dataset records the declared scale")
    func ratingScale() throws {
        let dir = try TemporaryDirectory()
        let p = dir.path
        try writeAtomically("user,item,rating\n1,1,4\n1,2,5\n2,1,64\n2,2,3\n", to: p + "/r.csv")
        let refused = try Tool.run("fl-partition", ["r.csv", "-o", "ds", "--split", "ratio", "--rating-min", "1", "--rating-max", "5"], in: p)
        #expect(refused.status == 65 && refused.stderr.contains("r.csv: line 4: rating 64"), "\(refused.stderr)")
        #expect(!fileExists(p + "/ds"))
        try writeAtomically("user,item,rating\n1,1,4\n1,2,5\n2,1,2\n2,2,3\n3,1,4\n3,3,2\n", to: p + "/ok.csv")
        let ok = try Tool.run("fl-partition", ["ok.csv", "-o", "ds", "--split", "ratio", "--test-ratio", "0.5", "--rating-min", "0.5", "--rating-max", "5"], in: p)
        #expect(ok.status == 0, "\(ok.stderr)")
        let manifest = try DatasetManifest.load(p + "/ds")
        #expect(manifest.ratingMin == 0.5 && manifest.ratingMax == 5)
    }

    @Test("Poisson sampling without a key draws a secret one; a known seed is a test seed and says so")
    func secretSampling() throws {
        let round = try Round()
        let p = round.path
        func train(_ out: String, _ extra: [String]) throws -> (bytes: [UInt8], key: String?, stderr: String) {
            let r = try Tool.run("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00000.tar", "--reconstruct",
                                                    "--weighting", "uniform", "--clip", "0.5", "--sample-rate", "0.5", "-o", out] + extra, in: p)
            #expect(r.status == 0, "\(r.stderr)")
            let file = try FedRecFile(path: p + "/" + out, kinds: [.update])
            return (try readBytes(p + "/" + out), file.metadata["sampling_key"], r.stderr)
        }
        let a = try train("a.safetensors", []), b = try train("b.safetensors", [])
        #expect(a.key == "fresh" && b.key == "fresh")
        // 200 clients at q = 0.5: two fresh keys draw the same sample with probability 2^-200.
        #expect(a.bytes != b.bytes)
        let t1 = try train("t1.safetensors", ["--test-sample-seed", "3"]), t2 = try train("t2.safetensors", ["--test-sample-seed", "3"])
        #expect(t1.key == "test" && t1.bytes == t2.bytes && t1.stderr.contains("public"))
        try writeAtomically("12345678901234567890\n", to: p + "/key")
        let k1 = try train("k1.safetensors", ["--sample-key-file", "key"]), k2 = try train("k2.safetensors", ["--sample-key-file", "key"])
        #expect(k1.key == "secret" && k1.bytes == k2.bytes && k1.stderr.isEmpty)
    }
}
