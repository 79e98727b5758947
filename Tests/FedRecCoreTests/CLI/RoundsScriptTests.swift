import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport

/// The repository's root, `pipelines/fl-rounds` and its Makefile.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path
let roundsScript = repositoryRoot + "/pipelines/fl-rounds"

/// Where a program is on PATH, if it is.
func pathOf(_ program: String) -> String? {
    (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/\(program)" }.first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
}

/// Whether a program is on PATH.
func onPath(_ program: String) -> Bool { pathOf(program) != nil }

/// A tiny ratings file (40 users, 30 items, 12 ratings each) for pipeline tests.
func tinyRatings(in directory: String) throws -> String {
    let path = directory + "/ratings.csv"
    try SyntheticDataset.csv(users: 40, items: 30, perUser: 12).write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite("pipelines/fl-rounds and its Makefile", .enabled(if: onPath("flock") && onPath("bash"), "needs bash and flock (util-linux)"))
struct RoundsScriptTests {
    static let base = ["--dim", "4", "--partition", "--split ratio --test-ratio 0.2 --shards 2", "--train", "--algorithm sgd --epochs 1"]

    @Test("the bytes a round uploads are counted past 2^31 (rounds.jsonl's upload_bytes)")
    func bytesPastTwoGiB() throws {
        let dir = try TemporaryDirectory()
        // Two sparse files of 3 × 10^9 bytes each: 6 × 10^9, past what mawk's %d prints.
        let big = dir.path + "/big"
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: big))
        try handle.truncate(atOffset: 3_000_000_000)
        try handle.close()
        let script = "source <(sed -n '/^file_bytes() {/,/^}/p' \"$1\"); file_bytes \"$2\" \"$2\" \"$2.absent\""
        let r = try Tool.run("/bin/bash", ["-c", script, "bash", roundsScript, big])
        #expect(r.status == 0 && r.stdout == "6000000000\n", "\(r.stdout) \(r.stderr)")
    }

    @Test("paths with spaces in --data, --run and --bin; the table puts round first; the run records its configuration")
    func spaces() throws {
        let dir = try TemporaryDirectory()
        let data = dir.path + "/my data", bin = dir.path + "/my bin", run = dir.path + "/my runs/run one"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let ratings = try tinyRatings(in: data)
        for tool in ["fl-partition", "fl-init", "fl-train-local", "fl-aggregate", "fl-eval", "fl-inspect", "fl-dp-noise", "fl-report"] {
            try FileManager.default.createSymbolicLink(atPath: bin + "/" + tool, withDestinationPath: CommandRunner.directory.path + "/" + tool)
        }
        let r = try Tool.run(roundsScript, ["--bin", bin, "--data", ratings, "--run", run, "--rounds", "2"] + Self.base,
                             environment: ["PATH": "/usr/bin:/bin"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdoutLines
        #expect(lines.count == 3 && lines[0] == "round\tmae\tobjective\tratings\trmse\tseconds", "\(lines)")
        #expect(lines.dropFirst().map { $0.split(separator: "\t").first } == ["1", "2"])
        #expect(FileManager.default.fileExists(atPath: run + "/model-0002.safetensors"))
        let config = try String(contentsOfFile: run + "/config", encoding: .utf8)
        #expect(config.contains("--data=\(ratings)\n") && config.contains("--dim=4\n") && config.contains("--train=--algorithm sgd --epochs 1\n"))
        // The metrics log, read back through fl-inspect as fl-rounds reads it.
        let rounds = try Tool.run("fl-inspect", [run + "/metrics.jsonl", "--field", "lines[].round"])
        #expect(rounds.stdout == "1\n2\n")
    }

    @Test("a second run of the same directory exits at once with one line (75) and touches nothing")
    func lock() throws {
        let dir = try TemporaryDirectory()
        let ratings = try tinyRatings(in: dir.path)
        let run = dir.path + "/run"
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        let fd = open(run, O_RDONLY)
        #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        let r = try Tool.run(roundsScript, ["--bin", CommandRunner.directory.path, "--data", ratings, "--run", run, "--rounds", "1"] + Self.base)
        close(fd)
        #expect(r.status == 75 && r.stderrLines.count == 1 && r.stderr.contains("another fl-rounds is running"), "\(r.status) \(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: run).isEmpty)
        // With the lock free, the same command runs.
        let again = try Tool.run(roundsScript, ["--bin", CommandRunner.directory.path, "--data", ratings, "--run", run, "--rounds", "1"] + Self.base)
        #expect(again.status == 0, "\(again.stderr)")
    }

    @Test("a resume with another setting is refused naming it; --rounds may change; --force-config continues and records the new one")
    func configuration() throws {
        let dir = try TemporaryDirectory()
        let ratings = try tinyRatings(in: dir.path)
        let run = dir.path + "/run"
        let common = ["--bin", CommandRunner.directory.path, "--data", ratings, "--run", run]
        #expect(try Tool.run(roundsScript, common + ["--rounds", "1"] + Self.base).status == 0)
        let model = try readBytes(run + "/model-0001.safetensors")
        let implicit = ["--dim", "4", "--partition", "--split ratio --test-ratio 0.2 --shards 2", "--train", "--algorithm sgd --epochs 1 --l2 0.5"]
        let refused = try Tool.run(roundsScript, common + ["--rounds", "2"] + implicit)
        #expect(refused.status == 64 && refused.stderrLines.count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("--train was '--algorithm sgd --epochs 1' when the run started, now '--algorithm sgd --epochs 1 --l2 0.5'"))
        #expect(!FileManager.default.fileExists(atPath: run + "/model-0002.safetensors"))
        #expect(try readBytes(run + "/model-0001.safetensors") == model)
        let objective = try Tool.run(roundsScript, common + ["--rounds", "2", "--objective", "bpr"] + Self.base)
        #expect(objective.status == 64 && objective.stderr.contains("--objective was 'mse'"))

        let resumed = try Tool.run(roundsScript, common + ["--rounds", "2"] + Self.base)
        #expect(resumed.status == 0 && resumed.stderr.contains("resuming after round 1"), "\(resumed.stderr)")
        let forced = try Tool.run(roundsScript, common + ["--rounds", "3", "--force-config"] + implicit)
        #expect(forced.status == 0 && forced.stderr.contains("--force-config"), "\(forced.stderr)")
        #expect(try String(contentsOfFile: run + "/config", encoding: .utf8).contains("--train=--algorithm sgd --epochs 1 --l2 0.5\n"))
        #expect(try Tool.run(roundsScript, common + ["--rounds", "3"] + implicit).status == 0)
    }

    @Test("a progress line on a terminal's stderr (round, step, shards and clients done, ETA from the second round); none otherwise",
          .enabled(if: onPath("script"), "needs script (util-linux) for a terminal"))
    func progress() throws {
        let dir = try TemporaryDirectory()
        let ratings = try tinyRatings(in: dir.path)
        let arguments = ["--bin", CommandRunner.directory.path, "--data", ratings, "--rounds", "2"] + Self.base
        let quoted = ([roundsScript, "--run", dir.path + "/tty"] + arguments).map { "'" + $0 + "'" }.joined(separator: " ")
        let tty = try Tool.run(try #require(pathOf("script")), ["-qec", quoted, "/dev/null"])
        #expect(tty.status == 0, "\(tty.stdout)")
        #expect(tty.stdout.contains("\r\u{1B}[Kfl-rounds: round 1/2: training: 2/2 shards, 40/40 clients"), "\(tty.stdout)")
        #expect(tty.stdout.contains("fl-rounds: round 2/2: training: 0/2 shards, 0/40 clients, ETA "))
        let plain = try Tool.run(roundsScript, ["--run", dir.path + "/pipe"] + arguments)
        #expect(plain.status == 0 && !plain.stderr.contains("\r") && !plain.stderr.contains("shards,"))
    }

    @Test("--sample-rate without --dp trains a Poisson sample of the clients each round; a resume without it is refused")
    func sampling() throws {
        let dir = try TemporaryDirectory()
        let ratings = try tinyRatings(in: dir.path)
        let run = dir.path + "/run"
        let common = ["--bin", CommandRunner.directory.path, "--data", ratings, "--run", run] + Self.base
        let r = try Tool.run(roundsScript, common + ["--rounds", "4", "--sample-rate", "0.5"])
        #expect(r.status == 0, "\(r.stderr)")
        let clients = try JSONLines.read(path: run + "/rounds.jsonl").compactMap { $0["clients"]?.intValue }
        // 40 users at q = 0.5: four rounds of exactly 40, or all the same, would be no sampling.
        #expect(clients.count == 4 && clients.allSatisfy { $0 > 0 && $0 < 40 } && Set(clients).count > 1, "\(clients)")
        let seed = try FileManager.default.attributesOfItem(atPath: run + "/sample-seed")
        #expect((seed[.posixPermissions] as? Int) == 0o600)
        let refused = try Tool.run(roundsScript, common + ["--rounds", "5"])
        #expect(refused.status == 64 && refused.stderrLines == ["fl-rounds: \(run)/config: the run started with --sample-rate=0.5, not given now; use another --run, or --force-config to continue without it"], "\(refused.stderr)")
        let bad = try Tool.run(roundsScript, common + ["--rounds", "5", "--sample-rate", "2"])
        #expect(bad.status == 64 && bad.stderr.contains("--sample-rate takes a rate in (0, 1]"))
    }

    /// The synthetic ad log partitioned into DIR/ds (2 shards, a time split).
    func partitionAds(in directory: String) throws {
        let ads = repositoryRoot + "/sample-data/ads"
        let p = try Tool.run("fl-partition", [ads + "/impressions.csv", "--rating-col", "clicked", "--item-col", "adId", "--no-items",
                                              "--item-features", ads + "/ads.csv", "--user-features", ads + "/users.csv",
                                              "--split", "time", "--test-ratio", "0.2", "--shards", "2", "-o", "ds"], in: directory)
        #expect(p.status == 0, "\(p.stderr)")
    }

    @Test("--seed seeds the clients' training: without a --seed in --train the run trains as with fl-train-local --seed S, and not as with seed 0")
    func seedReachesTraining() throws {
        let dir = try TemporaryDirectory()
        try partitionAds(in: dir.path)
        func run(_ name: String, train: String) throws -> [UInt8] {
            let r = try Tool.run(roundsScript, ["--bin", CommandRunner.directory.path, "--data", dir.path + "/ds", "--run", dir.path + "/" + name, "--rounds", "1", "--seed", "1",
                                                "--objective", "bce", "--dim", "1", "--init", "--model lr --hash-bits 12 --click-threshold 1",
                                                "--train", train])
            #expect(r.status == 0, "\(r.stderr)")
            return try readBytes(dir.path + "/" + name + "/model-0001.safetensors")
        }
        let implied = try run("implied", train: "--lr 0.1")
        #expect(try run("given", train: "--lr 0.1 --seed 1") == implied)
        #expect(try run("zero", train: "--lr 0.1 --seed 0") != implied)
    }

    @Test("--calibration-rounds: rounds after the training ones move the CTR model's intercept alone (the ranking stays) and bring the training calibration to 1; refused for other models")
    func calibrationRounds() throws {
        let dir = try TemporaryDirectory()
        try partitionAds(in: dir.path)
        let common = ["--bin", CommandRunner.directory.path, "--data", dir.path + "/ds", "--run", dir.path + "/run", "--objective", "bce", "--dim", "4",
                      "--init", "--model fm --hash-bits 12 --click-threshold 1", "--train", "--lr 0.2 --epochs 5 --l2 0.001",
                      "--server", "--server-optimizer fedadam --server-lr 0.05", "--calibration-rounds", "4"]
        let r = try Tool.run(roundsScript, common + ["--rounds", "3"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = try String(contentsOfFile: dir.path + "/run/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { try JSONValue.parse(String($0)) }
        #expect(lines.count == 7)
        // Rounds 4 to 7 calibrate: the AUC of round 3's model stays, the calibration meets 1.
        let aucs = Set(lines.dropFirst(2).compactMap { $0["auc"]?.doubleValue })
        #expect(aucs.count == 1, "\(aucs)")
        let calibration = try #require(lines.last?["train_calibration"]?.doubleValue)
        #expect(abs(calibration - 1) < 0.01, "\(lines.map { $0["train_calibration"]?.doubleValue ?? -1 })")
        #expect(try String(contentsOfFile: dir.path + "/run/config", encoding: .utf8).contains("--calibration-rounds=4"))
        let mf = try Tool.run(roundsScript, ["--bin", CommandRunner.directory.path, "--data", dir.path + "/ds", "--run", dir.path + "/mf",
                                             "--rounds", "2", "--calibration-rounds", "1"])
        #expect(mf.status == 64 && mf.stderr.contains("CTR models"), "\(mf.stderr)")
    }

    @Test("make -C pipelines rounds does not build when the commands exist, quotes DATA and RUN, and with BUILD=0 never builds",
          .enabled(if: onPath("make"), "needs make"))
    func makefile() throws {
        let dir = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.path + "/d a t a", withIntermediateDirectories: true)
        let ratings = try tinyRatings(in: dir.path + "/d a t a")
        let run = dir.path + "/r u n"
        // SWIFT=false: any attempt to build fails the recipe.
        let made = try Tool.run("/usr/bin/env", ["make", "-s", "-C", repositoryRoot + "/pipelines", "rounds", "SWIFT=false", "BIN=\(CommandRunner.directory.path)",
                                                 "DATA=\(ratings)", "RUN=\(run)", "ROUNDS=1", "DIM=4", "PARTITION_ARGS=--shards 2"])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(FileManager.default.fileExists(atPath: run + "/model-0001.safetensors"))
        #expect(made.stdoutLines.first?.hasPrefix("round\t") == true)
        let never = try Tool.run("/usr/bin/env", ["make", "-s", "-C", repositoryRoot + "/pipelines", "rounds", "SWIFT=false", "BUILD=0",
                                                  "BIN=\(dir.path)/missing", "DATA=\(ratings)", "RUN=\(run)"])
        #expect(never.status != 0 && never.stderr.contains("BUILD=0: build them with 'make release'"), "\(never.stderr)")
        #expect(!never.stderr.contains("swift") && !never.stderr.contains("apt-get"))
    }

    @Test("fl-inspect --field prints one field a line; JSON lines files are read; a missing field or a bad line is an error naming the file")
    func inspectField() throws {
        let dir = try TemporaryDirectory()
        let p = try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "3"], in: dir.path)
        #expect(p.status == 0)
        let shards = try Tool.run("fl-inspect", ["ds", "--field", "shards[].file"], in: dir.path)
        #expect(shards.stdout == "shards/shard-00000.tar\nshards/shard-00001.tar\nshards/shard-00002.tar\n" && shards.status == 0)
        #expect(try Tool.run("fl-inspect", ["ds", "--field", "users"], in: dir.path).stdout == "400\n")
        try "{\"round\":1,\"rmse\":0.5}\n{\"round\":2,\"rmse\":0.25,\"note\":\"a b\"}\n".write(toFile: dir.path + "/m.jsonl", atomically: true, encoding: .utf8)
        #expect(try Tool.run("fl-inspect", ["m.jsonl", "--field", "lines[].rmse"], in: dir.path).stdout == "0.5\n0.25\n")
        try "".write(toFile: dir.path + "/empty.jsonl", atomically: true, encoding: .utf8)
        let empty = try Tool.run("fl-inspect", ["empty.jsonl", "--field", "lines[].round"], in: dir.path)
        #expect(empty.status == 0 && empty.stdout.isEmpty)
        let missing = try Tool.run("fl-inspect", ["m.jsonl", "--field", "lines[].note"], in: dir.path)
        #expect(missing.status == 65 && missing.stderrLines == ["fl-inspect: m.jsonl: has no field note (in --field lines[].note)"], "\(missing.stderr)")
        let notList = try Tool.run("fl-inspect", ["ds", "--field", "users[]"], in: dir.path)
        #expect(notList.status == 65 && notList.stderr.contains("not a list"))
        #expect(try Tool.run("fl-inspect", ["ds", "--field", "a..b"], in: dir.path).status == 64)
        try "{\"round\":1}\n{\"round\":".write(toFile: dir.path + "/cut.jsonl", atomically: true, encoding: .utf8)
        let cut = try Tool.run("fl-inspect", ["cut.jsonl"], in: dir.path)
        #expect(cut.status == 84 && cut.stderr.contains("cut.jsonl: line 2"), "\(cut.stderr)")
    }

    @Test("the metrics table: round first, then the keys sorted; aligned columns for a terminal, TSV otherwise")
    func table() throws {
        let object: JSONValue = ["rmse": 0.912345678, "round": 12, "objective": "mse", "mae": 0.7]
        #expect(object.table(aligned: false) == "round\tmae\tobjective\trmse\n12\t0.7\tmse\t0.912346")
        #expect(object.table(aligned: true) == "round  mae  objective  rmse\n12     0.7  mse        0.912346")
    }

    /// The last metrics line of a run, as fl-inspect reads it.
    static func lastRMSE(_ run: String) throws -> Double? {
        let r = try Tool.run("fl-inspect", [run + "/metrics.jsonl", "--field", "lines[].rmse"])
        return r.stdoutLines.last.flatMap(Double.init)
    }

    @Test("--secagg-silo gives the plain run's RMSE within quantisation; --secagg with simulated dropouts completes; nothing of the protocol is left")
    func secureRounds() throws {
        let dir = try TemporaryDirectory()
        let ratings = try tinyRatings(in: dir.path)
        let als = ["--dim", "4", "--partition", "--split ratio --test-ratio 0.2 --shards 3",
                   "--train", "--algorithm als --l2 0.1 --reconstruct", "--server", "--l2 0.1"]
        let common = ["--bin", CommandRunner.directory.path, "--data", ratings, "--rounds", "2"] + als
        let plain = try Tool.run(roundsScript, common + ["--run", dir.path + "/plain"])
        #expect(plain.status == 0, "\(plain.stderr)")
        let silo = try Tool.run(roundsScript, common + ["--run", dir.path + "/silo", "--secagg-silo", "--secagg-clip-tensors", "dense.als_global=65536"])
        #expect(silo.status == 0, "\(silo.stderr)")
        let a = try #require(try Self.lastRMSE(dir.path + "/plain")), b = try #require(try Self.lastRMSE(dir.path + "/silo"))
        #expect(abs(a - b) < 1e-4, "plain \(a), secure \(b)")
        let device = try Tool.run(roundsScript, common + ["--run", dir.path + "/device", "--secagg", "--secagg-dropout", "0.3",
                                                          "--drop-rate", "0.05", "--drop-seed", "4", "--secagg-clip-tensors", "dense.als_global=4096"])
        #expect(device.status == 0, "\(device.stderr)")
        let c = try #require(try Self.lastRMSE(dir.path + "/device"))
        #expect(abs(a - c) < 0.1, "plain \(a), cross-device with dropouts \(c)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/device").filter { $0.hasPrefix("secagg-") || $0.hasPrefix("updates-") }
        #expect(left.isEmpty, "\(left)")
    }

    @Test("a secure round one --step at a time (session ... unmask, as pipelines/slurm runs it) makes fl-rounds' model bit for bit: after a session lost (88) for too few reveals, and with one shard not revealing")
    func secureSteps() throws {
        let dir = try TemporaryDirectory()
        let ratings = try tinyRatings(in: dir.path)
        // Four silo parties at 30 % dropouts: k = 3, t = 2, so one reveal may be missing.
        let common = ["--bin", CommandRunner.directory.path, "--data", ratings, "--rounds", "1", "--dim", "4",
                      "--partition", "--split ratio --test-ratio 0.2 --shards 4", "--train", "--algorithm als --l2 0.1 --reconstruct",
                      "--server", "--l2 0.1", "--secagg-silo", "--secagg-dropout", "0.3", "--secagg-clip-tensors", "dense.als_global=65536",
                      "--test-secagg-seed", "3"]
        let reference = try Tool.run(roundsScript, common + ["--run", dir.path + "/ref"])
        #expect(reference.status == 0, "\(reference.stderr)")
        let run = common + ["--run", dir.path + "/steps"]
        func step(_ name: String, _ more: [String] = []) throws -> Int32 {
            let r = try Tool.run(roundsScript, run + ["--step", name] + more)
            #expect(r.status == 0 || name == "unmask", "\(name) \(more): \(r.stderr)")
            return r.status
        }
        #expect(try Tool.run(roundsScript, run + ["--step", "plan"]).stdout == "round 1 shards 4\n")
        // Session 1: only shard 0 reveals, too few to unmask; session 2: all but shard 2.
        for (attempt, revealing) in [(0, [0]), (1, [0, 1, 3])] {
            _ = try step("session", ["--round", "1", "--attempt", String(attempt)])
            for name in ["keys", "roster", "share", "relay", "mask", "masked-sum", "request"] {
                if ["keys", "share", "mask"].contains(name) {
                    for shard in 0..<4 { _ = try step(name, ["--round", "1", "--shard", String(shard)]) }
                } else {
                    _ = try step(name, ["--round", "1"])
                }
            }
            for shard in revealing { _ = try step("reveal", ["--round", "1", "--shard", String(shard)]) }
            #expect(try step("unmask", ["--round", "1"]) == (attempt == 0 ? 88 : 0))
        }
        _ = try step("aggregate", ["--round", "1"])
        _ = try step("eval", ["--round", "1"])
        for file in ["model-0001.safetensors", "metrics.jsonl"] {
            #expect(try readBytes(dir.path + "/ref/" + file) == readBytes(dir.path + "/steps/" + file), "\(file)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/steps/secagg-0000"))
        // A party step before its session (66), --attempt on another step (64), a secure
        // step of a run without --secagg (64).
        let fresh = common + ["--run", dir.path + "/fresh"]
        #expect(try Tool.run(roundsScript, fresh + ["--step", "plan"]).status == 0)
        let early = try Tool.run(roundsScript, fresh + ["--step", "keys", "--round", "1", "--shard", "0"])
        #expect(early.status == 66 && early.stderr.contains("--step session"), "\(early.stderr)")
        let attempt = try Tool.run(roundsScript, fresh + ["--step", "roster", "--round", "1", "--attempt", "1"])
        #expect(attempt.status == 64, "\(attempt.stderr)")
        let plain = ["--bin", CommandRunner.directory.path, "--data", ratings, "--run", dir.path + "/plain"] + Self.base
        #expect(try Tool.run(roundsScript, plain + ["--step", "plan"]).status == 0)
        let insecure = try Tool.run(roundsScript, plain + ["--step", "roster", "--round", "1"])
        #expect(insecure.status == 64 && insecure.stderr.contains("--secagg"), "\(insecure.stderr)")
    }
}
