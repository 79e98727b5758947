import FedRecCore
import Foundation
import Testing
import FedRecTestSupport
import FedRecSupport
import FedRecFormats

@testable import FedRecText

/// Runs the built `fl-encode` as a shell would.
enum EncodeTool {
    static func run(_ arguments: [String], stdin: String? = nil, in directory: String) throws -> CommandResult {
        try CommandRunner.run("fl-encode", arguments, stdin: stdin, in: directory)
    }
}

/// A scratch directory removed with the value.
final class ScratchDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "fedrec-encode-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path + "/" + name))
    }

    func listing() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }
}

func cosine<A: Collection, B: Collection>(_ a: A, _ b: B) -> Float where A.Element == Float, B.Element == Float {
    var dot: Float = 0, x: Float = 0, y: Float = 0
    for (p, q) in zip(a, b) {
        dot += p * q
        x += p * p
        y += q * q
    }
    return dot / (x.squareRoot() * y.squareRoot())
}

/// A four-item items.tsv: genres, no genres, an empty title, and a title with a comma.
let tinyItems = """
    index\tid\ttitle\tgenres
    0\t10\tToy Story (1995)\tAnimation|Children's|Comedy
    1\t20\tHeat (1995)\t
    2\t30\t\tDrama
    3\t40\tAmerican President, The (1995)\tComedy|Drama|Romance

    """

@Suite(
    "fl-encode with the pretrained model", .serialized,
    .enabled(
        if: ReferencePaths.available,
        "needs models/all-MiniLM-L6-v2 (run `make model`) and ../shared/fixtures/minilm/all-MiniLM-L6-v2.jsonl"))
struct EncodeCommandTests {
    @Test("--json on the fixture's texts: the same input_ids, embeddings at cosine ≥ 0.9999, text echoed")
    func fixtureThroughTheCommand() throws {
        let dir = try ScratchDirectory()
        let cases = try ReferenceFixtureTests.cases()
        // --text keeps every fixture text whole, also the empty one and the one with tabs.
        let arguments = cases.flatMap { ["--text", $0.text] } + ["--json", "--model-dir", ReferencePaths.model, "--batch-size", "5"]
        let result = try EncodeTool.run(arguments, in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty)
        let lines = result.stdoutLines
        try #require(lines.count == cases.count)
        var worst: Float = 1
        for (line, c) in zip(lines, cases) {
            let json = try JSONValue.parse(line)
            #expect(json["text"]?.stringValue == c.text)
            let ids = try #require(json["input_ids"]?.arrayValue).compactMap { $0.intValue.map(Int32.init) }
            #expect(ids == c.ids, "text: \(c.text.prefix(60))")
            let embedding = try #require(json["embedding"]?.arrayValue).compactMap { $0.doubleValue.map(Float.init) }
            #expect(embedding.count == 384)
            let similarity = cosine(embedding, c.embedding)
            worst = min(worst, similarity)
            #expect(similarity >= 0.9999, "text: \(c.text.prefix(60)) cosine \(similarity)")
            // Sorted keys, as every fedrec JSON line.
            #expect(line.hasPrefix("{\"embedding\":[") && line.contains("],\"input_ids\":[") && line.contains("],\"text\":"))
        }
        print("fl-encode --json on the fixture: lowest cosine \(worst)")
    }

    @Test("stdin lines give one TSV line each: the text, then dim values equal to --text's")
    func stdinLines() throws {
        let dir = try ScratchDirectory()
        let result = try EncodeTool.run(["-", "--model-dir", ReferencePaths.model], stdin: "space adventure\r\n\na romantic comedy set in Paris", in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdoutLines
        try #require(lines.count == 3)
        let fields = lines.map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        #expect(fields.map { $0[0] } == ["space adventure", "", "a romantic comedy set in Paris"])
        #expect(fields.allSatisfy { $0.count == 385 })
        let single = try EncodeTool.run(["--text", "space adventure", "--model-dir", ReferencePaths.model], in: dir.path)
        let values = fields[0].dropFirst().compactMap { Float($0) }
        let again = single.stdoutLines[0].split(separator: "\t").dropFirst().compactMap { Float($0) }
        #expect(values.count == 384 && cosine(values, again) > 0.99999)
    }

    @Test("items.tsv → table: shape, metadata, row i = item i's text encoded directly")
    func itemTable() throws {
        let dir = try ScratchDirectory()
        try FileManager.default.createDirectory(atPath: dir.path + "/ds", withIntermediateDirectories: true)
        try dir.write("ds/items.tsv", tinyItems)
        try dir.write("tags.csv", "userId,movieId,tag,timestamp\n1,10,pixar,1\n2,10,Pixar,2\n2,10,\"toys, friendship\",3\n3,99,unknown item,4\n")
        let result = try EncodeTool.run(
            ["ds/items.tsv", "-o", "text.safetensors", "--model-dir", ReferencePaths.model, "--batch-size", "3", "--extra-text", "tags.csv", "--json"],
            in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try JSONValue.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(summary["items"]?.intValue == 4 && summary["dim"]?.intValue == 384 && summary["extra_text_items"]?.intValue == 1)

        let table = try TextEmbeddingTable.load(dir.path + "/text.safetensors")
        #expect(table.items == 4 && table.dim == 384 && table.encoder == "all-MiniLM-L6-v2")
        #expect(table.datasetId == nil)  // no dataset.json beside this items.tsv
        let file = try FedRecFile(path: dir.path + "/text.safetensors", kinds: [.textEmbedding])
        #expect(file.metadata["format"] == "fedrec" && file.metadata["format_version"] == String(FedRecFormat.version) && file.metadata["kind"] == "text_embedding")
        #expect(file.metadata["checksum"]?.hasPrefix("xxh64:") == true)
        #expect(file.metadata["extra_text"] == "tags.csv")
        #expect(Array(file.tensors.tensors.keys) == ["item_text"])
        try file.tensors.require("item_text", .f32, [4, 384])

        let texts = [
            "Toy Story (1995) — Animation, Children's, Comedy — pixar, toys, friendship",
            "Heat (1995)",
            "Drama",
            "American President, The (1995) — Comedy, Drama, Romance",
        ]
        let encoder = try SentenceEncoder(directory: ReferencePaths.model)
        let direct = try encoder.encode(texts, batchSize: 1)
        for i in 0..<4 {
            let similarity = cosine(table.row(i), direct[i * 384..<(i + 1) * 384])
            #expect(similarity > 0.99999, "row \(i): cosine \(similarity) with \(texts[i])")
            // Each row is closer to its own text than to any other item's.
            for j in 0..<4 where j != i {
                #expect(cosine(table.row(i), direct[j * 384..<(j + 1) * 384]) < similarity)
            }
        }
        #expect(try dir.listing() == ["ds", "tags.csv", "text.safetensors"])
    }

    @Test("item texts are built as the fixture's: \"Title — Genre, Genre\" rows match its embeddings")
    func fixtureItems() throws {
        let dir = try ScratchDirectory()
        let movies = try ReferenceFixtureTests.cases().prefix(40)
        var tsv = "index\tid\ttitle\tgenres\n"
        for (i, c) in movies.enumerated() {
            let parts = c.text.components(separatedBy: " — ")
            try #require(parts.count == 2, "fixture text \(c.text)")
            tsv += "\(i)\t\(i + 1)\t\(parts[0])\t\(parts[1].replacingOccurrences(of: ", ", with: "|"))\n"
        }
        try dir.write("items.tsv", tsv)
        let result = try EncodeTool.run(["items.tsv", "-o", "t.safetensors", "--model-dir", ReferencePaths.model], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let table = try TextEmbeddingTable.load(dir.path + "/t.safetensors")
        try #require(table.items == movies.count)
        for (i, c) in movies.enumerated() {
            #expect(cosine(table.row(i), c.embedding) >= 0.9999, "item \(i): \(c.text)")
        }
    }

    @Test("a dataset from fl-partition: dataset_id in the table, the directory works as INPUT")
    func datasetId() throws {
        let dir = try ScratchDirectory()
        try FileManager.default.createDirectory(atPath: dir.path + "/ds", withIntermediateDirectories: true)
        try dir.write("ds/items.tsv", tinyItems)
        try dir.write("ds/dataset.json", """
            {"clients":1,"dataset_id":"abc123","feedback":"explicit","format":"fedrec","format_version":1,"interactions":{"test":0,"train":4},\
            "items":4,"kind":"dataset","rating_scale":[1,5],"shards":[],"users":1}
            """)
        let result = try EncodeTool.run(["ds", "-o", "t.safetensors", "--model-dir", ReferencePaths.model, "--threads", "1"], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.isEmpty)
        let table = try TextEmbeddingTable.load(dir.path + "/t.safetensors")
        #expect(table.datasetId == "abc123" && table.items == 4)
    }
}

/// Failures that need no model: exit code of the class, one stderr line naming the file,
/// no output left behind.
@Suite("fl-encode refuses bad input", .serialized)
struct EncodeErrorTests {
    func expectFailure(_ result: CommandResult, _ status: Int32, mentioning words: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == status, "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderrLines.count == 1, "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        for word in words {
            #expect(result.stderr.contains(word), "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        }
        #expect(result.stdout.isEmpty, sourceLocation: sourceLocation)
    }

    @Test("a missing model is one line that names `make model` (66)")
    func missingModel() throws {
        let dir = try ScratchDirectory()
        try dir.write("items.tsv", tinyItems)
        expectFailure(try EncodeTool.run(["items.tsv", "-o", "t.safetensors", "--model-dir", "no-such-model"], in: dir.path), 66,
                      mentioning: ["fl-encode: no-such-model", "make model"])
        expectFailure(try EncodeTool.run(["--text", "hello", "--model-dir", "no-such-model"], in: dir.path), 66, mentioning: ["make model"])
        #expect(try dir.listing() == ["items.tsv"])
    }

    @Test("a bad items.tsv names the file and line (65); a missing one is 66")
    func badItems() throws {
        let dir = try ScratchDirectory()
        try dir.write("order.tsv", "index\tid\ttitle\tgenres\n0\t1\tA\t\n2\t2\tB\t\n")
        expectFailure(try EncodeTool.run(["order.tsv", "-o", "t.safetensors", "--model-dir", "none"], in: dir.path), 65,
                      mentioning: ["order.tsv", "line 3"])
        try dir.write("short.tsv", "index\tid\ttitle\tgenres\n0\t1\n")
        expectFailure(try EncodeTool.run(["short.tsv", "-o", "t.safetensors", "--model-dir", "none"], in: dir.path), 65,
                      mentioning: ["short.tsv", "line 2"])
        try dir.write("ratings.tsv", "196\t242\t3\t881250949\n")
        expectFailure(try EncodeTool.run(["ratings.tsv", "-o", "t.safetensors", "--model-dir", "none"], in: dir.path), 65,
                      mentioning: ["ratings.tsv", "line 1", "header"])
        expectFailure(try EncodeTool.run(["missing.tsv", "-o", "t.safetensors"], in: dir.path), 66, mentioning: ["missing.tsv"])
        try dir.write("items.tsv", tinyItems)
        try dir.write("tags.csv", "userId,movieId,timestamp\n1,10,5\n")
        expectFailure(try EncodeTool.run(["items.tsv", "--extra-text", "tags.csv", "-o", "t.safetensors", "--model-dir", "none"], in: dir.path), 65,
                      mentioning: ["tags.csv", "line 1", "text column"])
        #expect(try dir.listing() == ["items.tsv", "order.tsv", "ratings.tsv", "short.tsv", "tags.csv"])
    }

    @Test("empty input is 85: no stdin lines, a header-only or empty items.tsv")
    func emptyInput() throws {
        let dir = try ScratchDirectory()
        expectFailure(try EncodeTool.run(["-", "--model-dir", "none"], stdin: "", in: dir.path), 85, mentioning: ["no text"])
        try dir.write("header.tsv", "index\tid\ttitle\tgenres\n")
        expectFailure(try EncodeTool.run(["header.tsv", "-o", "t.safetensors", "--model-dir", "none"], in: dir.path), 85,
                      mentioning: ["header.tsv", "no items"])
        try dir.write("empty.tsv", "")
        expectFailure(try EncodeTool.run(["empty.tsv", "-o", "t.safetensors", "--model-dir", "none"], in: dir.path), 85,
                      mentioning: ["empty.tsv"])
        #expect(try dir.listing() == ["empty.tsv", "header.tsv"])
    }

    @Test("usage errors exit 64; --help has examples and exits 0")
    func usage() throws {
        let dir = try ScratchDirectory()
        #expect(try EncodeTool.run([], in: dir.path).status == 64)
        #expect(try EncodeTool.run(["items.tsv"], in: dir.path).status == 64)  // no -o
        #expect(try EncodeTool.run(["-", "--text", "x"], in: dir.path).status == 64)
        #expect(try EncodeTool.run(["--text", "x", "--extra-text", "tags.csv"], in: dir.path).status == 64)
        #expect(try EncodeTool.run(["--text", "x", "--batch-size", "0"], in: dir.path).status == 64)
        let help = try EncodeTool.run(["--help"], in: dir.path)
        #expect(help.status == 0 && help.stdout.contains("Examples:") && help.stdout.contains("fl-encode ml100k/items.tsv"))
    }
}
