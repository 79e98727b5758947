import ArgumentParser
import FedRecCore

/// `fl-recommend`: top-K items for users.
public struct RecommendCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-recommend",
        abstract: "Recommend the top-K items for users, excluding items they already have.",
        discussion: """
            Output is TSV: user, rank, item (raw id), score, title. Users are named by their \
            raw id (or pseudonym) as in the dataset's users.tsv.

            Examples:
              fl-recommend --model model-0020.safetensors --dataset ml100k --state-dir state --user 196
              cut -f2 ml100k/users.tsv | tail -n +2 | head -5 | fl-recommend --model m.safetensors --dataset ml100k --users - --reconstruct
              fl-recommend --model m.safetensors --dataset ml100k --all -k 5 --reconstruct > recs.tsv
            """)

    @Option(help: "Model checkpoint.") var model: String
    @Option(help: "Dataset directory.") var dataset: String
    @Option(help: "A user id (repeatable).") var user: [String] = []
    @Option(help: "A file of user ids, one per line (- for stdin).") var users: String?
    @Flag(help: "Recommend for every user.") var all = false
    @Option(name: .customShort("k"), help: "Number of items per user.") var k = 10
    @OptionGroup(title: "User parameters") var parameters: UserParameterArguments
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func validate() throws {
        guard k >= 1 else { throw ValidationError("-k must be at least 1") }
        guard all || !user.isEmpty || users != nil else { throw ValidationError("say whom for: --user ID, --users FILE or --all") }
    }

    public func run() throws {
        try reportingErrors("fl-recommend") {
            var wanted: [String]? = all ? nil : user
            if let users {
                let file = try MappedFile(path: users)
                let text = file.withBytes { String(decoding: $0, as: UTF8.self) }
                wanted = (wanted ?? []) + text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
            let manifest = try DatasetManifest.load(dataset)
            let shards = manifest.shards.map { dataset + "/" + $0.file }
            let recommendations = try Recommender.run(modelPath: model, datasetDirectory: dataset, users: wanted, k: k,
                                                      source: try parameters.source(for: shards))
            let tables = try DatasetTables(directory: dataset, manifest: manifest)
            var out = format.json ? "" : "user\trank\titem\tscore\ttitle\n"
            for r in recommendations {
                let item = tables.items[Int(r.item)]
                if format.json {
                    out += JSONValue.object(["user": .string(r.user), "rank": .number(Double(r.rank)), "item": .string(item.id),
                                             "score": .number(Double(r.score)), "title": .string(item.title)]).canonicalText + "\n"
                } else {
                    out += "\(r.user)\t\(r.rank)\t\(item.id)\t\(format6(Double(r.score)))\t\(item.title)\n"
                }
            }
            emit(out)
        }
    }
}

import Foundation
