import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecReport

/// `fl-report`: a run directory (or several) as one self-contained HTML page, or as text
/// for a terminal, or as JSON lines.
public struct ReportCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-report",
        abstract: "Report a run of fl-rounds: one self-contained HTML page, or text.",
        usage: "fl-report <runs> ... [-o <output>] [--text | --json] [--delta <delta>]",
        discussion: """
            Reads a run directory of fl-rounds: its metrics after each round (metrics.jsonl), \
            what each round cost (rounds.jsonl: wall time, clients, bytes the clients \
            uploaded), the popularity baseline (popularity.jsonl), the privacy ledger \
            (ledger.jsonl, accounted after each release at the run's delta) and the \
            settings it was started with (config). Only metrics.jsonl is required.

            The page has inline SVG charts and CSS, no script and no link to anything, so \
            it opens offline and can be mailed or archived as one file. With several runs \
            their curves are overlaid and the settings that differ are marked. fl-rounds \
            writes RUN/report.html at the end of every run.

            Examples:
              fl-report runs/a -o a.html
              fl-report runs/eps1 runs/eps8 -o compare.html
              fl-report runs/a --text
              fl-report runs/a --json | jq -r '[.round, .rmse] | @tsv'
            """,
        version: fedrecVersion)

    @Argument(help: "Run directories (fl-rounds --run).") var runs: [String]
    @Option(name: [.short, .long], help: "Output file (- for stdout).") var output = "-"
    @Flag(help: "Text for a terminal instead of HTML.") var text = false
    @Option(help: "Account the ledgers at this delta (default: each run's --delta).") var delta: Double?
    @Flag(help: "Write JSON lines (one a round of each run, sorted keys) instead of HTML.") var json = false

    public init() {}

    public func validate() throws {
        if text && json { throw ValidationError("--text and --json are exclusive") }
        if let delta, !(delta > 0 && delta < 1) { throw ValidationError("--delta must be in (0, 1)") }
    }

    public func run() throws {
        try reportingErrors("fl-report") {
            let read = ["metrics.jsonl", "rounds.jsonl", "popularity.jsonl", "ledger.jsonl", "config"]
            try FileRoles(inputs: runs.flatMap { run in read.map { run + "/" + $0 } }, outputs: [output]).check()
            let records = try runs.map { try RunRecord(directory: $0, delta: delta) }
            let document: String
            if json {
                document = records.flatMap(\.roundLines).map { $0.canonicalText + "\n" }.joined()
            } else if text {
                document = TextReport(runs: records).render()
            } else {
                document = HTMLReport(runs: records, generator: fedrecVersion).render()
            }
            if output == "-" {
                try writeStandardOutput(document)
            } else {
                try writeAtomically(document, to: output)
            }
        }
    }
}
