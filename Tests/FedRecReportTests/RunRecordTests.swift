import Foundation
import Testing
@testable import FedRecReport
import FedRecMechanisms
import FedRecPrivacy
import FedRecSupport
import FedRecTestSupport

/// A run directory written by hand, as fl-rounds lays one out.
private func writeRun(_ directory: String, metrics: String, rounds: String? = nil, popularity: String? = nil,
                      config: String = "--data=/d\n--objective=wals\n--dp=1\n--epsilon=8\n--delta=1e-6") throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try metrics.write(toFile: directory + "/metrics.jsonl", atomically: true, encoding: .utf8)
    try config.write(toFile: directory + "/config", atomically: true, encoding: .utf8)
    if let rounds { try rounds.write(toFile: directory + "/rounds.jsonl", atomically: true, encoding: .utf8) }
    if let popularity { try popularity.write(toFile: directory + "/popularity.jsonl", atomically: true, encoding: .utf8) }
}

@Suite("Run records: reading a run directory for fl-report")
struct RunRecordTests {
    @Test("metrics, costs, baseline and settings are read; a round logged twice keeps its last line; counts are not metrics")
    func reads() throws {
        let dir = try TemporaryDirectory()
        let run = dir.path + "/run-a"
        try writeRun(run, metrics: """
            {"hr@10":0.1,"ndcg@10":0.05,"objective":"wals","round":1,"users":40}
            {"hr@10":0.2,"ndcg@10":0.07,"objective":"wals","round":2,"users":40}
            {"hr@10":0.25,"ndcg@10":0.08,"objective":"wals","round":2,"users":40}

            """, rounds: """
            {"clients":40,"round":1,"seconds":0.5,"upload_bytes":1200}
            {"clients":null,"round":2,"seconds":0.25,"upload_bytes":null}

            """, popularity: #"{"baseline":"popularity","hr@10":0.15,"ndcg@10":0.06,"round":0,"users":40}"# + "\n")
        let record = try RunRecord(directory: run + "/")
        #expect(record.name == "run-a")
        #expect(record.metricNames == ["ndcg@10", "hr@10"])
        #expect(record.metrics.map(\.round) == [1, 2])
        #expect(record.metrics[1].values == ["hr@10": 0.25, "ndcg@10": 0.08])
        #expect(record.baseline?["hr@10"] == 0.15 && record.baseline?["users"] == nil)
        #expect(record.costs == [.init(round: 1, seconds: 0.5, clients: 40, uploadBytes: 1200), .init(round: 2, seconds: 0.25, clients: nil, uploadBytes: nil)])
        #expect(record.setting("epsilon") == "8" && record.setting("objective") == "wals" && record.setting("train") == nil)
        #expect(record.privacy == nil)
    }

    @Test("epsilon after each round is the accountant's for that many identical releases, at the run's delta, against its budget")
    func privacy() throws {
        let dir = try TemporaryDirectory()
        let run = dir.path + "/private"
        try writeRun(run, metrics: (1...3).map { #"{"rmse":1.0,"round":\#($0)}"# + "\n" }.joined())
        for r in 0..<3 {
            try PrivacyLedger.append(LedgerEntry(round: r, noiseMultiplier: 1.1, sampleRate: 0.01, clip: 1, clients: 100 + r, isPrivate: true),
                                     to: run + "/ledger.jsonl")
        }
        let record = try RunRecord(directory: run)
        let privacy = try #require(record.privacy)
        #expect(privacy.budget == 8 && privacy.spending.delta == 1e-6 && privacy.mechanisms == ["subsampled_gaussian"])
        #expect(privacy.spending.rounds == [0, 1, 2])
        for steps in 1...3 {
            // The independent path: the accountant composes `steps` identical releases itself.
            let expected = try RDPAccountant().epsilon(sampleRate: 0.01, noiseMultiplier: 1.1, steps: steps, delta: 1e-6).epsilon
            #expect(abs(privacy.spending.epsilons[steps - 1] - expected) <= 1e-9 * expected)
            // Release r (round r's training) made model r+1, the metrics of round r+1.
            #expect(record.epsilon(afterRound: steps) == privacy.spending.epsilons[steps - 1])
        }
        #expect(privacy.spending.epsilons == privacy.spending.epsilons.sorted())
        // --delta overrides the run's.
        let other = try RunRecord(directory: run, delta: 1e-3)
        #expect(try #require(other.privacy?.spending.epsilons.last) < privacy.spending.epsilons[2])
    }

    @Test("a test-seeded release makes every later epsilon infinite")
    func testSeeded() throws {
        let entries = (0..<3).map { LedgerEntry(round: $0, noiseMultiplier: 1, sampleRate: 0.1, clip: 1, clients: 5, isPrivate: $0 != 1) }
        let spending = try PrivacySpending(ledger: entries, delta: 1e-5)
        #expect(spending.epsilons[0].isFinite && spending.epsilons[1] == .infinity && spending.epsilons[2] == .infinity)
    }

    @Test("what is missing or malformed is named with its file and line")
    func errors() throws {
        let dir = try TemporaryDirectory()
        #expect(throws: FedRecError(.noInput, file: dir.path + "/none", "is not a run directory (fl-rounds --run)")) {
            try RunRecord(directory: dir.path + "/none")
        }
        let empty = dir.path + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        #expect(throws: FedRecError(.noInput, file: empty + "/metrics.jsonl", "missing: the run has not finished a round yet (or is not a run directory)")) {
            try RunRecord(directory: empty)
        }
        let cut = dir.path + "/cut"
        try writeRun(cut, metrics: #"{"rmse":1.0,"round":1}"# + "\n" + #"{"rmse":0.9,"rou"#)
        #expect(throws: FedRecError(.corrupt, file: cut + "/metrics.jsonl", "line 2: truncated (no newline at the end)")) {
            try RunRecord(directory: cut)
        }
        let noRound = dir.path + "/no-round"
        try writeRun(noRound, metrics: #"{"rmse":1.0}"# + "\n")
        #expect(throws: FedRecError(.badData, file: noRound + "/metrics.jsonl", "line 1: no round number")) {
            try RunRecord(directory: noRound)
        }
        let badCost = dir.path + "/bad-cost"
        try writeRun(badCost, metrics: #"{"rmse":1.0,"round":1}"# + "\n", rounds: #"{"clients":-3,"round":1}"# + "\n")
        #expect(throws: FedRecError(.badData, file: badCost + "/rounds.jsonl", "line 1: clients is not a count")) {
            try RunRecord(directory: badCost)
        }
        let badConfig = dir.path + "/bad-config"
        try writeRun(badConfig, metrics: #"{"rmse":1.0,"round":1}"# + "\n", config: "--dim=4\nnot a setting\n")
        #expect(throws: FedRecError(.badData, file: badConfig + "/config", "line 2: not a --name=value setting")) {
            try RunRecord(directory: badConfig)
        }
        let editedLedger = dir.path + "/edited"
        try writeRun(editedLedger, metrics: #"{"rmse":1.0,"round":1}"# + "\n")
        try #"{"clients":1,"clip":1,"mechanism":"subsampled_gaussian","noise_multiplier":1,"prev":"0","private":true,"round":0,"sample_rate":1,"steps":1}"#
            .appending("\n").write(toFile: editedLedger + "/ledger.jsonl", atomically: true, encoding: .utf8)
        #expect {
            try RunRecord(directory: editedLedger)
        } throws: { error in
            guard let error = error as? FedRecError else { return false }
            return error.failure == .corrupt && error.file == editedLedger + "/ledger.jsonl" && error.message.hasPrefix("line 1:")
        }
    }
}

@Suite("Report text: numbers, axes, markup")
struct ReportTextTests {
    @Test("fixed decimals round half away from zero, with no negative zero and the digits padded")
    func fixed() {
        #expect(NumberText.fixed(2, 3) == "2.000")
        #expect(NumberText.fixed(-1.5, 0) == "-2")
        #expect(NumberText.fixed(0.25, 1) == "0.3")
        #expect(NumberText.fixed(-0.00004, 4) == "0.0000")
        #expect(NumberText.fixed(12.0625, 2) == "12.06")
        #expect(NumberText.fixed(0.0123, 4) == "0.0123")
        #expect(NumberText.fixed(.nan, 2) == "–" && NumberText.fixed(.infinity, 2) == "∞")
        #expect(NumberText.metric(0.123456) == "0.1235" && NumberText.metric(123.456) == "123.46" && NumberText.metric(12345.6) == "12346")
    }

    @Test("counts are grouped by thousands, bytes in decimal units")
    func units() {
        #expect(NumberText.count(0) == "0" && NumberText.count(999) == "999" && NumberText.count(1_234_567) == "1,234,567")
        #expect(NumberText.bytes(999) == "999 B" && NumberText.bytes(2_334_948) == "2.33 MB" && NumberText.bytes(518_992) == "519 kB")
        #expect(NumberText.bytes(45_600_000_000) == "45.6 GB")
    }

    @Test("an axis covers its values with steps of 1, 2 or 5 times a power of ten; rounds take whole steps")
    func axis() {
        let values = Axis(values: [0.812, 0.858], integral: false)
        #expect(abs(values.step - 0.01) < 1e-12 && abs(values.low - 0.81) < 1e-9 && abs(values.high - 0.86) < 1e-9)
        #expect(values.ticks.count == 6)
        let rounds = Axis(values: [1, 20], integral: true)
        #expect(rounds.step == 5 && rounds.low == 0 && rounds.high == 20)
        let one = Axis(values: [3], integral: true)
        #expect(one.low == 2 && one.high == 4 && one.step == 1)
        let flat = Axis(values: [0.5, 0.5], integral: false)
        #expect(flat.low < 0.5 && flat.high > 0.5)
    }

    @Test("markup is escaped in text and attributes")
    func escaping() {
        #expect(escapeMarkup(#"a<b & "c" 'd'>"#) == "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;")
    }

    @Test("a sparkline spans the eight levels from the smallest value to the largest")
    func sparkline() {
        #expect(TextReport.sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█")
        #expect(TextReport.sparkline([0.9, 0.8]) == "█▁")
        #expect(TextReport.sparkline([2, 2, 2]) == "▄▄▄")
    }
}

@Suite("The HTML page")
struct HTMLReportTests {
    @Test("one chart a metric, with the baseline; the privacy chart and budget; settings that differ marked; nothing fetched, no script")
    func page() throws {
        let dir = try TemporaryDirectory()
        let a = dir.path + "/a<&b", b = dir.path + "/b"
        try writeRun(a, metrics: #"{"hr@10":0.1,"ndcg@10":0.05,"round":1}"# + "\n" + #"{"hr@10":0.2,"ndcg@10":0.07,"round":2}"# + "\n",
                     rounds: #"{"clients":40,"round":1,"seconds":0.5,"upload_bytes":1200}"# + "\n",
                     popularity: #"{"hr@10":0.15,"ndcg@10":0.06,"round":0}"# + "\n", config: "--dim=4\n--dp=1\n--epsilon=8\n--delta=1e-5\n")
        try PrivacyLedger.append(LedgerEntry(round: 0, noiseMultiplier: 1.1, sampleRate: 1, clip: 1, clients: 40, isPrivate: true), to: a + "/ledger.jsonl")
        try writeRun(b, metrics: #"{"hr@10":0.12,"ndcg@10":0.06,"round":1}"# + "\n", config: "--dim=8\n--dp=0\n")
        let page = HTMLReport(runs: [try RunRecord(directory: a), try RunRecord(directory: b)], generator: "fedrec test").render()
        func count(_ needle: String) -> Int { page.components(separatedBy: needle).count - 1 }
        // hr@10, ndcg@10; ε; clients, MB, seconds.
        #expect(count("<svg ") == 6)
        #expect(count("<polyline ") == 2 * 2 + 1 + 3)
        #expect(page.contains("popularity (a&lt;&amp;b)") && page.contains(">budget (a&lt;&amp;b)<"))
        #expect(!page.contains("a<&b"))
        #expect(!page.contains("<script") && !page.contains("src=") && !page.contains("href=") && !page.contains("@import"))
        #expect(count("http") == count(#"xmlns="http://www.w3.org/2000/svg""#))
        #expect(page.contains(#"<tr class="differs"><td><code>--dim</code></td><td><code>4</code></td><td><code>8</code></td></tr>"#))
        #expect(page.hasPrefix("<!DOCTYPE html>") && page.hasSuffix("</html>\n"))
        let again = HTMLReport(runs: [try RunRecord(directory: a), try RunRecord(directory: b)], generator: "fedrec test").render()
        #expect(again == page)
    }
}
