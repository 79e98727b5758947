import ArgumentParser
import FedRecCLI
import FedRecCore
import FedRecText
import FedRecSupport
import FedRecFormats
import FedRecData
import FedRecTraining
import FedRecEvaluation
import FedRecModel

/// `fl-recommend`: top-K items for users, or for a search query (personalized when users
/// are given). It lives beside `fl-encode` because `--query` runs the text encoder.
public struct RecommendCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-recommend",
        abstract: "Recommend the top-K items for users, or search items by text, personalized for users.",
        discussion: """
            Output is TSV: user, rank, item (raw id), score, title. Users are named by their \
            raw id (or pseudonym) as in the dataset's users.tsv. The users' own items (train \
            and test) are never recommended. A CTR model (lr, fm) ranks by predicted click \
            probability from the user's own features (score: that probability).

            With an explicit-rating (mse) model, an item's bias counts by how many ratings \
            support it: items are ranked by b_i·n_i/(n_i + K) + p_u·q_i, n_i the item's \
            training ratings and K --bias-shrinkage (default 25, Koren 2008's λ₂), so an \
            item rated 5 by a handful of users does not top every list; the score column is \
            that score. On ML-100K u1 it takes the 943 top-10 lists from 246 to 418 distinct \
            items and HR@10 (u1.test ratings ≥ 4) from 0.31 to 0.60; an implicit model of \
            the same data reaches 0.91 (bench/RESULTS.md, "Top-N lists from an explicit \
            model").

            Search: --query TEXT (embedded with the encoder of --model-dir) or --query-vector \
            FILE (a line of `fl-encode --text TEXT --json`) ranks items by \
            cos(query, item text) + β · z, where the item texts come from --item-text (an \
            `fl-encode` table of the dataset) and z is the user's model score b_i + p_u·q_i \
            standardised over the catalogue (mean 0, std 1 for that user); β is \
            --query-weight (default 0.1, chosen on a validation slice for implicit ALS on \
            ml-latest-small: bench/RESULTS.md, "Personalized search"). Without users the ranking is by text \
            alone and excludes nothing.

            A text-lora model of task next-item (fl-init --model text-lora --task \
            next-item) ranks by the cosine of the user's latest training titles to each \
            item's text, cold items included; --blend MODEL adds β (--blend-weight) times \
            that mf, ncf or gfcf model's standardised scores, as fl-eval --blend measures \
            it (default β 0.1: ML-100K's validation choice for iALS, bench/RESULTS.md, \
            "Recommendation from text"). The encoder is the one the checkpoint records \
            (or --model-dir).

            Examples:
              fl-recommend --model model-0020.safetensors --dataset ml100k \\
                  --state-dir state --user 196
              cut -f2 ml100k/users.tsv | tail -n +2 | head -5 | \\
                  fl-recommend --model m.safetensors --dataset ml100k --reconstruct \\
                  --users -
              fl-recommend --model m.safetensors --dataset ml100k --all -k 5 \\
                  --reconstruct > recs.tsv
              fl-recommend --dataset ml100k --item-text ml100k-text.safetensors \\
                  --query "space adventure"
              fl-recommend --model m.safetensors --dataset ml100k --reconstruct \\
                  --user 196 --item-text ml100k-text.safetensors \\
                  --query "space adventure" --query-weight 0.1
              fl-encode --text "space adventure" --json | fl-recommend --query-vector - \\
                  --dataset ml100k --item-text ml100k-text.safetensors
              fl-recommend --model next-item-0003.safetensors --dataset ml100k \\
                  --user 196 --blend ials-0010.safetensors --blend-weight 0.1 \\
                  --reconstruct
            """,
        version: fedrecVersion)

    @Option(help: "Model checkpoint (not needed for a text-only search).") var model: String?
    @Option(help: "Dataset directory.") var dataset: String
    @Option(help: "A user id (repeatable).") var user: [String] = []
    @Option(help: "A file of user ids, one per line (- for stdin).") var users: String?
    @Flag(help: "Recommend for every user.") var all = false
    @Option(name: .customShort("k"), help: "Number of items per user.") var k = 10
    @Option(help: ArgumentHelp(
        "Explicit-rating (mse) models: rank by b_i·n_i/(n_i + K) + p_u·q_i, n_i the item's training ratings (0: by b_i + p_u·q_i).",
        valueName: "K"))
    var biasShrinkage: Float = 25
    @Option(help: "text-lora next-item: blend with this mf, ncf or gfcf model's scores (its user parameters as for recommending from it).")
    var blend: String?
    @Option(help: ArgumentHelp(
        "text-lora next-item with --blend: β, the weight of the model's standardised scores (default chosen on validation for iALS on ML-100K).",
        valueName: "β"))
    var blendWeight: Float = 0.1
    @OptionGroup(title: "Search") var search: SearchArguments
    @OptionGroup(title: "User parameters") var parameters: UserParameterArguments
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func validate() throws {
        guard k >= 1 else { throw ValidationError("-k must be at least 1") }
        guard biasShrinkage.isFinite, biasShrinkage >= 0 else { throw ValidationError("--bias-shrinkage must be a non-negative number") }
        try search.validate()
        guard blendWeight.isFinite, blendWeight >= 0 else { throw ValidationError("--blend-weight must be a non-negative number") }
        if blend != nil && search.isSearch { throw ValidationError("--blend is for a next-item model; a search is personalized by --model and --query-weight") }
        let forUsers = all || !user.isEmpty || users != nil
        if search.isSearch {
            if forUsers && model == nil { throw ValidationError("personalized search needs --model (or leave out the users for text-only search)") }
            if users == "-" && search.queryVector == "-" { throw ValidationError("--users and --query-vector cannot both read stdin") }
        } else {
            guard forUsers else { throw ValidationError("say whom for: --user ID, --users FILE or --all (or search with --query TEXT)") }
            guard model != nil else { throw ValidationError("recommending needs --model FILE") }
        }
    }

    public func run() throws {
        try reportingErrors("fl-recommend") {
            // Reads only; writes nothing but stdout.
            try FileRoles(inputs: [model, dataset, users, parameters.stateDir, search.itemText, search.queryVector, search.adapter, blend, search.modelDir],
                          outputs: []).check()
            var wanted: [String]? = all ? nil : user
            if let users {
                let file = try MappedFile(path: users)
                let text = file.withBytes { String(decoding: $0, as: UTF8.self) }
                wanted = (wanted ?? []) + text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
            let directory = try DatasetDirectory(path: dataset)
            let manifest = directory.manifest, tables = directory.tables
            let family = try model.map { try ModelFamily.of(model: $0) }
            if let model, !search.isSearch, family == .lr || family == .fm {
                let recommendations = try CTRRecommender.run(modelPath: model, dataset: directory, users: wanted, k: k)
                return try write(recommendations, items: tables.items)
            }
            if let model, family == .textLoRA {
                guard !search.isSearch else {
                    throw FedRecError(.usage, file: model, "is a text-lora checkpoint: search with it as --adapter (and the item texts encoded with it), not as --model")
                }
                let scorer = try NextItemTextScorer(
                    modelPath: model, itemsPath: directory.path + "/items.tsv", modelDirectory: try TextLoRACommands.modelDirectory(search.modelDir, model: model))
                let blended = try blend.map { NextItemRecommender.Blend(modelPath: $0, source: try userSource(model: $0, directory: directory), beta: blendWeight) }
                let recommendations = try NextItemRecommender.run(scorer: scorer, dataset: directory, users: wanted, k: k, blend: blended)
                return try write(recommendations, items: tables.items)
            }
            if let blend { throw FedRecError(.usage, file: blend, "--blend goes with a text-lora next-item --model") }
            let query = try search.isSearch ? search.similarities(dataset: dataset, manifest: manifest) : nil
            // validate() lets only a text-only search go without a model.
            guard let model, !(wanted?.isEmpty ?? false) || query == nil else {
                return try write(Recommender.search(similarity: query ?? [], k: k), items: tables.items)
            }
            let recommendations = try Recommender.run(
                modelPath: model, dataset: directory, users: wanted, k: k, source: try userSource(model: model, directory: directory),
                query: query.map { SearchQuery(similarity: $0, beta: search.queryWeight) }, biasShrinkage: biasShrinkage)
            try write(recommendations, items: tables.items)
        }
    }

    /// The recommendations on stdout: TSV, or JSON lines with --json.
    func write(_ recommendations: [Recommendation], items: [DatasetTables.Item]) throws {
        try emit(format.json ? Recommendation.jsonLines(recommendations, items: items) : Recommendation.table(recommendations, items: items))
    }

    /// Where `model`'s user parameters come from: --state-dir or --reconstruct with its
    /// recorded settings; none for a graph filter, which scores the user's own items.
    func userSource(model: String, directory: DatasetDirectory) throws -> UserParameterSource {
        let settings = try parameters.settings(model: model, command: "fl-recommend")
        if try ModelFamily.of(model: model) == .gfcf { return UserParameterSource(mode: .reconstruct, states: [], training: settings) }
        return try parameters.source(for: directory.shardPaths, settings: settings)
    }
}

/// `fl-recommend`'s search options: the query, the item texts and the preference weight.
struct SearchArguments: ParsableArguments {
    @Option(help: "Search for this text (embedded with the encoder of --model-dir).")
    var query: String?

    @Option(help: "Search with this query vector instead: a file (- for stdin) holding one line of `fl-encode --text TEXT [--json]`.")
    var queryVector: String?

    @Option(help: "The dataset's item text table (fl-encode ITEMS.tsv -o FILE), required for a search.")
    var itemText: String?

    @Option(help: "β: weight of the user's standardised preference against the query's cosine similarity (0: text only).")
    var queryWeight: Float = 0.1

    @Option(help: "Encoder model directory for --query (default models/all-MiniLM-L6-v2); must be the one that encoded --item-text. For a text-lora next-item model: default the one it records.")
    var modelDir: String?

    /// The encoder of a search.
    var searchModelDirectory: String { modelDir ?? "models/all-MiniLM-L6-v2" }

    @Option(help: "A LoRA adapter of the model (a text_adapter file) to apply to --query; the item texts should be encoded with it too.")
    var adapter: String?

    init() {}

    var isSearch: Bool { query != nil || queryVector != nil }

    func validate() throws {
        if query != nil && queryVector != nil { throw ValidationError("give --query or --query-vector, not both") }
        if query?.isEmpty == true { throw ValidationError("--query is empty") }
        if isSearch && itemText == nil { throw ValidationError("a search needs --item-text FILE (fl-encode the dataset's items.tsv)") }
        if !isSearch && itemText != nil { throw ValidationError("--item-text goes with --query or --query-vector") }
        if adapter != nil && query == nil { throw ValidationError("--adapter goes with --query") }
        guard queryWeight.isFinite, queryWeight >= 0 else { throw ValidationError("--query-weight must be a non-negative number") }
    }

    /// The query's cosine similarity to every item of the dataset. Reads and checks the
    /// table and the query vector before loading the encoder, so input errors come first.
    func similarities(dataset: String, manifest: DatasetManifest) throws -> [Float] {
        let tablePath = itemText!
        let table = try TextEmbeddingTable.load(tablePath)
        try table.requireAligned(with: manifest)
        let search = PersonalizedSearch(table: table)
        if let queryVector {
            let file = try MappedFile(path: queryVector)
            let text = file.withBytes { String(decoding: $0, as: UTF8.self) }
            return try search.similarities(to: try QueryVector.parse(text, file: queryVector), file: queryVector)
        }
        // The model directory's last component, as fl-encode records it.
        let modelDir = searchModelDirectory
        let name = baseName(modelDir)
        guard name == table.encoder else {
            throw FedRecError(.mismatch, file: tablePath, "was encoded with \(table.encoder), the query encoder is \(name) (--model-dir)")
        }
        // An adapter changes every text's embedding: the items and the query must share it.
        let queryAdapter = try adapter.map(LoRAAdapter.fileIdentity)
        let tableAdapter = table.notes["adapter_sha256"]
        guard queryAdapter == tableAdapter else {
            let items = tableAdapter == nil ? "without an adapter" : "with adapter \(table.notes["adapter"] ?? "?") (sha256 \(tableAdapter ?? ""))"
            let query = adapter.map { "--adapter \($0)" } ?? "no --adapter"
            throw FedRecError(.mismatch, file: tablePath, "was encoded \(items); the query has \(query): encode both with the same adapter")
        }
        let encoder = try SentenceEncoder(directory: modelDir, adapter: adapter)
        guard encoder.dimension == table.dim else {
            throw FedRecError(.shape, file: tablePath, "holds \(table.dim)-dimensional texts, \(modelDir) makes \(encoder.dimension)")
        }
        return try search.similarities(to: try encoder.encode([query!]), file: modelDir)
    }
}
