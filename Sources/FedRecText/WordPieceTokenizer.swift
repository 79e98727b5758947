import FedRecCore
import Foundation
import FedRecSupport

/// BERT's text normalisation and pre-tokenisation, as Hugging Face's `BertNormalizer` and
/// `BertPreTokenizer` (the fast tokenizer that sentence-transformers uses) do them:
/// clean the text, space out CJK ideographs, strip accents and lowercase, then split on
/// whitespace and isolate every punctuation character.
public struct BasicTokenizer: Sendable, Equatable {
    /// Drop control characters, U+0000 and U+FFFD; turn whitespace into spaces.
    public var cleanText: Bool
    /// Put spaces around CJK ideographs so that each is a word of its own.
    public var handleChineseChars: Bool
    /// Decompose (NFD) and drop non-spacing marks (`Mn`).
    public var stripAccents: Bool
    /// Lowercase (Unicode full lowercase mapping, character by character).
    public var lowercase: Bool

    /// - Parameters:
    ///   - stripAccents: `nil` follows `lowercase`, as `strip_accents: null` does upstream.
    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents ?? lowercase
        self.lowercase = lowercase
    }

    /// The normalised text as Unicode scalars.
    /// - Complexity: O(n) in the length of `text`.
    public func normalize(_ text: Substring.UnicodeScalarView) -> [Unicode.Scalar] {
        var out = [Unicode.Scalar]()
        out.reserveCapacity(text.count + 8)
        var ascii = true
        for c in text {
            if cleanText {
                if c.value == 0 || c.value == 0xFFFD || Self.isControl(c) { continue }
                if Self.isWhitespace(c) {
                    out.append(" ")
                    continue
                }
            }
            if handleChineseChars && Self.isChinese(c) {
                out.append(" ")
                out.append(c)
                out.append(" ")
            } else {
                out.append(c)
            }
            if c.value >= 0x80 { ascii = false }
        }
        if ascii {
            if lowercase {
                for i in out.indices where out[i].value >= 0x41 && out[i].value <= 0x5A {
                    out[i] = Unicode.Scalar(out[i].value + 0x20)!
                }
            }
            return out
        }
        if stripAccents {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: out)
            let decomposed = String(view).decomposedStringWithCanonicalMapping
            out.removeAll(keepingCapacity: true)
            for c in decomposed.unicodeScalars where c.properties.generalCategory != .nonspacingMark {
                out.append(c)
            }
        }
        if lowercase {
            var lowered = [Unicode.Scalar]()
            lowered.reserveCapacity(out.count)
            for c in out {
                if c.value < 0x80 {
                    lowered.append(c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 0x20)! : c)
                } else if c.properties.changesWhenLowercased {
                    lowered.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
                } else {
                    lowered.append(c)
                }
            }
            out = lowered
        }
        return out
    }

    /// Splits normalised scalars into words: whitespace separates and is dropped, every
    /// punctuation character is a word of its own.
    /// - Complexity: O(n).
    public func preTokenize(_ scalars: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var words = [ArraySlice<Unicode.Scalar>]()
        var start = -1
        for (i, c) in scalars.enumerated() {
            if Self.isWhitespace(c) {
                if start >= 0 { words.append(scalars[start..<i]) }
                start = -1
            } else if Self.isPunctuation(c) {
                if start >= 0 { words.append(scalars[start..<i]) }
                words.append(scalars[i..<i + 1])
                start = -1
            } else if start < 0 {
                start = i
            }
        }
        if start >= 0 { words.append(scalars[start...]) }
        return words
    }

    /// Normalises `text` and splits it into words.
    public func words(_ text: String) -> [String] {
        preTokenize(normalize(text[...].unicodeScalars)).map { Self.string($0) }
    }

    static func string<S: Sequence>(_ scalars: S) -> String where S.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    // MARK: Character classes (tokenizers' `normalizers/bert.rs` and `pre_tokenizers/bert.rs`)

    /// Unicode `White_Space`, which includes tab, newline and carriage return.
    @inline(__always)
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 { return c == " " || (c.value >= 0x09 && c.value <= 0x0D) }
        return c.properties.isWhitespace
    }

    /// General category C* (Cc, Cf, Cn, Co, Cs), except tab, newline and carriage return.
    @inline(__always)
    static func isControl(_ c: Unicode.Scalar) -> Bool {
        if c == "\t" || c == "\n" || c == "\r" { return false }
        if c.value < 0x80 { return c.value < 0x20 || c.value == 0x7F }
        switch c.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// ASCII punctuation (`!` to `/`, `:` to `@`, `[` to `` ` ``, `{` to `~`) or Unicode P*.
    @inline(__always)
    static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        if v < 0x80 { return false }
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    /// The CJK ideograph blocks that BERT spaces out (the ranges of tokenizers' `bert.rs`).
    @inline(__always)
    static func isChinese(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
            0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default: return false
        }
    }
}

/// BERT's WordPiece tokenizer: `BasicTokenizer` words split greedily into the longest
/// vocabulary pieces (continuations prefixed `##`), wrapped in `[CLS] … [SEP]` and
/// truncated to `maxLength` tokens in all. Special tokens written literally in the text
/// (`[CLS]`, `[MASK]` …) are kept as those tokens, as Hugging Face's tokenizers do.
public struct WordPieceTokenizer: Sendable {
    /// Token strings by id.
    public let vocabulary: [String]
    public let basic: BasicTokenizer
    /// The most tokens `encode` returns, `[CLS]` and `[SEP]` included.
    public let maxLength: Int
    public let maxInputCharsPerWord: Int
    public let unknownID: Int32
    public let classID: Int32
    public let separatorID: Int32
    public let padID: Int32
    /// Lowercase the whole text before anything else (sentence-transformers' own
    /// `do_lower_case`, off for most models).
    public let lowercaseInput: Bool
    private let ids: [String: Int32]
    /// Literal tokens matched in the raw text, longest first.
    private let specialTokens: [(scalars: [Unicode.Scalar], id: Int32)]
    private let continuationPrefix = "##"

    /// - Parameters:
    ///   - vocabulary: token strings; a token's id is its index (the last of duplicates wins).
    ///   - specialTokens: tokens kept whole wherever they appear in the text; those not in
    ///     the vocabulary are ignored.
    /// - Throws: `FedRecError(.badData)` if `[UNK]`, `[CLS]`, `[SEP]` or `[PAD]` is missing
    ///   or `maxLength` is below 2.
    public init(
        vocabulary: [String], basic: BasicTokenizer = BasicTokenizer(), maxLength: Int = 512,
        maxInputCharsPerWord: Int = 100, unknownToken: String = "[UNK]", classToken: String = "[CLS]",
        separatorToken: String = "[SEP]", padToken: String = "[PAD]",
        specialTokens: [String] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], lowercaseInput: Bool = false
    ) throws {
        var ids = [String: Int32](minimumCapacity: vocabulary.count)
        for (i, token) in vocabulary.enumerated() { ids[token] = Int32(i) }
        func id(_ token: String) throws -> Int32 {
            guard let id = ids[token] else { throw FedRecError(.badData, "the vocabulary has no \(token) token") }
            return id
        }
        guard maxLength >= 2 else { throw FedRecError(.badData, "maximum sequence length \(maxLength) leaves no room for [CLS] and [SEP]") }
        self.vocabulary = vocabulary
        self.basic = basic
        self.maxLength = maxLength
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.unknownID = try id(unknownToken)
        self.classID = try id(classToken)
        self.separatorID = try id(separatorToken)
        self.padID = try id(padToken)
        self.lowercaseInput = lowercaseInput
        self.ids = ids
        self.specialTokens = Set(specialTokens + [unknownToken, classToken, separatorToken, padToken])
            .compactMap { token in ids[token].map { (Array(token.unicodeScalars), $0) } }
            .filter { !$0.0.isEmpty }
            .sorted { $0.0.count != $1.0.count ? $0.0.count > $1.0.count : $0.1 < $1.1 }
    }

    /// The id of `token`, if the vocabulary has it.
    public func id(of token: String) -> Int32? { ids[token] }

    /// Token ids for one text: `[CLS]`, the WordPiece ids truncated to `maxLength - 2`,
    /// `[SEP]`.
    /// - Complexity: O(n · w) for n characters and words of at most w characters.
    public func encode(_ text: String) -> [Int32] {
        var out: [Int32] = [classID]
        let budget = maxLength - 1
        appendPieces(of: lowercaseInput ? text.lowercased() : text, to: &out, limit: budget)
        out.append(separatorID)
        return out
    }

    /// The token strings for one text, as `encode` gives them.
    public func tokens(_ text: String) -> [String] {
        encode(text).map { vocabulary[Int($0)] }
    }

    /// Appends ids for `text` until `out` holds `limit` ids.
    private func appendPieces(of text: String, to out: inout [Int32], limit: Int) {
        let scalars = text.unicodeScalars
        var segmentStart = scalars.startIndex
        var i = scalars.startIndex
        while i < scalars.endIndex && out.count < limit {
            if let (id, end) = specialToken(at: i, in: scalars) {
                appendWords(of: scalars[segmentStart..<i], to: &out, limit: limit)
                if out.count < limit { out.append(id) }
                i = end
                segmentStart = end
            } else {
                scalars.formIndex(after: &i)
            }
        }
        appendWords(of: scalars[segmentStart..<scalars.endIndex], to: &out, limit: limit)
    }

    private func specialToken(at i: String.UnicodeScalarView.Index, in scalars: String.UnicodeScalarView)
        -> (Int32, String.UnicodeScalarView.Index)?
    {
        let first = scalars[i]
        candidates: for (token, id) in specialTokens where token[0] == first {
            var j = i
            for c in token {
                guard j < scalars.endIndex, scalars[j] == c else { continue candidates }
                scalars.formIndex(after: &j)
            }
            return (id, j)
        }
        return nil
    }

    private func appendWords(of segment: Substring.UnicodeScalarView, to out: inout [Int32], limit: Int) {
        guard !segment.isEmpty, out.count < limit else { return }
        let normalized = basic.normalize(segment)
        for word in basic.preTokenize(normalized) {
            appendWordPieces(word, to: &out, limit: limit)
            if out.count >= limit { return }
        }
    }

    /// Greedy longest-match-first WordPiece for one word; `[UNK]` for a word longer than
    /// `maxInputCharsPerWord` or with no segmentation into vocabulary pieces.
    private func appendWordPieces(_ word: ArraySlice<Unicode.Scalar>, to out: inout [Int32], limit: Int) {
        if word.count > maxInputCharsPerWord {
            out.append(unknownID)
            return
        }
        if let id = ids[BasicTokenizer.string(word)] {  // most words are whole tokens
            out.append(id)
            return
        }
        let mark = out.count
        var start = word.startIndex
        while start < word.endIndex {
            var end = word.endIndex
            var found: Int32?
            while start < end {
                var piece = start > word.startIndex ? continuationPrefix : ""
                piece.unicodeScalars.append(contentsOf: word[start..<end])
                if let id = ids[piece] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else {
                out.removeSubrange(mark...)
                out.append(unknownID)
                return
            }
            out.append(id)
            start = end
        }
        if out.count > limit { out.removeSubrange(limit...) }
    }
}
