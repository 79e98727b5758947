import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
import FedRecSupport
import FedRecFormats
import FedRecData

@Suite("fl-recommend --query-vector: text-only and personalized search", .serialized)
struct SearchCommandLineTests {
    static let dim = 4
    static let query: [Float] = [1, 0.3, 0, 0.2]

    /// A hand-made text table for the round's dataset: item i's text is a fixed 4-vector.
    static func vector(_ i: Int) -> [Float] { [Float(cos(Double(i))), Float(sin(Double(i))), Float(0.5 * cos(2 * Double(i))), Float(i % 7) / 7] }

    static func writeTable(_ round: CommandLineTests.Round, name: String = "text.safetensors", extraRows: Int = 0, datasetId: String? = nil) throws -> Int {
        let manifest = try DatasetManifest.load(round.path + "/ds")
        let items = manifest.items + extraRows
        let table = TextEmbeddingTable(vectors: (0..<items).flatMap(vector), items: items, dim: dim, encoder: "test",
                                       datasetId: datasetId ?? manifest.datasetId)
        try table.write(to: round.path + "/" + name)
        return manifest.items
    }

    /// Item ids of an fl-recommend TSV output, and its user column.
    static func items(_ stdout: String) -> [(user: String, item: String)] {
        stdout.split(separator: "\n").dropFirst().map { line in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            return (String(f[0]), String(f[2]))
        }
    }

    @Test("without a user: the items by cosine to the query, nothing excluded; a file, stdin JSON and stdin TSV agree")
    func textOnly() throws {
        let round = try CommandLineTests.Round()
        let items = try Self.writeTable(round)
        let json = "{\"embedding\":[" + Self.query.map { "\($0)" }.joined(separator: ",") + "],\"input_ids\":[101,102],\"text\":\"q\"}\n"
        try writeAtomically(json, to: round.path + "/q.json")
        let run = try Tool.run("fl-recommend", ["--dataset", "ds", "--item-text", "text.safetensors", "--query-vector", "q.json", "-k", "5"], in: round.path)
        #expect(run.status == 0 && run.stderr.isEmpty, "\(run.stderr)")
        // Expected: plain cosine, ties to the smaller index.
        func cosine(_ a: [Float], _ b: [Float]) -> Double {
            let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            return dot / (a.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot() * b.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot())
        }
        let order = (0..<items).sorted { (cosine(Self.vector($0), Self.query), -$0) > (cosine(Self.vector($1), Self.query), -$1) }
        let tables = try DatasetTables(directory: round.path + "/ds", manifest: try DatasetManifest.load(round.path + "/ds"))
        let got = Self.items(run.stdout)
        #expect(got.map(\.item) == order.prefix(5).map { tables.items[$0].id })
        #expect(got.allSatisfy { $0.user.isEmpty })
        #expect(run.stdout.hasPrefix("user\trank\titem\tscore\ttitle\n"))

        let stdinJSON = try Tool.run("fl-recommend", ["--dataset", "ds", "--item-text", "text.safetensors", "--query-vector", "-", "-k", "5"], stdin: json, in: round.path)
        #expect(stdinJSON.status == 0 && stdinJSON.stdout == run.stdout)
        let tsv = "q\t" + Self.query.map { "\($0)" }.joined(separator: "\t") + "\n"
        let stdinTSV = try Tool.run("fl-recommend", ["--dataset", "ds", "--item-text", "text.safetensors", "--query-vector", "-", "-k", "5"], stdin: tsv, in: round.path)
        #expect(stdinTSV.status == 0 && stdinTSV.stdout == run.stdout)
    }

    @Test("with a user: β = 0 is the text order without the user's items; a huge β is the plain recommendation order")
    func personalized() throws {
        let round = try CommandLineTests.Round()
        #expect(try Tool.run("fl-aggregate", ["--model", "m0.safetensors", "-o", "m1.safetensors", "u0.safetensors", "u1.safetensors"], in: round.path).status == 0)
        let items = try Self.writeTable(round)
        try writeAtomically(Self.query.map { "\($0)" }.joined(separator: " ") + "\n", to: round.path + "/q.txt")
        let common = ["--dataset", "ds", "--item-text", "text.safetensors", "--query-vector", "q.txt"]
        let user = ["--model", "m1.safetensors", "--reconstruct", "--user", "1"]
        let text = try Tool.run("fl-recommend", common + ["-k", String(items)], in: round.path)
        let zero = try Tool.run("fl-recommend", common + user + ["--query-weight", "0", "-k", "5"], in: round.path)
        let huge = try Tool.run("fl-recommend", common + user + ["--query-weight", "10000", "-k", "5"], in: round.path)
        let plain = try Tool.run("fl-recommend", user + ["--dataset", "ds", "-k", "5"], in: round.path)
        for r in [text, zero, huge, plain] { #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)") }
        let tables = try DatasetTables(directory: round.path + "/ds", manifest: try DatasetManifest.load(round.path + "/ds"))
        let record = try #require(try readUsers(round.path + "/ds").first { $0.user == tables.users["1"]!.index })
        let own = Set((record.train.items + record.test.items).map { tables.items[Int($0)].id })
        #expect(Self.items(zero.stdout).map(\.item) == Array(Self.items(text.stdout).map(\.item).filter { !own.contains($0) }.prefix(5)))
        #expect(Self.items(zero.stdout).allSatisfy { $0.user == "1" })
        #expect(Self.items(huge.stdout).map(\.item) == Self.items(plain.stdout).map(\.item))
        #expect(Self.items(huge.stdout).map(\.item) != Self.items(zero.stdout).map(\.item))
    }

    /// Made before the search was added, by the commands of `Round` and
    /// `fl-aggregate --model m0.safetensors -o m1.safetensors u0.safetensors u1.safetensors`.
    static let before = """
        user\trank\titem\tscore\ttitle
        1\t1\t72\t0.363893\tStar Night (1972)
        1\t2\t294\t0.362635\tRiver City (1976)
        1\t3\t346\t0.358024\tStar Hidden (1965)
        1\t4\t94\t0.346375\tGolden Iron (2000)
        1\t5\t80\t0.327327\tSilent Hidden (1983)
        7\t1\t497\t0.686676\tWinter Hidden (1997)
        7\t2\t307\t0.581809\tHidden Star (1972)
        7\t3\t302\t0.523102\tSummer Glass (1952)
        7\t4\t362\t0.513014\tStorm Storm (1966)
        7\t5\t477\t0.47782\tEcho Silent (1958)

        """

    /// (With `--bias-shrinkage 0`: the order of the explicit model's own scores, which these
    /// lists were recorded with before explicit models' biases were shrunk for ranking.)
    @Test("without a query, fl-recommend prints exactly what it printed before search existed")
    func unchangedWithoutQuery() throws {
        let round = try CommandLineTests.Round()
        #expect(try Tool.run("fl-aggregate", ["--model", "m0.safetensors", "-o", "m1.safetensors", "u0.safetensors", "u1.safetensors"], in: round.path).status == 0)
        let two = try Tool.run("fl-recommend", ["--model", "m1.safetensors", "--dataset", "ds", "--reconstruct", "--user", "1", "--user", "7", "-k", "5", "--bias-shrinkage", "0"], in: round.path)
        #expect(two.status == 0 && two.stderr.isEmpty)
        #expect(two.stdout == Self.before)
        let all = try Tool.run("fl-recommend", ["--model", "m1.safetensors", "--dataset", "ds", "--reconstruct", "--all", "-k", "3", "--bias-shrinkage", "0"], in: round.path)
        #expect(all.status == 0 && all.stderr.isEmpty, "\(all.stderr)")
        // --all is --user for every user in index order: what it must hold, user by user.
        let lines = all.stdoutLines
        #expect(lines.first == "user\trank\titem\tscore\ttitle")
        let rows = lines.dropFirst().map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.allSatisfy { $0.count == 5 })
        let tables = try DatasetTables(directory: round.path + "/ds", manifest: try DatasetManifest.load(round.path + "/ds"))
        let records = Dictionary(uniqueKeysWithValues: try readUsers(round.path + "/ds").map { ($0.id, $0) })
        let usersInOrder = tables.users.sorted { $0.value.index < $1.value.index }.map(\.key)
        var rowsOf: [String: [[String]]] = [:]
        for row in rows { rowsOf[row[0], default: []].append(row) }
        #expect(rows.map { $0[0] }.reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } } == usersInOrder)
        for user in usersInOrder {
            let listed = rowsOf[user] ?? []
            let own = Set(((records[user]?.train.items ?? []) + (records[user]?.test.items ?? [])).map { tables.items[Int($0)].id })
            #expect(listed.count == min(3, tables.items.count - own.count), "user \(user)")
            #expect(listed.map { $0[1] } == (1...listed.count).map(String.init), "user \(user): ranks")
            let scores = listed.compactMap { Double($0[3]) }
            #expect(scores.count == listed.count && zip(scores, scores.dropFirst()).allSatisfy { $0 >= $1 }, "user \(user): \(scores)")
            #expect(listed.allSatisfy { !own.contains($0[2]) }, "user \(user) is recommended an item of their own")
        }
        // Users 1 and 7 get the first three lines `--user` gave them.
        let single = two.stdoutLines.dropFirst().map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        for user in ["1", "7"] {
            #expect(rowsOf[user] == Array(single.filter { $0[0] == user }.prefix(3)), "user \(user)")
        }
    }

    @Test("a table or query that does not fit: its exit code, one stderr line naming the file, nothing written")
    func mismatches() throws {
        let round = try CommandLineTests.Round()
        _ = try Self.writeTable(round)
        _ = try Self.writeTable(round, name: "longer.safetensors", extraRows: 1)
        _ = try Self.writeTable(round, name: "other.safetensors", datasetId: String(repeating: "ab", count: 32))
        try writeAtomically("[1, 0, 0]\n", to: round.path + "/q3.json")
        try writeAtomically("[1, 0, 0, 0]\n", to: round.path + "/q4.json")
        let before = try round.dir.listing()
        let cases: [(args: [String], code: Int32, file: String)] = [
            (["--item-text", "longer.safetensors", "--query-vector", "q4.json"], 83, "longer.safetensors"),
            (["--item-text", "other.safetensors", "--query-vector", "q4.json"], 86, "other.safetensors"),
            (["--item-text", "text.safetensors", "--query-vector", "q3.json"], 83, "q3.json"),
            (["--item-text", "text.safetensors", "--query-vector", "missing.json"], 66, "missing.json"),
            (["--item-text", "text.safetensors", "--query", "space adventure"], 86, "text.safetensors"),  // encoded by "test", not MiniLM
            (["--item-text", "m0.safetensors", "--query-vector", "q4.json"], 81, "m0.safetensors"),
        ]
        for c in cases {
            let r = try Tool.run("fl-recommend", ["--dataset", "ds", "--model", "m0.safetensors", "--reconstruct", "--user", "1"] + c.args, in: round.path)
            #expect(r.status == c.code, "\(c.args): exit \(r.status), \(r.stderr)")
            #expect(r.stderrLines.count == 1 && r.stderr.hasPrefix("fl-recommend: \(c.file): "), "\(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        #expect(try round.dir.listing() == before)
        for args in [["--query", "x"], ["--query-vector", "q4.json"], ["--item-text", "text.safetensors", "--user", "1"],
                     ["--query", "x", "--query-vector", "q4.json", "--item-text", "text.safetensors"]] {
            let r = try Tool.run("fl-recommend", ["--dataset", "ds", "--model", "m0.safetensors"] + args, in: round.path)
            #expect(r.status == 64 && r.stdout.isEmpty, "\(args)")
        }
    }
}
