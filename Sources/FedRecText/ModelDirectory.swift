import FedRecCore
import FedRecSupport

/// The files of a sentence-transformers / Hugging Face model directory: `config.json`,
/// `model.safetensors`, `vocab.txt` or `tokenizer.json`, and optionally
/// `tokenizer_config.json`, `sentence_bert_config.json`, `modules.json`, `1_Pooling/`.
public struct ModelDirectory: Sendable {
    /// The directory as the user named it.
    public let path: String

    /// - Throws: `FedRecError(.noInput)` saying to run `make model` when the directory or
    ///   its `config.json` is missing.
    public init(path: String) throws {
        self.path = path
        guard fileExists(path) else {
            throw FedRecError(.noInput, file: path, "no model directory here; run `make model` to download all-MiniLM-L6-v2")
        }
        guard fileExists(self.file("config.json")) else {
            throw FedRecError(
                .noInput, file: path, "no config.json in the model directory; run `make model` to download all-MiniLM-L6-v2")
        }
    }

    /// The path of `name` inside the directory.
    public func file(_ name: String) -> String {
        path.hasSuffix("/") ? path + name : path + "/" + name
    }

    /// Whether the directory holds `name`.
    public func has(_ name: String) -> Bool { fileExists(file(name)) }

    /// The UTF-8 text of `name`.
    func text(_ name: String) throws -> String {
        let mapped = try MappedFile(path: file(name))
        return String(decoding: mapped.bytes, as: UTF8.self)
    }

    /// `name` parsed as JSON; errors name the file.
    func json(_ name: String) throws -> JSONValue {
        let path = file(name)
        let mapped = try MappedFile(path: path)
        do {
            return try JSONValue.parse(mapped.bytes)
        } catch let error as FedRecError {
            throw error.inFile(path)
        }
    }

    /// `name` parsed as JSON, or `nil` if the directory does not hold it.
    func jsonIfPresent(_ name: String) throws -> JSONValue? {
        has(name) ? try json(name) : nil
    }
}
