import FedRecSupport

/// `fl-report --text`: a run for a terminal. Per run, a table of its rounds (metrics, ε
/// spent, clients, upload, seconds), a sparkline of each metric with its first, last and
/// best value, the popularity baseline and the privacy spending.
public struct TextReport {
    public var runs: [RunRecord]

    public init(runs: [RunRecord]) { self.runs = runs }

    public func render() -> String {
        runs.map(block).joined(separator: "\n")
    }

    private func block(_ run: RunRecord) -> String {
        var out = "run \(run.name) (\(run.directory))"
        let described = ["objective", "dim", "train", "server"].compactMap { name in
            run.setting(name).flatMap { $0.isEmpty ? nil : "\(name) \($0)" }
        }
        if !described.isEmpty { out += "\n  " + described.joined(separator: "; ") }
        out += "\n\n"
        let metrics = run.metricNames
        let hasPrivacy = run.privacy != nil, hasCosts = !run.costs.isEmpty
        var header = ["round"] + metrics
        if hasPrivacy { header.append("epsilon") }
        if hasCosts { header += ["clients", "upload", "seconds"] }
        var rows: [[String]] = []
        for round in run.metrics {
            var row = [String(round.round)] + metrics.map { round.values[$0].map(NumberText.metric) ?? "–" }
            if hasPrivacy { row.append(run.epsilon(afterRound: round.round).map(NumberText.metric) ?? "–") }
            if hasCosts {
                let cost = run.cost(round: round.round)
                row.append(cost?.clients.map(NumberText.count) ?? "–")
                row.append(cost?.uploadBytes.map(NumberText.bytes) ?? "–")
                row.append(cost?.seconds.map { NumberText.fixed($0, 3) } ?? "–")
            }
            rows.append(row)
        }
        out += Self.aligned([header] + rows)
        out += "\n"
        for metric in metrics {
            let values = run.metrics.compactMap { $0.values[metric] }
            guard let first = values.first, let last = values.last else { continue }
            let lower = RunRecord.lowerIsBetter(metric)
            let best = (lower ? values.min() : values.max()) ?? last
            out += "\(metric) \(Self.sparkline(values)) \(NumberText.metric(first)) → \(NumberText.metric(last))"
            out += " (best \(NumberText.metric(best)); \(lower ? "lower" : "higher") is better)"
            if let baseline = run.baseline?[metric] { out += "; popularity \(NumberText.metric(baseline))" }
            out += "\n"
        }
        if let privacy = run.privacy {
            let spent = privacy.spending.epsilons.last.map(NumberText.metric) ?? "0"
            out += "privacy: epsilon \(spent)"
            if let budget = privacy.budget { out += " of \(NumberText.metric(budget))" }
            out += " at delta \(privacy.spending.delta) after \(privacy.spending.rounds.count) releases"
            out += " (\(privacy.mechanisms.joined(separator: ", ")))"
            if privacy.spending.epsilons.contains(.infinity) { out += "; a release was test-seeded: no privacy" }
            out += "\n"
        }
        return out
    }

    /// Columns padded to a common width, two spaces apart, no trailing spaces.
    static func aligned(_ rows: [[String]]) -> String {
        var widths: [Int] = []
        for row in rows {
            for (i, cell) in row.enumerated() {
                if i >= widths.count { widths.append(0) }
                widths[i] = max(widths[i], cell.count)
            }
        }
        return rows.map { row in
            var line = row.enumerated().map { $1 + String(repeating: " ", count: widths[$0] - $1.count) }.joined(separator: "  ")
            while line.last == " " { line.removeLast() }
            return line + "\n"
        }.joined()
    }

    /// Eight levels of block characters from the smallest value to the largest.
    static func sparkline(_ values: [Double]) -> String {
        let blocks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
        guard let low = values.min(), let high = values.max() else { return "" }
        guard high > low else { return String(repeating: blocks[3], count: values.count) }
        return String(values.map { blocks[min(7, Int(($0 - low) / (high - low) * 7.999))] })
    }
}

extension RunRecord {
    /// One JSON object a round, for `fl-report --json`: the run's name and directory, the
    /// round, its metrics, ε spent after it, and its cost (what the run recorded).
    public var roundLines: [JSONValue] {
        metrics.map { round in
            var object: [String: JSONValue] = ["run": .string(name), "directory": .string(directory), "round": .number(Double(round.round))]
            for (metric, value) in round.values { object[metric] = .number(value) }
            if let epsilon = epsilon(afterRound: round.round) {
                object["epsilon"] = epsilon.isFinite ? .number(epsilon) : .string("inf")
            }
            if let cost = cost(round: round.round) {
                if let seconds = cost.seconds { object["seconds"] = .number(seconds) }
                if let clients = cost.clients { object["clients"] = .number(Double(clients)) }
                if let bytes = cost.uploadBytes { object["upload_bytes"] = .number(Double(bytes)) }
            }
            return .object(object)
        }
    }
}
