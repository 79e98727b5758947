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
}
