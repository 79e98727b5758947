import FedRecCore
import Foundation
import Testing
import FedRecTestSupport
import FedRecText

/// Runs a built fl-* command with stdin (the shared runner).
func runTool(_ name: String, _ arguments: [String], stdin: String? = nil, in directory: String) throws -> CommandResult {
    try CommandRunner.run(name, arguments, stdin: stdin, in: directory)
}

@Suite(
    "fl-recommend --query with the pretrained encoder", .serialized,
    .enabled(if: ReferencePaths.available, "needs models/all-MiniLM-L6-v2 (run `make model`)"))
struct SearchQueryTests {
    @Test("--query TEXT ranks as --query-vector of `fl-encode --text TEXT --json` does, with and without a user")
    func queryMatchesVector() throws {
        let dir = try ScratchDirectory()
        try dir.write("movies.csv", """
            movieId,title,genres
            1,Toy Story (1995),Animation|Children|Comedy
            2,Star Wars (1977),Action|Adventure|Sci-Fi
            3,Heat (1995),Action|Crime|Thriller
            4,Sense and Sensibility (1995),Drama|Romance
            5,Apollo 13 (1995),Adventure|Drama

            """)
        try dir.write("ratings.csv", "userId,movieId,rating,timestamp\n1,1,5,1\n1,3,4,2\n1,4,3,3\n2,2,5,1\n2,5,4,2\n2,1,2,3\n3,3,5,1\n3,4,4,2\n3,5,1,3\n")
        for (tool, args) in [
            ("fl-partition", ["ratings.csv", "--items", "movies.csv", "-o", "ds", "--split", "ratio", "--seed", "1"]),
            ("fl-encode", ["ds/items.tsv", "-o", "text.safetensors", "--model-dir", ReferencePaths.model]),
            ("fl-init", ["--dataset", "ds", "--objective", "wals", "--dim", "4", "-o", "m.safetensors"]),
        ] {
            let r = try runTool(tool, args, in: dir.path)
            try #require(r.status == 0, "\(tool): \(r.stderr)")
        }
        let vector = try runTool("fl-encode", ["--text", "space adventure", "--json", "--model-dir", ReferencePaths.model], in: dir.path)
        try #require(vector.status == 0)
        let search = ["--dataset", "ds", "--item-text", "text.safetensors", "-k", "5", "--model-dir", ReferencePaths.model]
        let text = try runTool("fl-recommend", search + ["--query", "space adventure"], in: dir.path)
        let textVector = try runTool("fl-recommend", search + ["--query-vector", "-"], stdin: vector.stdout, in: dir.path)
        #expect(text.status == 0 && text.stderr.isEmpty, "\(text.stderr)")
        #expect(text.stdout == textVector.stdout)
        // The space film first by text alone.
        #expect(text.stdout.split(separator: "\n").dropFirst().first?.contains("Star Wars") == true)
        let user = ["--model", "m.safetensors", "--reconstruct", "--algorithm", "als", "--user", "1"]
        let personal = try runTool("fl-recommend", search + user + ["--query", "space adventure"], in: dir.path)
        let personalVector = try runTool("fl-recommend", search + user + ["--query-vector", "-"], stdin: vector.stdout, in: dir.path)
        #expect(personal.status == 0 && personal.stdout == personalVector.stdout, "\(personal.stderr)")
        #expect(!personal.stdout.contains("Toy Story"))  // user 1's own item
    }

    @Test("items and query must share an adapter: a table encoded with one refuses a query without it or with another (86)")
    func adapterMustMatch() throws {
        let dir = try ScratchDirectory()
        try dir.write("movies.csv", "movieId,title,genres\n1,Toy Story (1995),Animation\n2,Star Wars (1977),Sci-Fi\n")
        try dir.write("ratings.csv", "userId,movieId,rating,timestamp\n1,1,5,1\n1,2,4,2\n2,2,5,1\n2,1,2,3\n")
        let base = try BertEncoder(directory: try ModelDirectory(path: ReferencePaths.model))
        try LoRAAdapter(config: LoRAConfig(seed: 1), for: base).write(to: dir.path + "/a.safetensors")
        try LoRAAdapter(config: LoRAConfig(seed: 2), for: base).write(to: dir.path + "/b.safetensors")
        for (tool, args) in [
            ("fl-partition", ["ratings.csv", "--items", "movies.csv", "-o", "ds", "--split", "ratio", "--seed", "1"]),
            ("fl-encode", ["ds/items.tsv", "-o", "text.safetensors", "--model-dir", ReferencePaths.model, "--adapter", "a.safetensors"]),
        ] {
            let r = try runTool(tool, args, in: dir.path)
            try #require(r.status == 0, "\(tool): \(r.stderr)")
        }
        let search = ["--dataset", "ds", "--item-text", "text.safetensors", "-k", "2", "--model-dir", ReferencePaths.model, "--query", "space"]
        let same = try runTool("fl-recommend", search + ["--adapter", "a.safetensors"], in: dir.path)
        #expect(same.status == 0, "\(same.stderr)")
        for other in [[], ["--adapter", "b.safetensors"]] {
            let refused = try runTool("fl-recommend", search + other, in: dir.path)
            #expect(refused.status == FailureClass.mismatch.rawValue, "\(refused.stderr)")
            #expect(refused.stderr.hasPrefix("fl-recommend: text.safetensors: was encoded with adapter a.safetensors (sha256 "))
            #expect(refused.stderr.split(separator: "\n").count == 1)
        }
    }
}
