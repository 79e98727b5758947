// search-bench: personalized-search quality on queries with a known target item, through
// the library code fl-recommend --query uses (PersonalizedSearch, Recommender.forEachUser).
// Run by bench/quality-search; not a fedrec command.
//
//   search-bench --dataset DIR --model M --item-text T --queries Q.tsv --betas 0,0.1,…
//                [--model-dir DIR] [--adapter A] [--l2 5] [--alpha 5] [-k 10]
// (--adapter: a LoRA adapter or text-lora checkpoint applied to the query encoder; the
// item table must have been encoded with the same one, fl-encode --adapter.)
//
// Q.tsv: user id, item id, query text (tab-separated, no header). Every query is ranked
// over the whole catalogue and nothing is excluded (a user tags items they usually rated,
// so excluding rated items would often remove the target). User parameters are rebuilt
// from the dataset's training events with the implicit-ALS solve (--l2, --alpha), as
// fl-recommend --reconstruct does. One JSON line per result (sorted keys):
//   set "text-all": text-only over every query whose item is in the catalogue;
//   set "personalized", per β: queries whose user has training events (β = 0 is text-only);
//   set "unrated", per β: those of them whose target the user has not rated in training,
//     ranked with the user's rated items excluded (as fl-recommend does).
import FedRecCore
import FedRecText
import Foundation
import FedRecSupport
import FedRecFormats
import FedRecData
import FedRecTraining
import FedRecEvaluation

func option(_ name: String, _ args: inout [String]) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    defer { args.removeSubrange(i...(i + 1)) }
    return args[i + 1]
}
func fail(_ message: String, _ code: Int32 = 64) -> Never {
    FileHandle.standardError.write(("search-bench: " + message + "\n").data(using: .utf8)!)
    exit(code)
}
var args = Array(CommandLine.arguments.dropFirst())
guard let dataset = option("--dataset", &args), let modelPath = option("--model", &args),
      let itemText = option("--item-text", &args), let queriesPath = option("--queries", &args) else {
    fail("usage: search-bench --dataset DIR --model M --item-text T --queries Q.tsv --betas B,B,… [--model-dir DIR] [--l2 L] [--alpha A] [-k K]")
}
let betas = (option("--betas", &args) ?? "0").split(separator: ",").compactMap { Float($0) }
let modelDir = option("--model-dir", &args) ?? "models/all-MiniLM-L6-v2"
let adapter = option("--adapter", &args)
let k = Int(option("-k", &args) ?? "") ?? 10
var training = TrainingOptions()
training.algorithm = .als
training.userParameters = .reconstruct
training.l2 = Float(option("--l2", &args) ?? "") ?? 5
training.alpha = Float(option("--alpha", &args) ?? "") ?? 5

struct Query { var user: String; var item: Int32; var text: Int }

do {
    let manifest = try DatasetManifest.load(dataset)
    let tables = try DatasetTables(directory: dataset, manifest: manifest)
    var itemIndex: [String: Int32] = [:]
    for (i, item) in tables.items.enumerated() { itemIndex[item.id] = Int32(i) }
    let table = try TextEmbeddingTable.load(itemText)
    try table.requireAligned(with: manifest)
    let search = PersonalizedSearch(table: table)

    // Queries; texts embedded once each.
    let file = try MappedFile(path: queriesPath)
    var texts: [String] = [], textIndex: [String: Int] = [:]
    var queries: [Query] = [], outside = 0
    for line in String(decoding: file.bytes, as: UTF8.self).split(separator: "\n") {
        let f = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard f.count == 3 else { fail("\(queriesPath): a line without 3 fields", 65) }
        guard let item = itemIndex[f[1]] else { outside += 1; continue }
        let t = textIndex[f[2]] ?? { texts.append(f[2]); textIndex[f[2]] = texts.count - 1; return texts.count - 1 }()
        queries.append(Query(user: f[0], item: item, text: t))
    }
    let encoder = try SentenceEncoder(directory: modelDir, adapter: adapter)
    let vectors = try encoder.encode(texts)
    let similarity = try (0..<texts.count).map { t in
        try search.similarities(to: Array(vectors[t * encoder.dimension..<(t + 1) * encoder.dimension]))
    }
    let noneExcluded = [Bool](repeating: false, count: manifest.items)

    func line(_ set: String, _ beta: Float?, _ m: RankingMetrics, _ users: Int, macro: [RankingMetrics] = []) -> String {
        var o: [String: JSONValue] = ["set": .string(set), "queries": .number(Double(m.users)), "users": .number(Double(users)),
                                      "hr@\(k)": .number(m.hitRate), "ndcg@\(k)": .number(m.meanNDCG), "mrr": .number(m.mrr)]
        if let beta { o["beta"] = .number(Double(beta)) }
        let perUser = macro.filter { $0.users > 0 }
        if !perUser.isEmpty {  // each user weighs the same, however many queries they made
            o["macro_hr@\(k)"] = .number(perUser.reduce(0) { $0 + $1.hitRate } / Double(perUser.count))
            o["macro_ndcg@\(k)"] = .number(perUser.reduce(0) { $0 + $1.meanNDCG } / Double(perUser.count))
        }
        if set == "text-all" { o["outside_catalogue"] = .number(Double(outside)) }
        return JSONValue.object(o).canonicalText
    }

    var textAll = RankingMetrics(k: k)
    var textUsers = Set<String>()
    for q in queries {
        similarity[q.text].withUnsafeBufferPointer { s in
            noneExcluded.withUnsafeBufferPointer { ex in textAll.addFullRanking(scores: s, excluded: ex, relevant: [q.item]) }
        }
        textUsers.insert(q.user)
    }
    print(line("text-all", nil, textAll, textUsers.count))

    // Personalized: users the dataset has (they had ratings before the cut).
    let byUser = Dictionary(grouping: queries.filter { tables.users[$0.user] != nil }, by: \.user)
    var personalized = betas.map { _ in RankingMetrics(k: k) }
    var unrated = betas.map { _ in RankingMetrics(k: k) }
    var unratedUsers = Set<String>(), trainedUsers = Set<String>()
    var personalizedByUser: [[RankingMetrics]] = betas.map { _ in [] }, unratedByUser: [[RankingMetrics]] = betas.map { _ in [] }
    let source = UserParameterSource(mode: .reconstruct, states: [], training: training)
    try Recommender.forEachUser(modelPath: modelPath, dataset: try DatasetDirectory(path: dataset), users: byUser.keys.sorted(), source: source) { user, record, preference in
        guard !record.train.isEmpty else { return }  // in the dataset only through later (test) events
        trainedUsers.insert(user)
        var excluded = noneExcluded
        for item in record.train.items { excluded[Int(item)] = true }
        var mine = betas.map { _ in RankingMetrics(k: k) }, mineUnrated = mine
        defer {
            for b in betas.indices {
                personalized[b].merge(mine[b])
                unrated[b].merge(mineUnrated[b])
                personalizedByUser[b].append(mine[b])
                unratedByUser[b].append(mineUnrated[b])
            }
        }
        for q in byUser[user] ?? [] {
            for (b, beta) in betas.enumerated() {
                let scores = PersonalizedSearch.combine(similarity: similarity[q.text], preference: preference, beta: beta)
                scores.withUnsafeBufferPointer { s in
                    noneExcluded.withUnsafeBufferPointer { ex in mine[b].addFullRanking(scores: s, excluded: ex, relevant: [q.item]) }
                    if !excluded[Int(q.item)] {
                        excluded.withUnsafeBufferPointer { ex in mineUnrated[b].addFullRanking(scores: s, excluded: ex, relevant: [q.item]) }
                    }
                }
            }
            if !excluded[Int(q.item)] { unratedUsers.insert(user) }
        }
    }
    for (b, beta) in betas.enumerated() { print(line("personalized", beta, personalized[b], trainedUsers.count, macro: personalizedByUser[b])) }
    for (b, beta) in betas.enumerated() { print(line("unrated", beta, unrated[b], unratedUsers.count, macro: unratedByUser[b])) }
} catch let error as FedRecError {
    fail("\(error)", error.failure.rawValue)
}
