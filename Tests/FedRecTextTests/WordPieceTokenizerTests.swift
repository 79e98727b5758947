import FedRecCore
import Testing
import FedRecSupport

@testable import FedRecText

/// Tokenizer behaviour on a tiny vocabulary, no model files needed.
@Suite struct WordPieceTokenizerTests {
    static let vocabulary = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", ",", "!", "una", "##ffa", "##ble",
        "cafe", "東", "京", "a", "b", "c", "—", "¿", "abc", "##s", "token", "HELLO", "café", "[", "]",
    ]

    func tokenizer(
        basic: BasicTokenizer = BasicTokenizer(), maxLength: Int = 512, maxInputCharsPerWord: Int = 100
    ) throws -> WordPieceTokenizer {
        try WordPieceTokenizer(
            vocabulary: Self.vocabulary, basic: basic, maxLength: maxLength, maxInputCharsPerWord: maxInputCharsPerWord)
    }

    @Test("lowercases, strips accents and splits punctuation", arguments: [
        ("Hello, World!", ["[CLS]", "hello", ",", "world", "!", "[SEP]"]),
        ("CAFÉ", ["[CLS]", "cafe", "[SEP]"]),
        ("Cafe\u{301}", ["[CLS]", "cafe", "[SEP]"]),
        ("¿hello—world", ["[CLS]", "¿", "hello", "—", "world", "[SEP]"]),
        ("東京", ["[CLS]", "東", "京", "[SEP]"]),
        ("a東b", ["[CLS]", "a", "東", "b", "[SEP]"]),
    ])
    func normalisation(text: String, expected: [String]) throws {
        #expect(try tokenizer().tokens(text) == expected)
    }

    @Test("drops control characters, NUL and U+FFFD; any whitespace separates words")
    func cleaning() throws {
        let t = try tokenizer()
        #expect(t.tokens("a\u{0}b\u{FFFD}c\u{200B}") == ["[CLS]", "abc", "[SEP]"])
        #expect(t.tokens("a\tb\nc\r\u{3000}a\u{A0}b") == ["[CLS]", "a", "b", "c", "a", "b", "[SEP]"])
        #expect(t.tokens("") == ["[CLS]", "[SEP]"])
        #expect(t.tokens(" \t\n ") == ["[CLS]", "[SEP]"])
    }

    @Test("greedy longest-match WordPiece with ## continuations; [UNK] when it fails")
    func wordPiece() throws {
        let t = try tokenizer()
        #expect(t.tokens("unaffable") == ["[CLS]", "una", "##ffa", "##ble", "[SEP]"])
        #expect(t.tokens("tokens") == ["[CLS]", "token", "##s", "[SEP]"])
        // "abcz": "abc" matches but "##z" does not, so the whole word is unknown.
        #expect(t.tokens("abcz hello") == ["[CLS]", "[UNK]", "hello", "[SEP]"])
    }

    @Test("a word longer than max_input_chars_per_word is one [UNK]")
    func longWord() throws {
        let t = try tokenizer(maxInputCharsPerWord: 5)
        #expect(t.tokens("hello") == ["[CLS]", "hello", "[SEP]"])
        #expect(t.tokens("abcabc, a") == ["[CLS]", "[UNK]", ",", "a", "[SEP]"])
        #expect(try tokenizer().encode(String(repeating: "a", count: 101)) == [2, 1, 3])
    }

    @Test("truncates to maxLength tokens, [CLS] and [SEP] included, even inside a word")
    func truncation() throws {
        let t = try tokenizer(maxLength: 5)
        #expect(t.tokens("a b c a b") == ["[CLS]", "a", "b", "c", "[SEP]"])
        #expect(t.tokens("a unaffable") == ["[CLS]", "a", "una", "##ffa", "[SEP]"])
        #expect(try tokenizer(maxLength: 2).tokens("hello") == ["[CLS]", "[SEP]"])
    }

    @Test("special tokens written in the text stay whole, before normalisation")
    func literalSpecialTokens() throws {
        let t = try tokenizer()
        #expect(t.tokens("[CLS] hello[MASK]world [mask]") == [
            "[CLS]", "[CLS]", "hello", "[MASK]", "world", "[", "[UNK]", "]", "[SEP]",
        ])
    }

    @Test("without lowercasing, case and accents are kept")
    func caseKept() throws {
        let t = try tokenizer(basic: BasicTokenizer(lowercase: false))
        #expect(t.tokens("HELLO café") == ["[CLS]", "HELLO", "café", "[SEP]"])
        let stripped = try tokenizer(basic: BasicTokenizer(stripAccents: true, lowercase: false))
        #expect(stripped.tokens("HELLO café") == ["[CLS]", "HELLO", "cafe", "[SEP]"])
    }

    @Test("vocab.txt lines: one token a line, CRLF tolerated, final newline optional")
    func vocabularyLines() {
        #expect(WordPieceTokenizer.vocabularyLines("[PAD]\r\na\n\n##b\n") == ["[PAD]", "a", "", "##b"])
        #expect(WordPieceTokenizer.vocabularyLines("x\ny") == ["x", "y"])
    }

    @Test("a vocabulary without [UNK] is refused")
    func missingUnknown() {
        #expect(throws: FedRecError.self) { try WordPieceTokenizer(vocabulary: ["[CLS]", "[SEP]", "[PAD]"]) }
    }

    @Test("a missing model directory says to run make model")
    func missingModel() {
        do {
            _ = try SentenceEncoder(directory: "/nonexistent/model")
            Issue.record("expected an error")
        } catch let error as FedRecError {
            #expect(error.failure == .noInput)
            #expect(error.description.contains("make model"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
