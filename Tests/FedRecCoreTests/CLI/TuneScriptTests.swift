import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport

let tuneScript = repositoryRoot + "/pipelines/tune"

@Suite("pipelines/tune: search on a validation split, choose, retrain, test", .enabled(if: onPath("flock") && onPath("bash"), "needs bash and flock (util-linux)"))
struct TuneScriptTests {
    /// A trial table by hand: trial 02 has the highest hr@10, 01 the lowest rmse, 03 ties
    /// 02's hr@10 (the earlier one wins), 04 failed (no number).
    static let table = """
        trial\tseconds\thr@10\trmse\tl2
        00\t1.0\t0.0900\t0.95\t1
        01\t1.0\t0.0850\t0.91\t5
        02\t1.0\t0.1010\t0.99\t10
        03\t1.0\t0.1010\t0.97\t20
        04\t1.0\tnan\t-\t40

        """

    @Test("--choose takes the argmax (or argmin) of the metric's column, the earliest of ties")
    func choose() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/trials.tsv"
        try writeAtomically(Self.table, to: path)
        let best = try Tool.run(tuneScript, ["--choose", path, "--metric", "hr@10"])
        #expect(best.status == 0 && best.stdoutLines == ["trial\tseconds\thr@10\trmse\tl2", "02\t1.0\t0.1010\t0.99\t10"], "\(best.stdout) \(best.stderr)")
        // rmse's goal is min by default.
        let low = try Tool.run(tuneScript, ["--choose", path, "--metric", "rmse"])
        #expect(low.stdoutLines.last == "01\t1.0\t0.0850\t0.91\t5", "\(low.stdout)")
        let worst = try Tool.run(tuneScript, ["--choose", path, "--metric", "hr@10", "--goal", "min"])
        #expect(worst.stdoutLines.last == "01\t1.0\t0.0850\t0.91\t5")
        let missing = try Tool.run(tuneScript, ["--choose", path, "--metric", "recall@20"])
        #expect(missing.status == 65 && missing.stderr.contains("no column recall@20"), "\(missing.status) \(missing.stderr)")
    }

    @Test("a tiny search on sample-data: validation split from training events, trials, choice, one test run")
    func endToEnd() throws {
        let dir = try TemporaryDirectory()
        let ratings = repositoryRoot + "/sample-data/ratings.csv"
        let arguments = [
            "--bin", CommandRunner.directory.path, "--data", ratings, "--partition", "--feedback implicit --no-items --shards 2",
            "--space", "l2=1,20 alpha=2,8", "--trials", "3", "--search-seed", "5", "--metric", "hr@10",
            "--rounds", "2", "--objective", "wals", "--dim", "8", "--init", "--init-scale 0.01",
            "--train", "--algorithm als --alpha {alpha} --l2 {l2} --reconstruct", "--server", "--l2 {l2}",
        ]
        let run = dir.path + "/tune"
        let r = try Tool.run(tuneScript, arguments + ["--run", run])
        #expect(r.status == 0, "\(r.stderr)")
        // The validation split: each user's latest training event held out, no test event.
        let dataset = try Tool.run("fl-inspect", [run + "/dataset", "--field", "interactions.test"])
        let valid = try Tool.run("fl-inspect", [run + "/valid", "--field", "interactions"])
        #expect(valid.status == 0 && !valid.stdout.isEmpty && dataset.status == 0)
        let trainUsers = try readUsers(run + "/dataset"), validUsers = try readUsers(run + "/valid")
        for (old, new) in zip(trainUsers, validUsers) {
            #expect(old.user == new.user)
            #expect(Set(new.test.items).isDisjoint(with: old.test.items))
            if old.train.count >= 2 { #expect(new.test.times == [try #require(old.train.times.max())]) }
        }
        // Three distinct trials, the choice is the table's argmax, the final run is on test.
        let table = try String(contentsOfFile: run + "/trials.tsv", encoding: .utf8)
        let rows = table.split(separator: "\n").dropFirst().map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.count == 3 && Set(rows.map { $0[3] + "/" + $0[4] }).count == 3, "\(table)")
        let scores = rows.compactMap { Double($0[2]) }
        let bestRow = try #require(rows.first { Double($0[2]) == scores.max() })
        let choice = try String(contentsOfFile: run + "/choice.tsv", encoding: .utf8)
        #expect(choice.hasPrefix("trial\t\(bestRow[0])\n"), "\(choice)")
        #expect(choice.contains("--train\t--algorithm als --alpha \(bestRow[4]) --l2 \(bestRow[3]) --reconstruct\n"), "\(choice)")
        let final = try String(contentsOfFile: run + "/final.tsv", encoding: .utf8).split(separator: "\n")
        #expect(final.count == 4 && final[0].hasPrefix("seed\tround\t") && final[1].hasPrefix("0\t2\t"), "\(final)")
        // The final run trained on the full dataset and evaluated its test events.
        let config = try String(contentsOfFile: run + "/final-0/config", encoding: .utf8)
        #expect(config.contains("--data=\(run)/dataset\n") || config.contains("/dataset\n"))
        // Deterministic: the same search in another directory scores the same trials.
        let again = try Tool.run(tuneScript, arguments + ["--run", dir.path + "/again"])
        #expect(again.status == 0)
        let second = try String(contentsOfFile: dir.path + "/again/trials.tsv", encoding: .utf8)
        func withoutSeconds(_ text: String) -> [String] {
            text.split(separator: "\n").map { line in
                var fields = line.split(separator: "\t", omittingEmptySubsequences: false)
                fields.remove(at: 1)
                return fields.joined(separator: "\t")
            }
        }
        #expect(withoutSeconds(table) == withoutSeconds(second))
        // A resume with another search is refused, naming the file.
        let other = try Tool.run(tuneScript, arguments.map { $0 == "l2=1,20 alpha=2,8" ? "l2=1,3 alpha=2,8" : $0 } + ["--run", run])
        #expect(other.status == 64 && other.stderr.contains("search"), "\(other.stderr)")
    }

    @Test("a CTR search on the synthetic ad log: validation by time with the users' features and impressions, argmin of log loss")
    func ctr() throws {
        let dir = try TemporaryDirectory()
        let ads = repositoryRoot + "/sample-data/ads"
        let run = dir.path + "/tune"
        let r = try Tool.run(tuneScript, [
            "--bin", CommandRunner.directory.path, "--data", ads + "/impressions.csv", "--run", run,
            "--partition", "--rating-col clicked --item-col adId --no-items --item-features \(ads)/ads.csv --user-features \(ads)/users.csv --split time --test-ratio 0.2 --impressions 0.5 --shards 2",
            "--validation", "--split time --test-ratio 0.2", "--space", "lr=0.02,0.2", "--trials", "0", "--metric", "log_loss",
            "--rounds", "2", "--objective", "bce", "--dim", "1", "--init", "--model lr --hash-bits 12 --click-threshold 1",
            "--train", "--lr {lr} --l2 0.001", "--server", "",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        // The validation split keeps each user's features and divides its training
        // impressions; nothing of the test period is in it.
        let dataset = try readUsers(run + "/dataset"), valid = try readUsers(run + "/valid")
        #expect(valid.contains { !$0.testImpressions.isEmpty } && valid.contains { !$0.features.isEmpty })
        for (old, new) in zip(dataset, valid) {
            #expect(old.user == new.user && old.features == new.features)
            #expect((new.testImpressions + new.impressions).sorted() == old.impressions.sorted())
            #expect(Set(new.test.items + new.testImpressions).isDisjoint(with: old.testImpressions))
        }
        // Both trials ran (the whole grid); the choice is the lower log loss.
        let rows = try String(contentsOfFile: run + "/trials.tsv", encoding: .utf8).split(separator: "\n")
            .dropFirst().map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.map { $0[3] } == ["0.02", "0.2"], "\(rows)")
        let losses = rows.compactMap { Double($0[2]) }
        #expect(losses.count == 2 && losses[0] != losses[1])
        let best = losses[0] < losses[1] ? rows[0][0] : rows[1][0]
        #expect(try String(contentsOfFile: run + "/choice.tsv", encoding: .utf8).hasPrefix("trial\t\(best)\n"))
        let final = try String(contentsOfFile: run + "/final.tsv", encoding: .utf8)
        #expect(final.hasPrefix("seed\tround\t") && final.contains("auc"), "\(final)")
    }

    @Test("make -C pipelines accepts every model it documents, and the CTR search's space",
          .enabled(if: onPath("make"), "needs make"))
    func makeModels() throws {
        func dryRun(_ target: String, _ settings: [String]) throws -> CommandResult {
            try Tool.run("/usr/bin/env", ["make", "-n", "-s", "-C", repositoryRoot + "/pipelines", target,
                                          "BIN=\(CommandRunner.directory.path)", "DATA=/data/u.data"] + settings)
        }
        for (settings, model) in [([], "--init-scale 0.1"), (["MODE=implicit", "MODEL=ncf"], "--model ncf"), (["MODE=implicit", "MODEL=gfcf"], "--model gfcf"),
                                  (["MODEL=lr"], "--model lr"), (["MODEL=fm"], "--model fm")] {
            let r = try dryRun("rounds", settings)
            #expect(r.status == 0 && r.stdout.contains(model), "\(settings): \(r.stderr)")
        }
        let fm = try dryRun("tune", ["MODEL=fm"])
        #expect(fm.status == 0, "\(fm.stderr)")
        #expect(fm.stdout.contains("--space \"lr=0.02,0.05,0.1 l2=0.0001,0.0005,0.002 slr=0.02,0.05,0.1 epochs=1,2 rounds=20,30,40 dim=4,8,16 b1=0,0.9\""), "\(fm.stdout)")
        #expect(fm.stdout.contains("--metric log_loss") && fm.stdout.contains("--validation \"--split time --test-ratio 0.2\""))
        let lr = try dryRun("rounds", ["MODEL=lr"]), implicit = try dryRun("rounds", ["MODE=implicit"])
        #expect(fm.stdout.contains("--calibration-rounds 2") && lr.stdout.contains("--calibration-rounds 2"))
        #expect(!implicit.stdout.contains("--calibration-rounds"))
        let mismatch = try dryRun("tune", ["TUNE_MODEL=fm"])
        #expect(mismatch.status != 0 && mismatch.stderr.contains("give MODEL=fm"), "\(mismatch.stderr)")
    }
}
