import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecTestSupport
import FedRecSupport

@Suite("fl-partition --feedback: what fl-partition and fl-inspect say a dataset holds")
struct FeedbackCommandTests {
    @Test("ratings partitioned for implicit models say feedback implicit; clicks cannot be explicit")
    func implicitDatasetsSayImplicit() throws {
        let dir = try TemporaryDirectory()
        let detected = try CommandRunner.run("fl-partition", [sampleRatings, "-o", "ds", "--json"], in: dir.path)
        #expect(detected.status == 0)
        #expect(try JSONValue.parse(detected.stdout.trimmingCharacters(in: .whitespacesAndNewlines))["feedback"]?.stringValue == "explicit")

        let implicit = try CommandRunner.run("fl-partition", [sampleRatings, "-o", "imp", "--feedback", "implicit"], in: dir.path)
        #expect(implicit.status == 0 && implicit.stderr.isEmpty)
        // The TSV summary: a header line and a line of values.
        let lines = implicit.stdoutLines.map { $0.split(separator: "\t").map(String.init) }
        #expect(lines.count == 2)
        let column = try #require(lines.first?.firstIndex(of: "feedback"))
        #expect(lines.last?[column] == "implicit")
        let inspect = try CommandRunner.run("fl-inspect", ["imp", "--json"], in: dir.path)
        let manifest = try JSONValue.parse(inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(manifest["feedback"]?.stringValue == "implicit")
        #expect(manifest["rating_scale"] == .array([.number(1), .number(1)]))

        try writeAtomically("user,item,time\n1,2,3\n1,3,4\n", to: dir.path + "/clicks.csv")
        let refused = try CommandRunner.run("fl-partition", ["clicks.csv", "-o", "c", "--feedback", "explicit"], in: dir.path)
        #expect(refused.status == 64 && refused.stderrLines.count == 1 && refused.stderr.contains("clicks.csv"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/c"))
        let bad = try CommandRunner.run("fl-partition", ["clicks.csv", "-o", "c", "--feedback", "ratings"], in: dir.path)
        #expect(bad.status == 64)
    }
}
