import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport
import FedRecPrivacy

/// fl-rounds SIGKILLed (with its whole process group, as a crash would) at seeded random
/// steps and resumed each time. `FL_ROUNDS_TEST_KILL_AT=K` makes the run kill itself at its
/// K-th step: steps come in pairs around every command (partition, init, training, the
/// sum, the noise, applying it, evaluation with its metrics line), "in" stopping the command
/// just before its first output appears (its temporary file written), "after" once it
/// returned. The outcome must be the uninterrupted run's, bit for bit.
@Suite("fl-rounds killed at random points resumes to the uninterrupted result", .serialized,
       .enabled(if: onPath("flock") && onPath("bash"), "needs bash and flock (util-linux)"))
struct CrashConsistencyTests {
    /// A run directory's results: models, metrics, ledger and clips, by name.
    static func results(_ run: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: run)
        where name.hasPrefix("model-") || name.hasPrefix("clip-") || ["metrics.jsonl", "ledger.jsonl"].contains(name) {
            out[name] = try readBytes(run + "/" + name)
        }
        return out
    }

    /// What a finished run must not hold: temporaries of our pattern, round leftovers.
    static func leftovers(_ run: String) -> [String] {
        let all = FileManager.default.enumerator(atPath: run)?.compactMap { $0 as? String } ?? []
        return all.filter { path in
            let name = String(path.split(separator: "/").last ?? "")
            return TemporaryFiles.parse(name) != nil || name.hasPrefix("updates-") || name.hasPrefix("noised-")
        }
    }

    /// A run directory with a fixed sampling seed (so two runs sample alike).
    static func prepare(_ run: String) throws {
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        try "1234567\n".write(toFile: run + "/sample-seed", atomically: true, encoding: .utf8)
    }

    /// Runs fl-rounds with kills at steps drawn from a seeded generator in 1...maxStep until
    /// `kills` runs were killed (a run that finishes first gets one more round), then lets it
    /// finish. Returns the steps killed ("in train", "after noise", …) and the rounds run.
    static func crashLoop(arguments: ([String]) -> [String], run: String, rounds initial: Int, maxStep: Int, kills: Int,
                          seed: UInt64) throws -> (killed: [String], rounds: Int) {
        var generator = SeededGenerator(seed: seed)
        var killed: [String] = []
        var rounds = initial
        var attempts = 0
        while killed.count < kills && attempts < 4 * kills {
            attempts += 1
            let step = 1 + generator.nextIndex(below: maxStep)
            let r = try Tool.run(roundsScript, arguments(["--run", run, "--rounds", "\(rounds)"]),
                                 environment: ["FL_ROUNDS_TEST_KILL_AT": "\(step)"])
            if r.signaled {
                #expect(r.status == SIGKILL, "\(r.stderr)")
                let line = try #require(r.stderrLines.last { $0.hasPrefix("fl-rounds: test: killed ") }, "\(r.stderr)")
                // "fl-rounds: test: killed in step 5 (noise)" → "in noise"
                let words = line.split(separator: " ")
                killed.append("\(words[3]) \(words[6].trimmingCharacters(in: CharacterSet(charactersIn: "()")))")
            } else {
                #expect(r.status == 0, "step \(step): \(r.stderr)")
                rounds += 1
            }
        }
        let last = try Tool.run(roundsScript, arguments(["--run", run, "--rounds", "\(rounds)"]))
        #expect(last.status == 0 && !last.signaled, "\(last.stderr)")
        return (killed, rounds)
    }

    @Test("a stateful federated SGD run killed at 20 random steps ends with the same models and metrics, no temporary left")
    func plain() throws {
        let dir = try TemporaryDirectory()
        let ratings = try tinyRatings(in: dir.path)
        func arguments(_ extra: [String]) -> [String] {
            ["--bin", CommandRunner.directory.path, "--data", ratings, "--dim", "4", "--jobs", "2",
             "--partition", "--split ratio --test-ratio 0.2 --shards 2", "--train", "--algorithm sgd --epochs 1"] + extra
        }
        let crashed = dir.path + "/crashed", reference = dir.path + "/reference"
        let (killed, rounds) = try Self.crashLoop(arguments: arguments, run: crashed, rounds: 3, maxStep: 8, kills: 20, seed: 7)
        #expect(killed.count >= 20)
        let kinds = Set(killed.map { $0.split(separator: " ")[1] })
        #expect(kinds.isSuperset(of: ["train", "aggregate", "eval"]), "\(killed)")
        #expect(killed.contains("in eval") && killed.contains("after eval"), "\(killed)")  // before and after the metrics line

        let r = try Tool.run(roundsScript, arguments(["--run", reference, "--rounds", "\(rounds)"]))
        #expect(r.status == 0, "\(r.stderr)")
        let expected = try Self.results(reference), got = try Self.results(crashed)
        #expect(expected.keys.sorted() == got.keys.sorted() && expected.keys.contains("model-\(String(format: "%04d", rounds)).safetensors"))
        for (name, bytes) in expected { #expect(got[name] == bytes, "\(name) differs after \(killed)") }
        #expect(Self.leftovers(crashed).isEmpty, "\(Self.leftovers(crashed))")
        let metrics = try String(contentsOfFile: crashed + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(metrics.count == rounds)  // each round's line once
    }

    @Test("a private run (adaptive clipping, test noise seed) killed at 20 random steps: the same models, metrics, clips and ledger; each round charged once")
    func privateSeeded() throws {
        let dir = try TemporaryDirectory()
        let ratings = try tinyRatings(in: dir.path)
        func arguments(_ extra: [String]) -> [String] {
            ["--bin", CommandRunner.directory.path, "--data", ratings, "--dim", "4", "--objective", "bpr",
             "--partition", "--split leave-last-out --shards 2", "--train", "--reconstruct --epochs 1",
             "--dp", "--clip", "0.5", "--sample-rate", "0.5", "--noise-multiplier", "1", "--epsilon", "1000",
             "--adaptive-clip", "--test-noise-seed", "5"] + extra
        }
        let crashed = dir.path + "/crashed", reference = dir.path + "/reference"
        try Self.prepare(crashed)
        try Self.prepare(reference)
        let (killed, rounds) = try Self.crashLoop(arguments: arguments, run: crashed, rounds: 3, maxStep: 12, kills: 20, seed: 3)
        #expect(killed.count >= 20)
        let kinds = Set(killed.map { $0.split(separator: " ")[1] })
        #expect(kinds.isSuperset(of: ["train", "aggregate", "noise", "apply", "eval"]), "\(killed)")
        #expect(killed.contains("in noise"), "\(killed)")  // the crash between the ledger line and the noised sum

        let r = try Tool.run(roundsScript, arguments(["--run", reference, "--rounds", "\(rounds)"]))
        #expect(r.status == 0, "\(r.stderr)")
        let expected = try Self.results(reference), got = try Self.results(crashed)
        #expect(expected.keys.sorted() == got.keys.sorted())
        for (name, bytes) in expected { #expect(got[name] == bytes, "\(name) differs after \(killed)") }
        let ledger = try PrivacyLedger.read(path: crashed + "/ledger.jsonl").entries
        #expect(ledger.map(\.round) == Array(0..<rounds), "\(ledger.map(\.round))")
        #expect(Self.leftovers(crashed).isEmpty, "\(Self.leftovers(crashed))")
        #expect(try ReleaseKeys.read(path: crashed + "/ledger.jsonl.keys").isEmpty)
    }

    /// With noise from the system CSPRNG two runs differ, so this checks the accounting: each
    /// round is killed between its ledger line and its noised sum (in:noise), and the rerun
    /// that replays the release is killed again after applying it (after:apply).
    @Test("a private run with CSPRNG noise killed after every round's ledger line charges each round exactly once")
    func privateSystemNoise() throws {
        let dir = try TemporaryDirectory()
        let ratings = try tinyRatings(in: dir.path)
        let run = dir.path + "/run"
        try Self.prepare(run)
        let rounds = 3
        let arguments = ["--bin", CommandRunner.directory.path, "--data", ratings, "--run", run, "--rounds", "\(rounds)",
                         "--dim", "4", "--objective", "bpr", "--partition", "--split leave-last-out --shards 2",
                         "--train", "--reconstruct --epochs 1", "--dp", "--clip", "0.5", "--sample-rate", "0.5",
                         "--noise-multiplier", "1", "--epsilon", "1000"]
        for round in 0..<rounds {
            let noise = try Tool.run(roundsScript, arguments, environment: ["FL_ROUNDS_TEST_KILL_AT": "in:noise"])
            #expect(noise.signaled && noise.stderr.contains("(noise)"), "\(noise.stderr)")
            #expect(try PrivacyLedger.read(path: run + "/ledger.jsonl").entries.count == round + 1)
            let apply = try Tool.run(roundsScript, arguments, environment: ["FL_ROUNDS_TEST_KILL_AT": "after:apply"])
            #expect(apply.signaled && apply.stderr.contains("(apply)"), "\(apply.stderr)")
            #expect(FileManager.default.fileExists(atPath: run + "/model-000\(round + 1).safetensors"))
        }
        let last = try Tool.run(roundsScript, arguments)
        #expect(last.status == 0, "\(last.stderr)")
        let ledger = try PrivacyLedger.read(path: run + "/ledger.jsonl").entries
        #expect(ledger.map(\.round) == Array(0..<rounds) && ledger.allSatisfy(\.isPrivate), "\(ledger.map(\.round))")
        #expect(Self.leftovers(run).isEmpty, "\(Self.leftovers(run))")
        #expect(try ReleaseKeys.read(path: run + "/ledger.jsonl.keys").isEmpty)
    }

    /// A secure round draws fresh keys and rounding, so two runs differ: this checks that a
    /// run killed as its secure round starts (in:secagg) and again once the unmasked sum is
    /// in place (after:secagg) resumes, finishes every round once, and leaves no session,
    /// party state or temporary file behind.
    @Test("a secure run killed inside and after each round's secure aggregation resumes and leaves nothing behind")
    func secureRounds() throws {
        let dir = try TemporaryDirectory()
        let ratings = try tinyRatings(in: dir.path)
        let run = dir.path + "/run"
        let rounds = 2
        let arguments = ["--bin", CommandRunner.directory.path, "--data", ratings, "--run", run, "--rounds", "\(rounds)",
                         "--dim", "4", "--partition", "--split ratio --test-ratio 0.2 --shards 2",
                         "--train", "--reconstruct --epochs 1 --weighting uniform", "--secagg", "--secagg-dropout", "0.3"]
        for round in 0..<rounds {
            let inside = try Tool.run(roundsScript, arguments, environment: ["FL_ROUNDS_TEST_KILL_AT": "in:secagg"])
            #expect(inside.signaled && inside.stderr.contains("(secagg)"), "\(inside.stderr)")
            let after = try Tool.run(roundsScript, arguments, environment: ["FL_ROUNDS_TEST_KILL_AT": "after:secagg"])
            #expect(after.signaled && after.stderr.contains("(secagg)"), "\(after.stderr)")
            #expect(FileManager.default.fileExists(atPath: run + "/updates-000\(round)/sum.sum"))
            let finish = try Tool.run(roundsScript, arguments + ["--rounds", "\(round + 1)"])
            #expect(finish.status == 0, "\(finish.stderr)")
        }
        let rows = try Tool.run("fl-inspect", [run + "/metrics.jsonl", "--field", "lines[].round"])
        #expect(rows.stdout == "1\n2\n", "\(rows.stdout)")
        let names = (FileManager.default.enumerator(atPath: run)?.compactMap { $0 as? String } ?? [])
        #expect(Self.leftovers(run).isEmpty && !names.contains { $0.hasPrefix("secagg-") }, "\(names)")
    }
}
