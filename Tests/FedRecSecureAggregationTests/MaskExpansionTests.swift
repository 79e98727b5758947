import FedRecSupport
import Testing

@testable import FedRecSecureAggregation

@Suite struct MaskExpansionTests {
    typealias Vectors = KnownAnswerVectors

    static func masked(
        _ vector: [UInt32], seed: [UInt8], domain: MaskDomain, bits: Int, adding: Bool
    ) -> [UInt32] {
        var out = vector
        out.withUnsafeMutableBufferPointer {
            MaskExpansion.apply(seed: seed, domain: domain, modulusBits: bits, adding: adding, to: $0)
        }
        return out
    }

    static let domain = MaskDomain(
        sessionID: Vectors.bytes(Vectors.maskSession), round: Vectors.maskRound, purpose: .pairwise)

    /// The nonce layout against hashlib's SHA-256 of the same bytes.
    @Test func nonceMatchesIndependentHash() {
        #expect(Self.domain.nonce == Vectors.bytes(Vectors.maskNoncePairwise))
        let selfDomain = MaskDomain(sessionID: Vectors.bytes(Vectors.maskSession), round: 0, purpose: .selfMask)
        #expect(selfDomain.nonce == Vectors.bytes(Vectors.maskNonceSelf))
    }

    /// Keystream words and masked vectors against OpenSSL's ChaCha20 (Python `cryptography`),
    /// at the start, across the 16384-word boundary between calls into ChaCha20, and at the end.
    @Test func masksMatchIndependentChaCha20() {
        let seed = Vectors.bytes(Vectors.maskSeed)
        let zero = [UInt32](repeating: 0, count: Vectors.maskCount)
        let words = Self.masked(zero, seed: seed, domain: Self.domain, bits: 32, adding: true)
        #expect(Vectors.maskIndices.map { words[$0] } == Vectors.maskWords)
        let negated = Self.masked(zero, seed: seed, domain: Self.domain, bits: 32, adding: false)
        #expect(Vectors.maskIndices.map { negated[$0] } == Vectors.maskWords.map { 0 &- $0 })

        let bits = Vectors.maskBits
        let base = (0..<Vectors.maskCount).map { UInt32(truncatingIfNeeded: UInt64($0) * 2_654_435_761) & ((1 << UInt32(bits)) - 1) }
        let added = Self.masked(base, seed: seed, domain: Self.domain, bits: bits, adding: true)
        #expect(Vectors.maskIndices.map { added[$0] } == Vectors.maskAdded)
        let subtracted = Self.masked(base, seed: seed, domain: Self.domain, bits: bits, adding: false)
        #expect(Vectors.maskIndices.map { subtracted[$0] } == Vectors.maskSubtracted)
    }

    /// RFC 8439 §2.3.2: key 00..1f, nonce 00000009 0000004a 00000000, block 1 is these 64 bytes.
    /// Our keystream starts at block 0, so block 1 is words 16..<32.
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

    static func keystream(key: [UInt8], nonce: [UInt8], words: Int) -> [UInt32] {
        var out = [UInt32](repeating: 0, count: words)
        out.withUnsafeMutableBufferPointer {
            MaskExpansion.applyKeystream(key: key, nonce: nonce, modulusBits: 32, adding: true, to: $0)
        }
        return out
    }

    static func littleEndianWords(_ bytes: [UInt8]) -> [UInt32] {
        stride(from: 0, to: bytes.count, by: 4).map { i in
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[i + $1]) << (8 * UInt32($1)) }
        }
    }

    /// Adding then subtracting the same mask gives the vector back, for every modulus width.
    @Test(arguments: [1, 2, 7, 16, 20, 31, 32])
    func addingThenSubtractingCancels(_ bits: Int) {
        var generator = SeededGenerator(seed: UInt64(bits))
        let seed = (0..<32).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let limit: UInt32 = bits == 32 ? .max : (1 << UInt32(bits)) - 1
        let vector = (0..<40_000).map { _ in UInt32(truncatingIfNeeded: generator.next()) & limit }
        let domain = MaskDomain(sessionID: [UInt8](repeating: 1, count: 32), round: 3, purpose: .selfMask)
        let masked = Self.masked(vector, seed: seed, domain: domain, bits: bits, adding: true)
        #expect(masked != vector)
        #expect(masked.allSatisfy { $0 <= limit })
        #expect(Self.masked(masked, seed: seed, domain: domain, bits: bits, adding: false) == vector)
    }

    /// Parties i and j each derive their pairwise seed from their own private key and the other's
    /// public key; i adds the mask and j subtracts it, so the sum of their masked vectors is the
    /// sum of the vectors (Bonawitz et al., CCS 2017, §4: the pairwise masks cancel).
    @Test func pairwiseMasksFromBothSidesCancel() throws {
        var generator = SeededGenerator(seed: 42)
        let i = PartyKeyPair(using: &generator)
        let j = PartyKeyPair(using: &generator)
        let session = (0..<32).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let seedAtI = try KeyAgreement.agreedSecret(
            privateKey: i.privateKey, publicKey: j.publicKeyBytes, sessionID: session, purpose: .pairwiseMask, parties: (5, 2))
        let seedAtJ = try KeyAgreement.agreedSecret(
            privateKey: j.privateKey, publicKey: i.publicKeyBytes, sessionID: session, purpose: .pairwiseMask, parties: (2, 5))
        #expect(seedAtI == seedAtJ)
        let bits = 24
        let domain = MaskDomain(sessionID: session, round: 9, purpose: .pairwise)
        let xi = (0..<20_000).map { UInt32($0 % 1000) }
        let xj = (0..<20_000).map { UInt32(($0 * 7) % 1000) }
        let yi = Self.masked(xi, seed: seedAtI, domain: domain, bits: bits, adding: true)
        let yj = Self.masked(xj, seed: seedAtJ, domain: domain, bits: bits, adding: false)
        #expect(yi != xi && yj != xj)
        let limit: UInt32 = (1 << UInt32(bits)) - 1
        #expect(zip(yi, yj).map { ($0 &+ $1) & limit } == zip(xi, xj).map { $0 + $1 })
    }

    /// Another seed, round, purpose or session gives another mask; the same inputs the same one.
    @Test func masksDependOnEveryInput() {
        let seed = [UInt8](repeating: 9, count: 32)
        let session = [UInt8](repeating: 2, count: 32)
        let zero = [UInt32](repeating: 0, count: 64)
        func mask(_ seed: [UInt8], _ session: [UInt8], _ round: UInt64, _ purpose: MaskPurpose) -> [UInt32] {
            Self.masked(zero, seed: seed, domain: MaskDomain(sessionID: session, round: round, purpose: purpose), bits: 32, adding: true)
        }
        let reference = mask(seed, session, 1, .pairwise)
        #expect(mask(seed, session, 1, .pairwise) == reference)
        var otherSeed = seed
        otherSeed[31] ^= 1
        var otherSession = session
        otherSession[0] ^= 1
        #expect(mask(otherSeed, session, 1, .pairwise) != reference)
        #expect(mask(seed, otherSession, 1, .pairwise) != reference)
        #expect(mask(seed, session, 2, .pairwise) != reference)
        #expect(mask(seed, session, 1, .selfMask) != reference)
    }

    /// Masks of different lengths from one seed and domain agree on their common prefix.
    @Test func prefixesAgree() {
        let seed = [UInt8](repeating: 4, count: 32)
        let long = Self.masked([UInt32](repeating: 0, count: 40_000), seed: seed, domain: Self.domain, bits: 32, adding: true)
        for count in [0, 1, 15, 16, 17, 16_384, 16_385, 39_999] {
            let short = Self.masked([UInt32](repeating: 0, count: count), seed: seed, domain: Self.domain, bits: 32, adding: true)
            #expect(short[...] == long.prefix(count))
        }
    }
}
