internal import COpenBLAS
import FedRecCore
import FedRecSupport

/// A sentence-transformers model: tokenizer, BERT encoder and pooling, loaded from a
/// model directory (`make model` fetches the default, all-MiniLM-L6-v2).
///
/// Not thread-safe (the encoder reuses its buffers); use one per thread.
public final class SentenceEncoder {
    public let tokenizer: WordPieceTokenizer
    public let encoder: BertEncoder
    public let pooling: Pooling
    /// Floats per sentence vector.
    public let dimension: Int

    /// - Parameters:
    ///   - adapter: a LoRA adapter file (`LoRAAdapter`) to merge into the encoder's weights.
    /// - Throws: `FedRecError(.noInput)` saying to run `make model` when the directory is
    ///   missing; errors naming the file for a bad config, vocabulary, weights or adapter
    ///   (one made for another base model is refused).
    public init(directory path: String, adapter: String? = nil) throws {
        let directory = try ModelDirectory(path: path)
        tokenizer = try WordPieceTokenizer(directory: directory)
        let base = try BertEncoder(directory: directory)
        encoder = try adapter.map { try base.adapted(by: try LoRAAdapter.load(path: $0), file: $0) } ?? base
        pooling = try Pooling(directory: directory)
        dimension = pooling.dimension(hiddenSize: encoder.config.hiddenSize)
        guard tokenizer.vocabulary.count <= encoder.config.vocabSize else {
            throw FedRecError(
                .mismatch, file: directory.file("config.json"),
                "vocab_size \(encoder.config.vocabSize) is smaller than the tokenizer's \(tokenizer.vocabulary.count) tokens")
        }
    }

    /// Sentence vectors for `texts`, in order.
    /// - Parameters:
    ///   - batchSize: texts per forward pass; larger batches make larger matrix products.
    /// - Returns: `texts.count` × `dimension` floats, row-major.
    /// - Complexity: O(tokens) encoder work per text; see `BertEncoder.embed`.
    public func encode(_ texts: [String], batchSize: Int = 64) throws -> [Float] {
        try encode(tokenized: texts.map { tokenizer.encode($0) }, batchSize: batchSize)
    }

    /// Sentence vectors for texts already tokenized with `tokenizer` (`[CLS] … [SEP]`).
    /// - Parameters:
    ///   - batchSize: sequences per forward pass.
    ///   - progress: called after each batch with the number of sequences done.
    /// - Returns: `ids.count` × `dimension` floats, row-major.
    /// - Complexity: O(tokens) encoder work per sequence; see `BertEncoder.embed`.
    public func encode(tokenized ids: [[Int32]], batchSize: Int = 64, progress: (Int) -> Void = { _ in }) throws -> [Float] {
        var out = [Float]()
        out.reserveCapacity(ids.count * dimension)
        var start = 0
        while start < ids.count {
            let end = min(start + max(batchSize, 1), ids.count)
            out += try encoder.embed(Array(ids[start..<end]), pooling: pooling)
            start = end
            progress(end)
        }
        return out
    }

    /// Sets how many threads OpenBLAS uses for matrix products (process-wide).
    public static func setBLASThreads(_ count: Int) {
        openblas_set_num_threads(Int32(max(count, 1)))
    }

    /// The number of threads OpenBLAS uses.
    public static var blasThreads: Int { Int(openblas_get_num_threads()) }
}
