import FedRecCore
import FedRecSupport

extension WordPieceTokenizer {
    /// The tokenizer of a model directory, configured as Hugging Face's fast tokenizer
    /// would be: the vocabulary from `vocab.txt` (or `tokenizer.json`'s `model.vocab`),
    /// normalisation from `tokenizer.json`'s `normalizer` (or `tokenizer_config.json`),
    /// the length limit from `sentence_bert_config.json`'s `max_seq_length` (or
    /// `model_max_length`, at most `config.json`'s `max_position_embeddings`).
    /// - Throws: `FedRecError` naming the file that is missing or malformed.
    public init(directory: ModelDirectory) throws {
        let tokenizerJSON = try directory.jsonIfPresent("tokenizer.json")
        let tokenizerConfig = try directory.jsonIfPresent("tokenizer_config.json")
        let sentenceConfig = try directory.jsonIfPresent("sentence_bert_config.json")
        let modelConfig = try directory.jsonIfPresent("config.json")

        let vocabulary: [String]
        if directory.has("vocab.txt") {
            vocabulary = Self.vocabularyLines(try directory.text("vocab.txt"))
        } else if let tokenizerJSON {
            vocabulary = try Self.vocabulary(fromTokenizerJSON: tokenizerJSON, file: directory.file("tokenizer.json"))
        } else {
            throw FedRecError(.noInput, file: directory.path, "the model directory has neither vocab.txt nor tokenizer.json")
        }
        guard !vocabulary.isEmpty else { throw FedRecError(.badData, file: directory.file("vocab.txt"), "the vocabulary is empty") }

        var basic = BasicTokenizer()
        if let normalizer = tokenizerJSON?["normalizer"], normalizer != .null {
            guard normalizer["type"]?.stringValue == "BertNormalizer" else {
                throw FedRecError(
                    .badData, file: directory.file("tokenizer.json"),
                    "normalizer \(normalizer["type"]?.canonicalText ?? "?") is not supported (only BertNormalizer)")
            }
            let lowercase = normalizer["lowercase"]?.boolValue ?? true
            basic = BasicTokenizer(
                cleanText: normalizer["clean_text"]?.boolValue ?? true,
                handleChineseChars: normalizer["handle_chinese_chars"]?.boolValue ?? true,
                stripAccents: normalizer["strip_accents"]?.boolValue, lowercase: lowercase)
        } else if let tokenizerConfig {
            let lowercase = tokenizerConfig["do_lower_case"]?.boolValue ?? true
            basic = BasicTokenizer(
                handleChineseChars: tokenizerConfig["tokenize_chinese_chars"]?.boolValue ?? true,
                stripAccents: tokenizerConfig["strip_accents"]?.boolValue, lowercase: lowercase)
        }

        func token(_ key: String, _ fallback: String) -> String {
            tokenizerConfig?[key]?.stringValue ?? tokenizerConfig?[key]?["content"]?.stringValue ?? fallback
        }
        let unknown = tokenizerJSON?["model"]?["unk_token"]?.stringValue ?? token("unk_token", "[UNK]")
        let cls = token("cls_token", "[CLS]")
        let sep = token("sep_token", "[SEP]")
        let pad = token("pad_token", "[PAD]")
        var special = [unknown, cls, sep, pad, token("mask_token", "[MASK]")]
        for added in tokenizerJSON?["added_tokens"]?.arrayValue ?? [] {
            if let content = added["content"]?.stringValue { special.append(content) }
        }

        let positions = modelConfig?["max_position_embeddings"]?.intValue ?? 512
        var maxLength = sentenceConfig?["max_seq_length"]?.intValue
            ?? min(tokenizerConfig?["model_max_length"]?.intValue ?? positions, positions)
        maxLength = min(maxLength, positions)

        do {
            try self.init(
                vocabulary: vocabulary, basic: basic, maxLength: maxLength,
                maxInputCharsPerWord: tokenizerJSON?["model"]?["max_input_chars_per_word"]?.intValue ?? 100,
                unknownToken: unknown, classToken: cls, separatorToken: sep, padToken: pad, specialTokens: special,
                lowercaseInput: sentenceConfig?["do_lower_case"]?.boolValue ?? false)
        } catch let error as FedRecError {
            throw error.inFile(directory.has("vocab.txt") ? directory.file("vocab.txt") : directory.file("tokenizer.json"))
        }
    }

    /// One token a line; the line number (from 0) is the id.
    static func vocabularyLines(_ text: String) -> [String] {
        // Bytes, not Characters: "\r\n" is a single Character.
        var lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
        }
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    static func vocabulary(fromTokenizerJSON json: JSONValue, file: String) throws -> [String] {
        guard json["model"]?["type"]?.stringValue == "WordPiece", let vocab = json["model"]?["vocab"]?.objectValue else {
            throw FedRecError(.badData, file: file, "model is not a WordPiece model with a vocab")
        }
        var tokens = [String](repeating: "", count: vocab.count)
        for (token, id) in vocab {
            guard let i = id.intValue, i >= 0, i < vocab.count else {
                throw FedRecError(.badData, file: file, "token \(token) has id \(id.canonicalText), outside 0..<\(vocab.count)")
            }
            tokens[i] = token
        }
        return tokens
    }
}
