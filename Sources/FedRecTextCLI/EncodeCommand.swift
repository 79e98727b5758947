import ArgumentParser
import FedRecCLI
import FedRecCore
import FedRecText
import FedRecSupport
import FedRecFormats
import FedRecData

/// `fl-encode`: sentence embeddings of item texts (a table aligned with a dataset's item
/// indices) or of queries (one output line per text).
public struct EncodeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-encode",
        abstract: "Embed item texts or queries with a pretrained BERT-family sentence encoder.",
        usage: "fl-encode [<options>] [<input>] [--text <text> ...] [--output <output>]",
        discussion: """
            With a dataset's items.tsv (or its directory), embeds every item's text, \
            "Title — Genre, Genre" plus any --extra-text, and writes a text_embedding table: \
            tensor item_text [items, dim] whose row i is item index i. With --text or - (lines \
            on stdin), embeds each text and prints one line per text: TSV (the text, then the \
            vector's values) or, with --json, {"embedding": [...], "input_ids": [...], "text": ...}.

            The model is read from --model-dir (Hugging Face files: config.json, \
            model.safetensors, vocab.txt or tokenizer.json); nothing is downloaded at run \
            time. `make model` fetches the default, all-MiniLM-L6-v2.

            Examples:
              fl-encode ml100k/items.tsv -o ml100k-text.safetensors
              fl-encode mls/items.tsv --extra-text ml-latest-small/tags.csv \\
                  -o mls-text.safetensors
              fl-encode --text "space adventure" --json
              cut -f3 ml100k/items.tsv | tail -n +2 | fl-encode - --threads 2 > titles.tsv
            """,
        version: fedrecVersion)

    @Argument(help: "A dataset's items.tsv (or the dataset directory), or - for texts on stdin, one per line.")
    var input: String?

    @Option(name: .long, help: "A text to embed (repeatable) instead of INPUT.")
    var text: [String] = []

    @Option(name: [.short, .long], help: "Output: the table for items.tsv (required); the lines for texts (default: stdout).")
    var output: String?

    @Option(help: "Item id and text (CSV/TSV, e.g. MovieLens tags.csv) appended to each item's text.")
    var extraText: String?

    @Option(help: "Model directory (config.json, model.safetensors, vocab.txt or tokenizer.json).")
    var modelDir = "models/all-MiniLM-L6-v2"

    @Option(help: "A LoRA adapter of the model (a text_adapter file) to apply.")
    var adapter: String?

    @Option(help: "Texts per forward pass.")
    var batchSize = 64

    @Option(help: "Threads for matrix products and the rest of the encoder (default: all cores).")
    var threads: Int?

    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if input != nil && !text.isEmpty { throw ValidationError("give INPUT or --text, not both") }
        if input == nil && text.isEmpty {
            throw ValidationError("nothing to encode: give a dataset's items.tsv, - for lines on stdin, or --text TEXT")
        }
        if isItemTable {
            guard output != nil else { throw ValidationError("embedding items.tsv needs -o/--output FILE.safetensors") }
        } else if extraText != nil {
            throw ValidationError("--extra-text goes with items.tsv, not with --text or stdin")
        }
    }

    /// Whether INPUT is an items table (anything but stdin and --text).
    var isItemTable: Bool { input != nil && input != "-" }

    public func run() throws {
        try reportingErrors("fl-encode") {
            try FileRoles(inputs: [input, extraText, modelDir, adapter], outputs: [output]).check()
            if isItemTable {
                try encodeItems(path: input!, output: output!)
            } else {
                try encodeTexts(input == nil ? text : try Self.lines(of: "-"))
            }
        }
    }

    /// Loads the model after the inputs were read, so input errors come first and cheap.
    func loadEncoder() throws -> SentenceEncoder {
        if let threads { SentenceEncoder.setBLASThreads(threads) }
        let encoder = try SentenceEncoder(directory: modelDir, adapter: adapter)
        if let threads { encoder.encoder.threads = threads }
        return encoder
    }

    /// The model's name: its directory's last component.
    var encoderName: String { baseName(modelDir) }

    func encodeItems(path: String, output: String) throws {
        let itemsPath = fileExists(path + "/items.tsv") ? path + "/items.tsv" : path
        let items = try DatasetTables.readItems(itemsPath)
        guard !items.isEmpty else { throw FedRecError(.emptyInput, file: itemsPath, "holds no items") }
        let directory = itemsPath.lastIndex(of: "/").map { String(itemsPath[..<$0]) } ?? "."
        var datasetId: String?
        if fileExists(directory + "/dataset.json") {
            let manifest = try DatasetManifest.load(directory)
            guard manifest.items == items.count else {
                throw FedRecError(.mismatch, file: itemsPath, "holds \(items.count) items, \(directory)/dataset.json says \(manifest.items)")
            }
            datasetId = manifest.datasetId
        }
        var extra: [String: [String]] = [:]
        if let extraText { extra = try ItemTextReader.read(path: extraText) }
        let texts = items.map { ItemText.compose(title: $0.title, genres: $0.genres, extra: extra[$0.id] ?? []) }
        let matched = extraText == nil ? 0 : items.reduce(0) { $0 + (extra[$1.id] == nil ? 0 : 1) }
        if let extraText, matched == 0 {
            var stderr = StandardError()
            print("fl-encode: warning: \(extraText): no item id of \(itemsPath) has text here", to: &stderr)
        }

        let encoder = try loadEncoder()
        let vectors = try embed(texts.map { encoder.tokenizer.encode($0) }, with: encoder)
        var notes = ["text": extraText == nil ? "title — genres" : "title — genres — extra"]
        if let adapter {
            notes["adapter"] = baseName(adapter)
            notes["adapter_sha256"] = try LoRAAdapter.fileIdentity(adapter)
        }
        if let extraText {
            notes["extra_text"] = baseName(extraText)
            notes["extra_text_items"] = String(matched)
        }
        let table = TextEmbeddingTable(
            vectors: vectors, items: items.count, dim: encoder.dimension, encoder: encoderName, datasetId: datasetId, notes: notes)
        try table.write(to: output)
        if format.json && output != "-" {
            try emit(table.summary(output: output).canonicalText)
        }
    }

    func encodeTexts(_ texts: [String]) throws {
        guard !texts.isEmpty else { throw FedRecError(.emptyInput, file: input ?? "-", "no text to encode") }
        let encoder = try loadEncoder()
        let ids = texts.map { encoder.tokenizer.encode($0) }
        let vectors = try embed(ids, with: encoder)
        let out = try AtomicOutput(path: output ?? "-", durable: false)
        let dim = encoder.dimension
        for (i, text) in texts.enumerated() {
            let vector = vectors[i * dim..<(i + 1) * dim]
            var line = ""
            if format.json {
                line += "{\"embedding\":[" + vector.map { Self.number($0, json: true) }.joined(separator: ",")
                line += "],\"input_ids\":[" + ids[i].map { String($0) }.joined(separator: ",")
                line += "],\"text\":" + JSONValue.string(text).canonicalText + "}\n"
            } else {
                line += tsvField(text)
                for value in vector { line += "\t" + Self.number(value) }
                line += "\n"
            }
            try out.write(line)
        }
        try out.commit()
    }

    /// Vectors for tokenized texts, with a progress line on a terminal.
    func embed(_ ids: [[Int32]], with encoder: SentenceEncoder) throws -> [Float] {
        let progress = Progress(quiet: format.quiet)
        defer { progress.finish() }
        return try encoder.encode(tokenized: ids, batchSize: batchSize) { done in
            progress.update("fl-encode: \(done)/\(ids.count) texts")
        }
    }

    /// The lines of a file or stdin (`-`), each one text; a last line without a newline
    /// counts, an empty file has none. Empty lines are texts too, so output line i always
    /// belongs to input line i.
    static func lines(of path: String) throws -> [String] {
        let file = try MappedFile(path: path)
        let text = file.withBytes { String(decoding: $0, as: UTF8.self) }
        // "\r\n" is one Character, so both line ends split here.
        var lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }.map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// A float in its shortest form that reads back as the same `Float`.
    static func number(_ value: Float, json: Bool = false) -> String { value.isFinite ? "\(value)" : (json ? "null" : "nan") }

}
