import Crypto
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

    /// Mask coordinates and masked vectors against OpenSSL's AES-256-CTR (Python `cryptography`)
    /// read as the layout prescribes for each width (1, 2, 3 and 4 bytes a coordinate), at the
    /// start, across the 16,384-coordinate boundary between calls into AES-CTR, and at the end
    /// (a partial group of 16 three-byte coordinates).
    @Test func masksMatchIndependentAESCTR() {
        let seed = Vectors.bytes(Vectors.maskSeed)
        let zero = [UInt32](repeating: 0, count: Vectors.maskCount)
        let words = Self.masked(zero, seed: seed, domain: Self.domain, bits: 32, adding: true)
        #expect(Vectors.maskIndices.map { words[$0] } == Vectors.maskWords)
        let negated = Self.masked(zero, seed: seed, domain: Self.domain, bits: 32, adding: false)
        #expect(Vectors.maskIndices.map { negated[$0] } == Vectors.maskWords.map { 0 &- $0 })

        #expect(Vectors.maskCases.map(\.bits) == [8, 16, 17, 20, 24, 32])
        for (bits, added, subtracted) in Vectors.maskCases {
            let base = (0..<Vectors.maskCount).map {
                UInt32(truncatingIfNeeded: UInt64($0) * 2_654_435_761) & (bits == 32 ? .max : (1 << UInt32(bits)) - 1)
            }
            let plus = Self.masked(base, seed: seed, domain: Self.domain, bits: bits, adding: true)
            #expect(Vectors.maskIndices.map { plus[$0] } == added, "b = \(bits)")
            let minus = Self.masked(base, seed: seed, domain: Self.domain, bits: bits, adding: false)
            #expect(Vectors.maskIndices.map { minus[$0] } == subtracted, "b = \(bits)")
        }
    }

    /// NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt): the counter block f0f1…feff is our 12-byte
    /// nonce f0…fb followed by block counter 0xfcfdfeff; ciphertext XOR plaintext is the keystream.
    @Test func nistAES256CTRVector() {
        let key: [UInt8] = [
            0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d, 0x77, 0x81,
            0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4,
        ]
        let plaintext: [UInt8] = [
            0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17, 0x2a,
            0xae, 0x2d, 0x8a, 0x57, 0x1e, 0x03, 0xac, 0x9c, 0x9e, 0xb7, 0x6f, 0xac, 0x45, 0xaf, 0x8e, 0x51,
        ]
        let ciphertext: [UInt8] = [
            0x60, 0x1e, 0xc3, 0x13, 0x77, 0x57, 0x89, 0xa5, 0xb7, 0xa7, 0xf5, 0x04, 0xbb, 0xf3, 0xd2, 0x28,
            0xf4, 0x43, 0xe3, 0xca, 0x4d, 0x62, 0xb5, 0x9a, 0xca, 0x84, 0xe9, 0x90, 0xca, 0xca, 0xf5, 0xc5,
        ]
        let nonce = Array(UInt8(0xf0)...UInt8(0xfb))
        let keystream = MaskExpansion.aesKeystream(
            [UInt8](repeating: 0, count: 32)[...], key: SymmetricKey(data: key), nonce: nonce, block: 0xfcfd_feff)
        #expect(Array(keystream) == zip(plaintext, ciphertext).map { $0 ^ $1 })
    }

    /// A uniform w-byte value reduced mod 2^b is uniform: for b = 8, 17, 24 and 32, one mask's
    /// coordinates (65,536 of them, over 4 calls into AES-CTR) put their low byte and their top
    /// byte (bits b−8 ..< b) in 256 cells each with chi-square below 400 (df = 255, about 6.4
    /// standard deviations), in the 12 directly read and the 4 gathered lanes of a three-byte
    /// group alike, and every coordinate is below 2^b.
    @Test(arguments: [8, 17, 24, 32])
    func maskCoordinatesAreUniform(_ bits: Int) {
        let seed = (0..<32).map { UInt8(truncatingIfNeeded: $0 * 11 + bits) }
        let count = 1 << 16
        let coordinates = Self.masked([UInt32](repeating: 0, count: count), seed: seed, domain: Self.domain, bits: bits, adding: true)
        let limit: UInt64 = 1 << UInt64(bits)
        #expect(coordinates.allSatisfy { UInt64($0) < limit })
        func chiSquare(_ values: [UInt32]) -> Double {
            var counts = [Int](repeating: 0, count: 256)
            for value in values { counts[Int(value)] += 1 }
            let expected = Double(values.count) / 256
            return counts.reduce(0.0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
        }
        let direct = coordinates.indices.filter { $0 % 16 < 12 }.map { coordinates[$0] }
        let gathered = coordinates.indices.filter { $0 % 16 >= 12 }.map { coordinates[$0] }
        for values in [direct, gathered] {
            #expect(chiSquare(values.map { $0 & 0xFF }) < 400, "b = \(bits): low byte")
            #expect(chiSquare(values.map { $0 >> UInt32(bits - 8) }) < 400, "b = \(bits): top byte")
        }
    }

    /// Coordinates take ⌈b/8⌉ keystream bytes.
    @Test func bytesPerCoordinate() {
        #expect([1, 8, 9, 16, 17, 22, 24, 25, 32].map { MaskExpansion.bytesPerCoordinate(modulusBits: $0) } == [1, 1, 2, 2, 3, 3, 3, 4, 4])
    }

    /// Several masks applied at once give what applying them one by one gives.
    @Test(arguments: [8, 17, 24, 32])
    func batchedMasksEqualOneByOne(_ bits: Int) {
        let domain = MaskDomain(sessionID: [UInt8](repeating: 5, count: 32), round: 1, purpose: .pairwise)
        let masks = (0..<5).map { k in Mask(seed: [UInt8](repeating: UInt8(k), count: 32), domain: domain, adding: k % 2 == 0) }
        let limit: UInt32 = bits == 32 ? .max : (1 << UInt32(bits)) - 1
        let vector = (0..<20_011).map { UInt32(truncatingIfNeeded: $0 &* 40_503) & limit }
        var batched = vector
        batched.withUnsafeMutableBufferPointer { MaskExpansion.apply(masks, modulusBits: bits, to: $0) }
        var single = vector
        for mask in masks { single = Self.masked(single, seed: mask.seed, domain: mask.domain, bits: bits, adding: mask.adding) }
        #expect(batched == single)
    }

    /// Adding then subtracting the same mask gives the vector back, for every modulus width.
    @Test(arguments: [1, 2, 7, 8, 9, 16, 17, 20, 22, 24, 25, 31, 32])
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

    /// Masks of different lengths from one seed and domain agree on their common prefix, for
    /// every width of coordinate (partial groups of three-byte coordinates included).
    @Test(arguments: [8, 16, 22, 32])
    func prefixesAgree(_ bits: Int) {
        let seed = [UInt8](repeating: 4, count: 32)
        let long = Self.masked([UInt32](repeating: 0, count: 40_000), seed: seed, domain: Self.domain, bits: bits, adding: true)
        for count in [0, 1, 11, 12, 13, 15, 16, 17, 16_384, 16_385, 16_397, 39_999] {
            let short = Self.masked([UInt32](repeating: 0, count: count), seed: seed, domain: Self.domain, bits: bits, adding: true)
            #expect(short[...] == long.prefix(count), "b = \(bits), \(count) coordinates")
        }
    }
}
