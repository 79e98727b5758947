import FedRecMechanisms
import FedRecPrivacy
import FedRecSupport

/// What a run directory of `fl-rounds` says about its run, read for `fl-report`: the
/// settings it was started with (`config`), the metrics after each round
/// (`metrics.jsonl`), what each round cost (`rounds.jsonl`: wall time, clients, bytes the
/// clients sent), the popularity baseline (`popularity.jsonl`) and, for a private run, ε
/// spent after each round from its privacy ledger (`ledger.jsonl`) against the budget.
/// Only `metrics.jsonl` is required: runs written before the round records existed, or
/// by hand, report what they have.
public struct RunRecord: Sendable {
    /// One `--name=value` line of the run's `config`, in the file's order.
    public struct Setting: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    /// One round's metrics (`round` and every numeric field of its metrics line).
    public struct RoundMetrics: Sendable, Equatable {
        public var round: Int
        public var values: [String: Double]
    }

    /// What one round cost; nil where the run did not record it.
    public struct RoundCost: Sendable, Equatable {
        public var round: Int
        public var seconds: Double?
        public var clients: Int?
        public var uploadBytes: Int?
    }

    /// A private run's spending: ε at `delta` after each release, against `budget`.
    public struct Privacy: Sendable, Equatable {
        public var spending: PrivacySpending
        /// The run's ε budget (`--epsilon`), when it has one.
        public var budget: Double?
        /// The mechanisms of its releases, in first-use order.
        public var mechanisms: [String]
    }

    /// The run directory as given.
    public var directory: String
    /// Its last path component, the run's name in charts and tables.
    public var name: String
    public var settings: [Setting]
    public var metrics: [RoundMetrics]
    public var costs: [RoundCost]
    /// The popularity baseline's metrics, when the run evaluated it.
    public var baseline: [String: Double]?
    public var privacy: Privacy?

    /// Fields of a metrics line that are counts or labels, not quality metrics.
    static let countFields: Set<String> = ["round", "users", "ratings", "items", "clients", "queries"]

    /// Reads a run directory.
    /// - Parameter delta: δ to account at; default the run's `--delta`, else 1e-5.
    /// - Throws: `.noInput` when the directory or its `metrics.jsonl` is missing;
    ///   `.corrupt` / `.badData` naming the file and line of a malformed record or ledger.
    public init(directory: String, delta: Double? = nil) throws {
        self.directory = directory
        name = baseName(directory)
        guard isDirectory(directory) else {
            throw FedRecError(.noInput, file: directory, "is not a run directory (fl-rounds --run)")
        }
        let metricsPath = directory + "/metrics.jsonl"
        guard fileExists(metricsPath) else {
            throw FedRecError(.noInput, file: metricsPath, "missing: the run has not finished a round yet (or is not a run directory)")
        }
        let configPath = directory + "/config"
        settings = fileExists(configPath) ? try Self.readSettings(configPath) : []
        metrics = try Self.readMetrics(metricsPath)
        let roundsPath = directory + "/rounds.jsonl"
        costs = fileExists(roundsPath) ? try Self.readCosts(roundsPath) : []
        let baselinePath = directory + "/popularity.jsonl"
        baseline = nil
        if fileExists(baselinePath), let last = try JSONLines.read(path: baselinePath).last {
            baseline = try Self.numericFields(last, path: baselinePath, line: 1).filter { !Self.countFields.contains($0.key) }
        }
        let ledgerPath = directory + "/ledger.jsonl"
        privacy = nil
        if fileExists(ledgerPath) {
            let contents = try PrivacyLedger.read(path: ledgerPath)
            let runDelta = try delta ?? setting("delta").map { try Self.number($0, setting: "delta", path: configPath) } ?? 1e-5
            let budget = try setting("epsilon").flatMap { $0.isEmpty ? nil : try Self.number($0, setting: "epsilon", path: configPath) }
            var mechanisms: [String] = []
            for entry in contents.entries where !mechanisms.contains(entry.mechanism) { mechanisms.append(entry.mechanism) }
            privacy = Privacy(
                spending: try inFile(ledgerPath) { try PrivacySpending(ledger: contents.entries, delta: runDelta) },
                budget: budget, mechanisms: mechanisms)
        }
    }

    /// The value of setting `name` (without its `--`), if the run recorded it.
    public func setting(_ name: String) -> String? {
        settings.last { $0.name == name }?.value
    }

    /// The quality metrics the run logged, in a reading order: errors, then ranking
    /// metrics by kind (recall, NDCG, hit rate, MRR), then the rest by name.
    public var metricNames: [String] {
        var names = Set<String>()
        for round in metrics { names.formUnion(round.values.keys) }
        func rank(_ name: String) -> Int {
            for (i, prefix) in ["rmse", "mae", "recall@", "ndcg@", "hr@", "mrr", "auc", "log_loss"].enumerated()
            where name.hasPrefix(prefix) { return i }
            return 100
        }
        return names.sorted { (rank($0), $0) < (rank($1), $1) }
    }

    /// Whether a smaller value of the metric is better (errors and losses).
    public static func lowerIsBetter(_ metric: String) -> Bool {
        metric.hasPrefix("rmse") || metric.hasPrefix("mae") || metric.contains("loss")
    }

    /// The cost record of a round, if any.
    public func cost(round: Int) -> RoundCost? { costs.last { $0.round == round } }

    /// ε spent after a round's release, if the run had one by then.
    public func epsilon(afterRound round: Int) -> Double? {
        guard let spending = privacy?.spending else { return nil }
        // Release r is the sum of round r's training, applied to make model r+1.
        guard let i = spending.rounds.lastIndex(where: { $0 + 1 <= round }) else { return nil }
        return spending.epsilons[i]
    }

    // MARK: reading

    static func readSettings(_ path: String) throws -> [Setting] {
        let file = try MappedFile(path: path)
        let text = file.withBytes { String(decoding: $0, as: UTF8.self) }
        var settings: [Setting] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            guard line.hasPrefix("--"), let equals = line.firstIndex(of: "=") else {
                throw FedRecError(.badData, file: path, "line \(i + 1): not a --name=value setting")
            }
            settings.append(Setting(name: String(line[line.index(line.startIndex, offsetBy: 2)..<equals]),
                                    value: String(line[line.index(after: equals)...])))
        }
        return settings
    }

    static func readMetrics(_ path: String) throws -> [RoundMetrics] {
        var rounds: [RoundMetrics] = []
        for (i, line) in try JSONLines.read(path: path).enumerated() {
            var values = try numericFields(line, path: path, line: i + 1)
            let round = try roundNumber(line, path: path, line: i + 1)
            for key in countFields { values.removeValue(forKey: key) }
            // A round evaluated again (a resumed run) replaces its earlier line.
            rounds.removeAll { $0.round == round }
            rounds.append(RoundMetrics(round: round, values: values))
        }
        return rounds.sorted { $0.round < $1.round }
    }

    static func readCosts(_ path: String) throws -> [RoundCost] {
        var costs: [RoundCost] = []
        for (i, line) in try JSONLines.read(path: path).enumerated() {
            let round = try roundNumber(line, path: path, line: i + 1)
            func count(_ key: String) throws -> Int? {
                guard let value = line[key], value != .null else { return nil }
                guard let number = value.doubleValue, number >= 0, number < 1e15, number.rounded() == number else {
                    throw FedRecError(.badData, file: path, "line \(i + 1): \(key) is not a count")
                }
                return Int(number)
            }
            var seconds: Double?
            if let value = line["seconds"], value != .null {
                guard let number = value.doubleValue, number >= 0, number.isFinite else {
                    throw FedRecError(.badData, file: path, "line \(i + 1): seconds is not a duration")
                }
                seconds = number
            }
            costs.removeAll { $0.round == round }
            costs.append(RoundCost(round: round, seconds: seconds, clients: try count("clients"), uploadBytes: try count("upload_bytes")))
        }
        return costs.sorted { $0.round < $1.round }
    }

    static func numericFields(_ line: JSONValue, path: String, line number: Int) throws -> [String: Double] {
        guard let object = line.objectValue else {
            throw FedRecError(.badData, file: path, "line \(number): not a JSON object")
        }
        var values: [String: Double] = [:]
        for (key, value) in object {
            if let d = value.doubleValue, d.isFinite { values[key] = d }
        }
        return values
    }

    static func roundNumber(_ line: JSONValue, path: String, line number: Int) throws -> Int {
        guard let round = line["round"]?.doubleValue, round >= 0, round < 1e9, round.rounded() == round else {
            throw FedRecError(.badData, file: path, "line \(number): no round number")
        }
        return Int(round)
    }

    static func number(_ text: String, setting: String, path: String) throws -> Double {
        guard let value = Double(text), value.isFinite, value > 0 else {
            throw FedRecError(.badData, file: path, "--\(setting)=\(text) is not a positive number")
        }
        return value
    }
}
