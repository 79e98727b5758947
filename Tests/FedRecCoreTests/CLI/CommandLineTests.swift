import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecTestSupport
import FedRecSupport
import FedRecData
import FedRecModel
import FedRecWire

/// The built commands, run as a pipeline runs them.
typealias Tool = CommandRunner

/// `printf 'u1 a b c\nu2 b\n' | zstd -19 | xxd -i`.
let zstdLists: [UInt8] = [
    0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x0e, 0x71, 0x00, 0x00, 0x75, 0x31, 0x20, 0x61, 0x20, 0x62, 0x20, 0x63, 0x0a, 0x75, 0x32,
    0x20, 0x62, 0x0a, 0x54, 0x06, 0x44, 0xe6,
]

/// The repository's sample data.
let sampleRatings = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("sample-data/ratings.csv").path

@Suite("the fl-* commands as a pipeline runs them", .serialized)
struct CommandLineTests {
    /// A partitioned sample dataset with a model, two updates and the next model.
    final class Round {
        let dir: TemporaryDirectory
        var path: String { dir.path }

        init() throws {
            dir = try TemporaryDirectory()
            let p = try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "2", "--split", "ratio", "--seed", "1"], in: path)
            guard p.status == 0 else { throw FedRecError(.io, "fl-partition failed: \(p.stderr)") }
            for (tool, args) in [
                ("fl-init", ["--dataset", "ds", "--objective", "mse", "--dim", "8", "-o", "m0.safetensors"]),
                ("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00000.tar", "--state", "s0.safetensors", "-o", "u0.safetensors"]),
                ("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00001.tar", "--state", "s1.safetensors", "-o", "u1.safetensors"]),
            ] {
                let r = try Tool.run(tool, args, in: path)
                guard r.status == 0 else { throw FedRecError(.io, "\(tool) failed: \(r.stderr)") }
            }
        }
    }

    @Test("a round through the commands: partition, init, train, aggregate from stdin, eval, recommend")
    func pipeline() throws {
        let round = try Round()
        let aggregate = try Tool.run("fl-aggregate", ["--model", "m0.safetensors", "-o", "m1.safetensors", "--json"], stdin: "u0.safetensors\nu1.safetensors\n", in: round.path)
        #expect(aggregate.status == 0 && aggregate.stderr.isEmpty)
        let summary = try JSONValue.parse(aggregate.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(summary["round"]?.intValue == 1 && summary["clients"]?.intValue == 400)

        let eval = try Tool.run("fl-eval", ["--model", "m1.safetensors", "--dataset", "ds", "--reconstruct", "--json"], in: round.path)
        #expect(eval.status == 0)
        let metrics = try JSONValue.parse(eval.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let rmse = try #require(metrics["rmse"]?.doubleValue)
        #expect(rmse > 0.3 && rmse < 1.5)
        #expect(metrics["round"]?.intValue == 1)
        let tsv = try Tool.run("fl-eval", ["--model", "m1.safetensors", "--dataset", "ds", "--reconstruct"], in: round.path)
        #expect(tsv.stdout.hasPrefix("round\tmae\tobjective\tratings\trmse\n"))

        let recommend = try Tool.run("fl-recommend", ["--model", "m1.safetensors", "--dataset", "ds", "--reconstruct", "--user", "1", "-k", "5"], in: round.path)
        #expect(recommend.status == 0)
        let lines = recommend.stdout.split(separator: "\n")
        #expect(lines.first == "user\trank\titem\tscore\ttitle" && lines.count == 6)
        // None of user 1's own items is recommended.
        let users = try readUsers(round.path + "/ds")
        let own = Set(try #require(users.first { $0.id == "1" }).train.items.map { Int($0) + 1 })
        for line in lines.dropFirst() {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            #expect(fields[0] == "1" && !own.contains(Int(fields[2])!))
        }
        let inspect = try Tool.run("fl-inspect", ["m1.safetensors", "--json"], in: round.path)
        #expect(try JSONValue.parse(inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines))["kind"]?.stringValue == "model")
    }

    @Test("`-` reads a pipe: fl-partition, fl-train-local --shard, fl-inspect and fl-recommend --users give what their files give")
    func stdinInputs() throws {
        let round = try Round()
        let p = round.path
        // fl-partition -: the same dataset (its id names the input's bytes, not its name).
        // A file finds movies.csv beside it; stdin has no "beside", so it is named.
        let csv = try readBytes(sampleRatings)
        let movies = URL(fileURLWithPath: sampleRatings).deletingLastPathComponent().appendingPathComponent("movies.csv").path
        let piped = try Tool.run("fl-partition", ["-", "-o", "piped", "--shards", "2", "--split", "ratio", "--seed", "1", "--items", movies],
                                 stdinBytes: csv, in: p)
        #expect(piped.status == 0, "\(piped.stderr)")
        let fromFile = try DatasetManifest.load(p + "/ds"), fromPipe = try DatasetManifest.load(p + "/piped")
        #expect(fromPipe.datasetId == fromFile.datasetId && fromPipe.users == fromFile.users && fromPipe.train == fromFile.train)
        for shard in fromFile.shards { #expect(try readBytes(p + "/piped/" + shard.file) == readBytes(p + "/ds/" + shard.file)) }
        #expect(try readBytes(p + "/piped/users.tsv") == readBytes(p + "/ds/users.tsv"))
        #expect(try readBytes(p + "/piped/items.tsv") == readBytes(p + "/ds/items.tsv"))

        // fl-train-local --shard -: the update the shard file gives.
        let shard = try readBytes(p + "/ds/shards/shard-00000.tar")
        let args = ["--model", "m0.safetensors", "--reconstruct", "--seed", "3"]
        let a = try Tool.run("fl-train-local", args + ["--shard", "ds/shards/shard-00000.tar", "-o", "from-file.safetensors"], in: p)
        let b = try Tool.run("fl-train-local", args + ["--shard", "-", "-o", "from-pipe.safetensors"], stdinBytes: shard, in: p)
        #expect(a.status == 0 && b.status == 0, "\(a.stderr) \(b.stderr)")
        let fileUpdate = try ModelUpdate.load(p + "/from-file.safetensors"), pipeUpdate = try ModelUpdate.load(p + "/from-pipe.safetensors")
        #expect(pipeUpdate.rows == fileUpdate.rows && pipeUpdate.rowTensors == fileUpdate.rowTensors && pipeUpdate.dense == fileUpdate.dense)
        #expect(pipeUpdate.header.clients == fileUpdate.header.clients && pipeUpdate.header.clients > 0)

        // fl-inspect -: a checkpoint on stdin is recognised and verified.
        let inspect = try Tool.run("fl-inspect", ["-", "--json"], stdinBytes: try readBytes(p + "/m0.safetensors"), in: p)
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let report = try JSONValue.parse(inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report["kind"]?.stringValue == "model" && report["checksum"]?.stringValue == "ok")
        #expect(report["metadata"]?["items"]?.stringValue == "\(fromFile.items)" && report["file"]?.stringValue == "-")

        // fl-recommend --users -: one id a line, as with --user for each.
        let users = try Tool.run("fl-recommend", ["--model", "m0.safetensors", "--dataset", "ds", "--reconstruct", "--users", "-", "-k", "4"],
                                 stdin: "7\n1\n", in: p)
        let named = try Tool.run("fl-recommend", ["--model", "m0.safetensors", "--dataset", "ds", "--reconstruct", "--user", "7", "--user", "1", "-k", "4"], in: p)
        #expect(users.status == 0 && named.status == 0, "\(users.stderr)")
        #expect(users.stdoutLines.count == 1 + 2 * 4 && users.stdout == named.stdout)
    }

    @Test("fl-partition --format lists reads a zstd file and a plain one as one training set")
    func compressedLists() throws {
        let dir = try TemporaryDirectory()
        try writeAtomically(zstdLists, to: dir.path + "/train.txt.zst")
        try writeAtomically("u1 d\nu3 a\n", to: dir.path + "/valid.txt")
        try writeAtomically("u1 e\nu2 c\n", to: dir.path + "/test.txt")
        let r = try Tool.run("fl-partition", ["--format", "lists", "train.txt.zst", "valid.txt", "--test", "test.txt", "-o", "ds", "--json", "--negatives", "0"],
                             in: dir.path)
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try JSONValue.parse(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(summary["users"]?.intValue == 3 && summary["items"]?.intValue == 5)
        #expect(summary["train"]?.intValue == 6 && summary["test"]?.intValue == 2)
        let manifest = try DatasetManifest.load(dir.path + "/ds")
        #expect(manifest.details["source"]?["layout"] == "lists")
        #expect(manifest.details["source"]?["more_ratings"] == .array(["valid.txt"]))
    }

    @Test("sums are associative: ((u0) + (u1)) gives the same next model as u0 + u1")
    func treeReduction() throws {
        let round = try Round()
        #expect(try Tool.run("fl-aggregate", ["u0.safetensors", "-o", "a.safetensors"], in: round.path).status == 0)
        #expect(try Tool.run("fl-aggregate", ["u1.safetensors", "-o", "b.safetensors"], in: round.path).status == 0)
        #expect(try Tool.run("fl-aggregate", ["a.safetensors", "b.safetensors", "--model", "m0.safetensors", "-o", "tree.safetensors"], in: round.path).status == 0)
        #expect(try Tool.run("fl-aggregate", ["u1.safetensors", "u0.safetensors", "--model", "m0.safetensors", "-o", "flat.safetensors"], in: round.path).status == 0)
        let tree = try MFModel.load(round.path + "/tree.safetensors"), flat = try MFModel.load(round.path + "/flat.safetensors")
        #expect(tree.itemEmbedding == flat.itemEmbedding && tree.globalBias == flat.globalBias)
    }

    /// Each bad input: the exit code of its class, one stderr line naming the file, no
    /// output file left, inputs unchanged.
    @Test("bad inputs are refused with one line, a distinct exit code, and nothing lost")
    func badInputs() throws {
        let round = try Round()
        let p = round.path
        func corrupt(_ source: String, _ target: String, _ change: (inout [UInt8]) -> Void) throws {
            var bytes = try readBytes(p + "/" + source)
            change(&bytes)
            try writeAtomically(bytes, to: p + "/" + target)
        }
        try corrupt("m0.safetensors", "truncated.safetensors") { $0.removeLast(10) }
        try corrupt("m0.safetensors", "flipped.safetensors") { $0[$0.count - 1] ^= 0xFF }
        try corrupt("m0.safetensors", "newer.safetensors") { bytes in
            // Same length, so the header stays valid: format_version "2" → "9".
            let needle = Array("\"format_version\":\"\(FedRecFormat.version)\"".utf8)
            let at = (0...(bytes.count - needle.count)).first { Array(bytes[$0..<($0 + needle.count)]) == needle }!
            bytes[at + needle.count - 2] = UInt8(ascii: "9")
        }
        try writeAtomically("user,item,rating\n1,2,3\n1,2\n", to: p + "/bad.csv")
        try writeAtomically("", to: p + "/empty.csv")
        try writeAtomically("1 2 3\n4\t5\n", to: p + "/tabbed.txt")
        try writeAtomically("2,1,99\n", to: p + "/jester.csv")
        try writeAtomically(Array(zstdLists.dropLast(4)), to: p + "/cut.txt.zst")
        try writeAtomically(Array(repeating: UInt8(0x5A), count: 3000), to: p + "/noise.tar")
        #expect(try Tool.run("fl-init", ["--dataset", "ds", "--objective", "mse", "--dim", "4", "-o", "d4.safetensors"], in: p).status == 0)
        #expect(try Tool.run("fl-init", ["--dataset", "ds", "--objective", "mse", "--dim", "8", "--seed", "5", "-o", "other.safetensors"], in: p).status == 0)
        let before = try round.dir.listing().map { ($0, try? readBytes(p + "/" + $0)) }

        let cases: [(tool: String, args: [String], code: Int32, file: String, says: String)] = [
            ("fl-partition", ["missing.csv", "-o", "out"], 66, "missing.csv", "cannot open"),
            ("fl-partition", ["bad.csv", "-o", "out"], 65, "bad.csv", "line 3"),
            ("fl-partition", ["empty.csv", "-o", "out"], 85, "empty.csv", "no ratings"),
            ("fl-partition", ["--format", "lists", "tabbed.txt", "-o", "out"], 65, "tabbed.txt", "line 2: holds a tab"),
            ("fl-partition", ["--format", "jester", "jester.csv", "-o", "out", "--split", "ratio"], 65, "jester.csv", "says 2 jokes rated but rates 1"),
            ("fl-partition", ["--format", "lists", "cut.txt.zst", "-o", "out"], 84, "cut.txt.zst", "zstd stream"),
            ("fl-partition", ["tabbed.txt", "-o", "out"], 65, "tabbed.txt", "--format lists"),
            ("fl-train-local", ["--model", "truncated.safetensors", "--shard", "ds/shards/shard-00000.tar", "--reconstruct", "-o", "out"], 84, "truncated.safetensors", "truncated"),
            ("fl-train-local", ["--model", "flipped.safetensors", "--shard", "ds/shards/shard-00000.tar", "--reconstruct", "-o", "out"], 82, "flipped.safetensors", "checksum"),
            ("fl-train-local", ["--model", "newer.safetensors", "--shard", "ds/shards/shard-00000.tar", "--reconstruct", "-o", "out"], 80, "newer.safetensors", "version 9"),
            ("fl-train-local", ["--model", "m0.safetensors", "--shard", "noise.tar", "--reconstruct", "-o", "out"], 84, "noise.tar", "not a readable tar"),
            ("fl-train-local", ["--model", "u0.safetensors", "--shard", "ds/shards/shard-00000.tar", "--reconstruct", "-o", "out"], 81, "u0.safetensors", "expected a model"),
            ("fl-train-local", ["--model", "d4.safetensors", "--shard", "ds/shards/shard-00000.tar", "--state", "s0.safetensors", "-o", "out"], 83, "s0.safetensors", "d=8"),
            ("fl-aggregate", ["u0.safetensors", "--model", "other.safetensors", "-o", "out"], 86, "u0.safetensors", "computed from model"),
            ("fl-aggregate", ["m0.safetensors", "-o", "out"], 81, "m0.safetensors", "is a model"),
            ("fl-aggregate", ["u0.safetensors", "--model", "d4.safetensors", "-o", "out"], 83, "u0.safetensors", "d=8"),
            ("fl-eval", ["--model", "m0.safetensors", "--dataset", "nowhere"], 66, "nowhere/dataset.json", "cannot open"),
        ]
        for c in cases {
            let r = try Tool.run(c.tool, c.args, in: p)
            #expect(r.status == c.code, "\(c.tool) \(c.args): exit \(r.status), stderr \(r.stderr)")
            #expect(r.stderrLines.count == 1, "\(c.tool) \(c.args): \(r.stderr)")
            #expect(r.stderr.hasPrefix("\(c.tool): \(c.file): "), "\(r.stderr)")
            #expect(r.stderr.contains(c.says), "\(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        let after = try round.dir.listing().map { ($0, try? readBytes(p + "/" + $0)) }
        #expect(after.map(\.0) == before.map(\.0))
        #expect(zip(after, before).allSatisfy { $0.1 == $1.1 })
    }

    @Test("usage errors exit 64; --help prints examples to stdout and exits 0")
    func usageAndHelp() throws {
        let usage = try Tool.run("fl-train-local", ["--model", "m", "--shard", "s", "-o", "u"])
        #expect(usage.status == 64 && usage.stderr.contains("--reconstruct"))
        for tool in ["fl-partition", "fl-init", "fl-train-local", "fl-aggregate", "fl-eval", "fl-recommend", "fl-inspect"] {
            let help = try Tool.run(tool, ["--help"])
            #expect(help.status == 0 && help.stdout.contains("Examples:") && help.stderr.isEmpty, "\(tool)")
        }
    }
}
