/// `fl-report`'s page: one self-contained HTML file (inline CSS and SVG; no script, no
/// network) for one run or several overlaid: a summary table, the metrics over rounds with
/// the popularity baseline where the run evaluated it, ε spent after each round against
/// the budget, clients, upload bytes and wall time per round, and the runs' settings with
/// the ones that differ between runs marked.
public struct HTMLReport {
    public var runs: [RunRecord]
    /// Who wrote the page (the release and its format version), printed at its foot.
    public var generator: String

    public init(runs: [RunRecord], generator: String) {
        self.runs = runs
        self.generator = generator
    }

    public func render() -> String {
        let names = runs.map(\.name)
        let title = runs.count == 1 ? "fedrec run \(names[0])" : "fedrec runs \(names.joined(separator: ", "))"
        var page = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escapeMarkup(title))</title>
            <style>\(Self.style)</style>
            </head>
            <body>
            <h1>\(escapeMarkup(title))</h1>

            """
        page += legend()
        page += "<h2>Summary</h2>\n" + summaryTable()
        let quality = metricNames
        if !quality.isEmpty {
            page += "<h2>Quality over rounds</h2>\n<div class=\"charts\">\n"
            for metric in quality { page += figure(qualityChart(metric)) }
            page += "</div>\n"
        }
        if runs.contains(where: { $0.privacy != nil }) {
            page += "<h2>Privacy</h2>\n" + privacyNote() + "<div class=\"charts\">\n" + figure(privacyChart()) + "</div>\n"
        }
        let costCharts = [
            costChart("Clients per round", "clients") { $0.clients.map(Double.init) },
            costChart("Uploaded per round (MB)", "MB") { $0.uploadBytes.map { Double($0) / 1e6 } },
            costChart("Wall time per round (s)", "seconds") { $0.seconds },
        ].filter { !$0.isEmpty }
        if !costCharts.isEmpty {
            page += "<h2>Cost per round</h2>\n<div class=\"charts\">\n"
            for chart in costCharts { page += figure(chart) }
            page += "</div>\n"
        }
        page += "<h2>Settings</h2>\n" + settingsTable()
        page += "<footer>Written by \(escapeMarkup(generator)) from \(runs.map { "<code>\(escapeMarkup($0.directory))</code>" }.joined(separator: ", ")).</footer>\n"
        return page + "</body>\n</html>\n"
    }

    // MARK: parts

    /// The metrics of every run, each once, in the first run's reading order.
    private var metricNames: [String] {
        runs.flatMap(\.metricNames).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
    }

    private func swatch(_ i: Int) -> String {
        #"<span class="swatch" style="background:\#(LineChart.palette[i % LineChart.palette.count])"></span>"#
    }

    private func legend() -> String {
        guard runs.count > 1 else { return "" }
        return "<p class=\"legend\">" + runs.enumerated().map { swatch($0) + escapeMarkup($1.name) }.joined(separator: " ") + "</p>\n"
    }

    private func figure(_ chart: LineChart) -> String {
        "<figure>" + chart.svg() + "</figure>\n"
    }

    private func qualityChart(_ metric: String) -> LineChart {
        let better = RunRecord.lowerIsBetter(metric) ? "lower is better" : "higher is better"
        var chart = LineChart(title: "\(metric) (\(better))", yLabel: metric, series: [])
        for (i, run) in runs.enumerated() {
            let points = run.metrics.compactMap { round in round.values[metric].map { (x: Double(round.round), y: $0) } }
            chart.series.append(.init(name: run.name, color: i, points: points))
            if let baseline = run.baseline?[metric] {
                chart.addReference("popularity", run: run.name, color: i, y: baseline, runs: runs.count)
            }
        }
        return chart
    }

    private func privacyChart() -> LineChart {
        var chart = LineChart(title: "ε spent after each round", yLabel: "ε", series: [], fromZero: true)
        for (i, run) in runs.enumerated() {
            guard let privacy = run.privacy else { continue }
            let points = zip(privacy.spending.rounds, privacy.spending.epsilons)
                .filter { $0.1.isFinite }.map { (x: Double($0.0 + 1), y: $0.1) }
            chart.series.append(.init(name: run.name, color: i, points: points))
            if let budget = privacy.budget {
                chart.addReference("budget", run: run.name, color: i, y: budget, runs: runs.count)
            }
        }
        return chart
    }

    private func privacyNote() -> String {
        var items = ""
        for run in runs {
            guard let privacy = run.privacy else { continue }
            let spent = privacy.spending.epsilons.last.map(NumberText.metric) ?? "0"
            let budget = privacy.budget.map { " of a budget of \(NumberText.metric($0))" } ?? ""
            var line = "<li>\(escapeMarkup(run.name)): ε = \(spent)\(budget) at δ = \(privacy.spending.delta) after "
            line += "\(privacy.spending.rounds.count) releases (\(escapeMarkup(privacy.mechanisms.joined(separator: ", "))))"
            if privacy.spending.epsilons.contains(where: { $0 == .infinity }) {
                line += "; <strong>a release was noised from a test seed: no privacy</strong>"
            }
            items += line + "</li>\n"
        }
        return "<ul class=\"privacy\">\n" + items + "</ul>\n"
    }

    private func costChart(_ title: String, _ label: String, _ value: (RunRecord.RoundCost) -> Double?) -> LineChart {
        var chart = LineChart(title: title, yLabel: label, series: [], fromZero: true)
        for (i, run) in runs.enumerated() {
            let points = run.costs.compactMap { cost in value(cost).map { (x: Double(cost.round), y: $0) } }
            chart.series.append(.init(name: run.name, color: i, points: points))
        }
        return chart
    }

    private func summaryTable() -> String {
        let metrics = metricNames
        var head = "<tr><th>run</th><th>rounds</th>"
        for metric in metrics { head += "<th>\(escapeMarkup(metric))</th>" }
        head += "<th>ε spent</th><th>clients a round</th><th>uploaded a round</th><th>time a round</th></tr>\n"
        var body = ""
        for (i, run) in runs.enumerated() {
            var row = "<tr><td>\(swatch(i))\(escapeMarkup(run.name))</td><td>\(run.metrics.last.map { String($0.round) } ?? "0")</td>"
            for metric in metrics {
                let series = run.metrics.compactMap { round in round.values[metric].map { (round.round, $0) } }
                guard let last = series.last else { row += "<td>–</td>"; continue }
                let lower = RunRecord.lowerIsBetter(metric)
                let best = series.min { lower ? $0.1 < $1.1 : $0.1 > $1.1 } ?? last
                var cell = NumberText.metric(last.1)
                if best.0 != last.0 { cell += " <small>(best \(NumberText.metric(best.1)), round \(best.0))</small>" }
                if let baseline = run.baseline?[metric] { cell += " <small>popularity \(NumberText.metric(baseline))</small>" }
                row += "<td>\(cell)</td>"
            }
            if let privacy = run.privacy, let spent = privacy.spending.epsilons.last {
                row += "<td>\(NumberText.metric(spent))\(privacy.budget.map { " / \(NumberText.metric($0))" } ?? "")</td>"
            } else {
                row += "<td>– <small>(not private)</small></td>"
            }
            row += "<td>\(median(run.costs.compactMap(\.clients).map(Double.init)).map { NumberText.count(Int($0)) } ?? "–")</td>"
            row += "<td>\(median(run.costs.compactMap(\.uploadBytes).map(Double.init)).map { NumberText.bytes(Int($0)) } ?? "–")</td>"
            row += "<td>\(median(run.costs.compactMap(\.seconds)).map(NumberText.seconds) ?? "–")</td></tr>\n"
            body += row
        }
        return "<table>\n" + head + body + "</table>\n<p class=\"note\">Per-round figures are medians over the run's rounds.</p>\n"
    }

    private func settingsTable() -> String {
        var names: [String] = []
        for run in runs { for setting in run.settings where !names.contains(setting.name) { names.append(setting.name) } }
        guard !names.isEmpty else { return "<p class=\"note\">The run recorded no settings (no <code>config</code>).</p>\n" }
        var table = "<table class=\"settings\">\n<tr><th>setting</th>"
        for run in runs { table += "<th>\(escapeMarkup(run.name))</th>" }
        table += "</tr>\n"
        for name in names {
            let values = runs.map { $0.setting(name) ?? "" }
            let differs = runs.count > 1 && Set(values).count > 1
            table += differs ? "<tr class=\"differs\">" : "<tr>"
            table += "<td><code>--\(escapeMarkup(name))</code></td>"
            for value in values { table += "<td><code>\(escapeMarkup(value))</code></td>" }
            table += "</tr>\n"
        }
        return table + "</table>\n" + (runs.count > 1 ? "<p class=\"note\">Marked rows differ between the runs.</p>\n" : "")
    }

    private func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static let style = """
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1180px;padding:0 1em;color:#222}\
        h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}\
        table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
        th{background:#f4f4f4}tr.differs td{background:#fff4d6}small{color:#666}code{font-size:.92em}\
        .charts{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;border:1px solid #e4e4e4;border-radius:4px}\
        .swatch{display:inline-block;width:.9em;height:.9em;border-radius:2px;margin:0 .35em 0 .6em;vertical-align:-.1em}\
        .note,footer{color:#666;font-size:.9em}footer{margin-top:2em}\
        svg text{font:11px system-ui,sans-serif;fill:#444}svg .chart-title{font-size:13px;font-weight:600;fill:#222}\
        svg .grid{stroke:#eee}svg .frame{fill:none;stroke:#bbb}svg .series{fill:none;stroke-width:2}\
        svg .reference{stroke-dasharray:5 4;stroke-width:1.5}svg .reference-label{font-size:11px}
        """
}
