import Crypto
import FedRecSupport
import Testing

@testable import FedRecSecureAggregation

@Suite struct SeededStreamTests {
    typealias Vectors = StreamKnownAnswers

    static var seed: [UInt8] { KnownAnswerVectors.bytes(Vectors.streamSeed) }

    /// The nonce against hashlib's SHA-256 of "fedrec-secagg-stream/" + label.
    @Test func nonceMatchesIndependentHash() {
        let generator = ChaCha20Generator(seed: Self.seed, label: Vectors.streamLabel)
        #expect(generator.nonce == KnownAnswerVectors.bytes(Vectors.streamNonce))
    }

    /// Words at the start, across the first and second 4 KiB refills and at the end, against
    /// OpenSSL's ChaCha20 (Python `cryptography`) read as little-endian UInt64s.
    @Test func wordsMatchIndependentChaCha20() {
        var generator = ChaCha20Generator(seed: Self.seed, label: Vectors.streamLabel)
        let words = (0..<Vectors.streamWordCount).map { _ in generator.next() }
        #expect(Vectors.streamWordIndices.map { words[$0] } == Vectors.streamWords)
    }

    /// Bounded integers (including bounds near 2^63, where Lemire's rejection redraws) against
    /// Python's integer re-implementation on the same keystream.
    @Test func indicesMatchIndependentLemire() {
        var generator = ChaCha20Generator(seed: Self.seed, label: "indices")
        let indices = Vectors.indexBounds.map { generator.nextIndex(below: $0) }
        #expect(indices == Vectors.indices)
        #expect(zip(indices, Vectors.indexBounds).allSatisfy { (0..<$1).contains($0) })
    }

    /// Skipping n words leaves the stream where n draws leave it: from the start and from
    /// inside a buffer, within the 4 KiB buffer (512 words), up to its end, and across one
    /// or more refills.
    @Test func skipLandsWhereDrawingDoes() {
        for start in [0, 1, 300, 511, 512] {
            for count in [0, 1, 211, 511, 512, 513, 1024, 1536, 5000] {
                var drawn = ChaCha20Generator(seed: Self.seed, label: "skip")
                var skipped = drawn
                for _ in 0..<start {
                    _ = drawn.next()
                    _ = skipped.next()
                }
                for _ in 0..<count { _ = drawn.next() }
                skipped.skip(words: count)
                let after = (0..<600).map { _ in drawn.next() }
                #expect((0..<600).map { _ in skipped.next() } == after, "start \(start), skip \(count)")
            }
        }
    }

    /// The same seed and label replay the stream; another label or seed gives another one.
    @Test func streamsAreKeyedBySeedAndLabel() {
        func words(_ seed: [UInt8], _ label: String) -> [UInt64] {
            var generator = ChaCha20Generator(seed: seed, label: label)
            return (0..<8).map { _ in generator.next() }
        }
        let seed = Self.seed
        #expect(words(seed, "a") == words(seed, "a"))
        #expect(words(seed, "a") != words(seed, "b"))
        var other = seed
        other[31] ^= 1
        #expect(words(seed, "a") != words(other, "a"))
    }

    /// nextIndex is uniform enough: 60,000 draws below 6 put each value within 5 % of 10,000
    /// (about 12 standard deviations: a biased or broken reduction fails, chance does not).
    @Test func indicesAreRoughlyUniform() {
        var generator = ChaCha20Generator(seed: Self.seed, label: "uniformity")
        var counts = [Int](repeating: 0, count: 6)
        for _ in 0..<60_000 { counts[generator.nextIndex(below: 6)] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 500 }, "\(counts)")
        #expect(generator.nextIndex(below: 1) == 0)
    }

    /// It is a RandomNumberGenerator: the standard library's shuffles replay for a seed.
    @Test func drivesStandardLibraryShuffles() {
        var first = ChaCha20Generator(seed: Self.seed, label: "shuffle")
        var second = ChaCha20Generator(seed: Self.seed, label: "shuffle")
        #expect(Array(0..<100).shuffled(using: &first) == Array(0..<100).shuffled(using: &second))
    }

    /// RFC 8439 §2.3.2: key 00..1f, nonce 00000009 0000004a 00000000, block 1 is these 64 bytes.
    /// The keystream starts at block 0, so block 1 is words 16..<32.
    @Test func rfc8439BlockFunctionVector() {
        let block: [UInt8] = [
            0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15, 0x50, 0x0f, 0xdd, 0x1f, 0xa3, 0x20, 0x71, 0xc4,
            0xc7, 0xd1, 0xf4, 0xc7, 0x33, 0xc0, 0x68, 0x03, 0x04, 0x22, 0xaa, 0x9a, 0xc3, 0xd4, 0x6c, 0x4e,
            0xd2, 0x82, 0x64, 0x46, 0x07, 0x9f, 0xaa, 0x09, 0x14, 0xc2, 0xd7, 0x05, 0xd9, 0x8b, 0x02, 0xa2,
            0xb5, 0x12, 0x9c, 0xd1, 0xde, 0x16, 0x4e, 0xb9, 0xcb, 0xd0, 0x83, 0xe8, 0xa2, 0x50, 0x3c, 0x4e,
        ]
        let words = Self.keystream(key: Array(0...31), nonce: [0, 0, 0, 0x09, 0, 0, 0, 0x4a, 0, 0, 0, 0], words: 32)
        #expect(Array(words[16..<32]) == Self.littleEndianWords(block))
    }

    /// RFC 8439 §2.4.2: the "sunscreen" plaintext encrypted from block 1 under key 00..1f and
    /// nonce 00000000 0000004a 00000000; ciphertext XOR plaintext is the keystream from block 1.
    @Test func rfc8439EncryptionVector() {
        let plaintext = Array(
            "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let ciphertext: [UInt8] = [
            0x6e, 0x2e, 0x35, 0x9a, 0x25, 0x68, 0xf9, 0x80, 0x41, 0xba, 0x07, 0x28, 0xdd, 0x0d, 0x69, 0x81,
            0xe9, 0x7e, 0x7a, 0xec, 0x1d, 0x43, 0x60, 0xc2, 0x0a, 0x27, 0xaf, 0xcc, 0xfd, 0x9f, 0xae, 0x0b,
            0xf9, 0x1b, 0x65, 0xc5, 0x52, 0x47, 0x33, 0xab, 0x8f, 0x59, 0x3d, 0xab, 0xcd, 0x62, 0xb3, 0x57,
            0x16, 0x39, 0xd6, 0x24, 0xe6, 0x51, 0x52, 0xab, 0x8f, 0x53, 0x0c, 0x35, 0x9f, 0x08, 0x61, 0xd8,
            0x07, 0xca, 0x0d, 0xbf, 0x50, 0x0d, 0x6a, 0x61, 0x56, 0xa3, 0x8e, 0x08, 0x8a, 0x22, 0xb6, 0x5e,
            0x52, 0xbc, 0x51, 0x4d, 0x16, 0xcc, 0xf8, 0x06, 0x81, 0x8c, 0xe9, 0x1a, 0xb7, 0x79, 0x37, 0x36,
            0x5a, 0xf9, 0x0b, 0xbf, 0x74, 0xa3, 0x5b, 0xe6, 0xb4, 0x0b, 0x8e, 0xed, 0xf2, 0x78, 0x5e, 0x42,
            0x87, 0x4d,
        ]
        #expect(plaintext.count == 114 && ciphertext.count == 114)
        let keystream = zip(plaintext, ciphertext).map { $0 ^ $1 }
        let fullWords = keystream.count / 4
        let words = Self.keystream(key: Array(0...31), nonce: [0, 0, 0, 0, 0, 0, 0, 0x4a, 0, 0, 0, 0], words: 16 + fullWords)
        #expect(Array(words[16...]) == Self.littleEndianWords(Array(keystream.prefix(4 * fullWords))))
    }

    /// `words` little-endian keystream words of the stream's ChaCha20 call from block 0.
    static func keystream(key: [UInt8], nonce: [UInt8], words: Int) -> [UInt32] {
        let bytes = ChaCha20Generator.keystream(
            [UInt8](repeating: 0, count: 4 * words)[...], key: SymmetricKey(data: key), counter: 0, nonce: nonce)
        return littleEndianWords(Array(bytes))
    }

    static func littleEndianWords(_ bytes: [UInt8]) -> [UInt32] {
        stride(from: 0, to: bytes.count, by: 4).map { i in
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[i + $1]) << (8 * UInt32($1)) }
        }
    }

}
