import FedRecCore
import Testing
import FedRecSupport

@testable import FedRecText

/// Files beside the repository: the model from `make model` and the reference outputs in
/// `../shared/fixtures/minilm/` (sentence-transformers on PyTorch).
enum ReferencePaths {
    static let repositoryRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Tests/FedRecTextTests/ReferenceFixtureTests.swift
        return parts.joined(separator: "/")
    }()
    static let model = repositoryRoot + "/models/all-MiniLM-L6-v2"
    static let fixture = repositoryRoot + "/../shared/fixtures/minilm/all-MiniLM-L6-v2.jsonl"
    static var available: Bool { fileExists(model + "/model.safetensors") && fileExists(fixture) }
}

@Suite(
    .enabled(
        if: ReferencePaths.available,
        "needs models/all-MiniLM-L6-v2 (run `make model`) and ../shared/fixtures/minilm/all-MiniLM-L6-v2.jsonl"))
struct ReferenceFixtureTests {
    struct Case {
        let text: String
        let ids: [Int32]
        let embedding: [Float]
    }

    static func cases() throws -> [Case] {
        let file = try MappedFile(path: ReferencePaths.fixture)
        return try String(decoding: file.bytes, as: UTF8.self).split(separator: "\n").map { line in
            let json = try JSONValue.parse(String(line))
            return Case(
                text: try #require(json["text"]?.stringValue),
                ids: try #require(json["input_ids"]?.arrayValue).map { Int32(try #require($0.intValue)) },
                embedding: try #require(json["embedding"]?.arrayValue).map { Float(try #require($0.doubleValue)) })
        }
    }

    @Test("token ids equal the reference tokenizer's for every fixture text")
    func tokenIDs() throws {
        let tokenizer = try WordPieceTokenizer(directory: try ModelDirectory(path: ReferencePaths.model))
        let cases = try Self.cases()
        #expect(cases.count == 56)
        for c in cases {
            #expect(tokenizer.encode(c.text) == c.ids, "text: \(c.text.prefix(80))")
        }
    }

    @Test("embeddings have cosine ≥ 0.9999 with the reference for every fixture text")
    func embeddings() throws {
        let encoder = try SentenceEncoder(directory: ReferencePaths.model)
        #expect(encoder.dimension == 384)
        let cases = try Self.cases()
        // Odd batch size so batches mix lengths (the 256-token text with short ones).
        let vectors = try encoder.encode(cases.map(\.text), batchSize: 7)
        var worst: Float = 1
        for (i, c) in cases.enumerated() {
            let v = vectors[i * 384..<(i + 1) * 384]
            var dot: Float = 0, a: Float = 0, b: Float = 0
            for (x, y) in zip(v, c.embedding) {
                dot += x * y
                a += x * x
                b += y * y
            }
            let cosine = dot / (a.squareRoot() * b.squareRoot())
            worst = min(worst, cosine)
            #expect(cosine >= 0.9999, "text \(i): \(c.text.prefix(60)) cosine \(cosine)")
        }
        print("all-MiniLM-L6-v2 fixture: lowest cosine \(worst), largest error \(1 - worst)")
        // One text at a time gives the same vectors as batches.
        let single = try encoder.encode([cases[52].text], batchSize: 1)
        for (x, y) in zip(single, vectors[52 * 384..<53 * 384]) { #expect(abs(x - y) < 1e-5) }
    }
}
