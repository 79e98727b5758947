import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport

/// The synthetic ad log in sample-data/ads.
let sampleAds = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("sample-data/ads").path

@Suite("CTR models (lr, fm) through the commands")
struct CTRCommandTests {
    func partition(_ dir: TemporaryDirectory, _ extra: [String] = []) throws -> CommandResult {
        try CommandRunner.run("fl-partition", [
            sampleAds + "/impressions.csv", "--rating-col", "clicked", "--item-col", "adId", "--no-items",
            "--item-features", sampleAds + "/ads.csv", "--user-features", sampleAds + "/users.csv",
            "--split", "time", "--test-ratio", "0.2", "-o", "ads",
        ] + extra, in: dir.path)
    }

    @Test("the ad log: partition, init, rounds, eval; the model beats its start and is calibrated on training data")
    func rounds() throws {
        let dir = try TemporaryDirectory()
        #expect(try partition(dir).status == 0)
        let listing = try CommandRunner.run("/usr/bin/tar", ["tf", "ads/shards/shard-00000.tar"], in: dir.path).stdout
        #expect(listing.contains("u0000000.features.txt"))
        for family in ["lr", "fm"] {
            let initialised = try CommandRunner.run("fl-init", ["--model", family, "--dataset", "ads", "--click-threshold", "1", "--dim", "4",
                                                               "--hash-bits", "12", "-o", "\(family)-0"], in: dir.path)
            #expect(initialised.status == 0, "\(initialised.stderr)")
            for r in 0..<8 {
                for s in 0..<2 {
                    let trained = try CommandRunner.run("fl-train-local", ["--model", "\(family)-\(r)", "--shard", "ads/shards/shard-0000\(s).tar",
                                                                          "--lr", "0.1", "--l2", "0.001", "-o", "u\(s)"], in: dir.path)
                    #expect(trained.status == 0, "\(trained.stderr)")
                }
                let next = try CommandRunner.run("fl-aggregate", ["u0", "u1", "--model", "\(family)-\(r)", "-o", "\(family)-\(r + 1)"], in: dir.path)
                #expect(next.status == 0, "\(next.stderr)")
            }
            let eval = try CommandRunner.run("fl-eval", ["--model", "\(family)-8", "--dataset", "ads", "--json"], in: dir.path)
            let report = try JSONValue.parse(eval.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            let auc = try #require(report["auc"]?.doubleValue), trainCalibration = try #require(report["train_calibration"]?.doubleValue)
            #expect(report["round"]?.intValue == 8 && report["model_type"]?.stringValue == family)
            #expect(auc > 0.6, "\(family) AUC \(auc)")
            #expect(abs(trainCalibration - 1) < 0.1, "\(family) training calibration \(trainCalibration)")
            let inspect = try CommandRunner.run("fl-inspect", ["\(family)-8", "--json"], in: dir.path)
            #expect(inspect.status == 0 && inspect.stdout.contains("index.item_feature_bucket"))
        }
        let baseline = try CommandRunner.run("fl-eval", ["--model", "lr-0", "--dataset", "ads", "--popularity", "--json"], in: dir.path)
        #expect(try JSONValue.parse(baseline.stdout.trimmingCharacters(in: .whitespacesAndNewlines))["baseline"]?.stringValue == "item-ctr")
    }

    @Test("a calibration round (fl-train-local --epochs 0, fl-aggregate --calibrate-bias) puts the training predictions on the click rate and keeps the ranking; refused for mf")
    func calibrationRound() throws {
        let dir = try TemporaryDirectory()
        #expect(try partition(dir).status == 0)
        #expect(try CommandRunner.run("fl-init", ["--model", "fm", "--dataset", "ads", "--click-threshold", "1", "--dim", "4",
                                                  "--hash-bits", "12", "-o", "fm-0"], in: dir.path).status == 0)
        func round(_ r: Int, _ train: [String], _ server: [String]) throws {
            for s in 0..<2 {
                let trained = try CommandRunner.run("fl-train-local", ["--model", "fm-\(r)", "--shard", "ads/shards/shard-0000\(s).tar",
                                                                      "-o", "u\(s)"] + train, in: dir.path)
                #expect(trained.status == 0, "\(trained.stderr)")
            }
            let next = try CommandRunner.run("fl-aggregate", ["u0", "u1", "--model", "fm-\(r)", "-o", "fm-\(r + 1)"] + server, in: dir.path)
            #expect(next.status == 0, "\(next.stderr)")
        }
        func metrics(_ model: String) throws -> JSONValue {
            let eval = try CommandRunner.run("fl-eval", ["--model", model, "--dataset", "ads", "--json"], in: dir.path)
            return try JSONValue.parse(eval.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        // Long local runs, which pull the averaged model's predictions off the click rate.
        for r in 0..<4 { try round(r, ["--lr", "0.2", "--epochs", "5", "--l2", "0.001"], []) }
        let before = try metrics("fm-4")
        let off = try #require(before["train_calibration"]?.doubleValue)
        #expect(abs(off - 1) > 0.02, "training calibration before \(off)")
        // A client that trains cannot go into a calibration round.
        let mixed = try CommandRunner.run("fl-aggregate", ["u0", "u1", "--model", "fm-3", "--calibrate-bias", "-o", "bad"], in: dir.path)
        #expect(mixed.status == 64 && mixed.stderrLines.count == 1 && mixed.stderr.contains("--epochs 0"), "\(mixed.stderr)")
        // One Newton step a round: from this far off (about 0.3) it overshoots, then
        // converges, quadratically once close; four rounds reach 1 within 1 %.
        for r in 4..<8 { try round(r, ["--epochs", "0"], ["--calibrate-bias"]) }
        let after = try metrics("fm-8")
        let calibration = try #require(after["train_calibration"]?.doubleValue)
        #expect(abs(calibration - 1) < 0.01, "training calibration \(calibration) (before: \(off))")
        // An intercept shift does not change the order of the scores: the same AUC.
        #expect(after["auc"] == before["auc"] && after["train_auc"] == before["train_auc"])
        #expect(try #require(after["train_log_loss"]?.doubleValue) < #require(before["train_log_loss"]?.doubleValue))
        // An mf model has no intercept to calibrate.
        #expect(try CommandRunner.run("fl-partition", [sampleRatings, "--shards", "1", "-o", "mf"], in: dir.path).status == 0)
        #expect(try CommandRunner.run("fl-init", ["--dataset", "mf", "--dim", "4", "-o", "mf-0"], in: dir.path).status == 0)
        #expect(try CommandRunner.run("fl-train-local", ["--model", "mf-0", "--shard", "mf/shards/shard-00000.tar", "--algorithm", "sgd", "--reconstruct", "-o", "mu"], in: dir.path).status == 0)
        let refused = try CommandRunner.run("fl-aggregate", ["mu", "--model", "mf-0", "--calibrate-bias", "-o", "mf-1"], in: dir.path)
        #expect(refused.status == 64 && refused.stderrLines.count == 1 && refused.stderr.contains("--calibrate-bias"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/mf-1"))
    }

    @Test("bad inputs are refused with one line and their exit code")
    func refusals() throws {
        let dir = try TemporaryDirectory()
        try writeAtomically("id,age\n1,20\n1,30\n", to: dir.path + "/twice.csv")
        let twice = try CommandRunner.run("fl-partition", [sampleAds + "/impressions.csv", "--rating-col", "clicked", "--item-col", "adId",
                                                           "--no-items", "--user-features", "twice.csv", "-o", "t"], in: dir.path)
        #expect(twice.status == 65 && twice.stderrLines.count == 1 && twice.stderr.contains("twice.csv") && twice.stderr.contains("line 3"))
        #expect(try partition(dir).status == 0)
        let bits = try CommandRunner.run("fl-init", ["--model", "lr", "--dataset", "ads", "--hash-bits", "31", "-o", "m"], in: dir.path)
        #expect(bits.status == 64 && bits.stderrLines.count == 1)
        #expect(try CommandRunner.run("fl-init", ["--model", "fm", "--dataset", "ads", "--dim", "2", "--hash-bits", "8", "-o", "m"], in: dir.path).status == 0)
        let cold = try CommandRunner.run("fl-eval", ["--model", "m", "--dataset", "ads", "--cold"], in: dir.path)
        #expect(cold.status == 64 && cold.stderrLines.count == 1)
        let adam = try CommandRunner.run("fl-train-local", ["--model", "m", "--shard", "ads/shards/shard-00000.tar", "--optimizer", "adam", "-o", "u"], in: dir.path)
        #expect(adam.status == 64 && adam.stderrLines.count == 1)
        // An update of an fm model does not apply to another model.
        #expect(try CommandRunner.run("fl-train-local", ["--model", "m", "--shard", "ads/shards/shard-00000.tar", "-o", "u"], in: dir.path).status == 0)
        #expect(try CommandRunner.run("fl-init", ["--model", "fm", "--dataset", "ads", "--dim", "2", "--hash-bits", "8", "--seed", "1", "-o", "other"], in: dir.path).status == 0)
        let mismatch = try CommandRunner.run("fl-aggregate", ["u", "--model", "other", "-o", "next"], in: dir.path)
        #expect(mismatch.status == 86 && mismatch.stderrLines.count == 1)
        // The item feature table is checked against dataset.json's checksum.
        let table = dir.path + "/ads/item_features.tsv"
        try writeAtomically((try String(contentsOfFile: table, encoding: .utf8)).replacingOccurrences(of: "food", with: "fool"), to: table)
        let tampered = try CommandRunner.run("fl-init", ["--model", "lr", "--dataset", "ads", "-o", "m2"], in: dir.path)
        #expect(tampered.status == 82 && tampered.stderr.contains("item_features.tsv"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/m2"))
    }
}
