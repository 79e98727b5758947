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
