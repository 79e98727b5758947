import FedRecSupport
import Testing

@testable import FedRecSecureAggregation

@Suite struct ShamirSharingTests {
    typealias Vectors = KnownAnswerVectors

    /// Shares from fixed coefficients equal Python's term-by-term evaluation, byte for byte.
    @Test(arguments: Vectors.shamir.indices)
    func sharesMatchIndependentEvaluation(_ index: Int) throws {
        let vector = Vectors.shamir[index]
        let secret = Vectors.bytes(vector.secret)
        #expect(try ShamirSharing.secretChunks(secret) == vector.chunks)
        let shares = try ShamirSharing.split(chunks: vector.chunks, coefficients: vector.coefficients, shareholders: vector.shareX)
        #expect(shares.map(\.x) == vector.shareX)
        #expect(shares.map(\.values) == vector.shareValues)
        #expect(shares.map(\.bytes) == vector.shareBytes.map(Vectors.bytes))
        for (share, bytes) in zip(shares, vector.shareBytes) {
            #expect(try ShamirShare(bytes: Vectors.bytes(bytes)) == share)
        }
    }

    /// Reconstruction from Python's subset gives the secret; from one share fewer, Lagrange at 0
    /// gives what Python's Lagrange gives (not the secret), and `reconstruct` refuses it.
    @Test(arguments: Vectors.shamir.indices)
    func reconstructionMatchesIndependentLagrange(_ index: Int) throws {
        let vector = Vectors.shamir[index]
        let secret = Vectors.bytes(vector.secret)
        let shares = try zip(vector.shareX, vector.shareValues).map { try ShamirShare(x: $0, values: $1) }
        let subset = vector.reconstructingSubset.map { shares[$0] }
        #expect(try ShamirSharing.reconstruct(subset, threshold: vector.threshold, secretLength: secret.count) == secret)
        let short = vector.shortSubset.map { shares[$0] }
        for chunk in vector.chunks.indices {
            let value = try ShamirSharing.interpolateAtZero(xs: short.map { UInt128($0.x) }, ys: short.map { $0.values[chunk] })
            #expect(value == vector.shortInterpolation[chunk])
        }
        #expect(throws: FedRecError.self) {
            try ShamirSharing.reconstruct(short, threshold: vector.threshold - 1, secretLength: secret.count)
        }
    }

    /// Any `threshold` of the shares reconstruct; `threshold - 1` of them give anything but the
    /// secret (a refusal or another value), for random secrets.
    @Test(arguments: [(1, 1), (1, 4), (2, 3), (3, 5), (5, 9), (7, 7)])
    func anyThresholdSharesReconstructAndFewerDoNot(_ threshold: Int, _ parties: Int) throws {
        var generator = SeededGenerator(seed: UInt64(threshold * 100 + parties))
        for trial in 0..<10 {
            let length = [32, 1, 15, 16, 45][trial % 5]
            let secret = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let holders = (0..<UInt32(parties)).map { $0 * 3 + 1 }
            let shares = try ShamirSharing.split(secret: secret, threshold: threshold, shareholders: holders, using: &generator)
            #expect(shares.count == parties)
            #expect(shares.allSatisfy { $0.values.count == ShamirSharing.chunkCount(secretLength: length) })
            var subset = shares
            subset.shuffle(using: &generator)
            subset.removeLast(parties - threshold)
            #expect(try ShamirSharing.reconstruct(subset, threshold: threshold, secretLength: length) == secret)
            // More shares than the threshold are fine too.
            #expect(try ShamirSharing.reconstruct(shares.reversed(), threshold: threshold, secretLength: length) == secret)
            guard threshold > 1 else { continue }
            let fewer = Array(subset.dropLast())
            #expect(throws: FedRecError.self) {
                try ShamirSharing.reconstruct(fewer, threshold: threshold, secretLength: length)
            }
            let wrong = try? ShamirSharing.reconstruct(fewer, threshold: threshold - 1, secretLength: length)
            #expect(wrong != secret)
            // Field level: each chunk interpolated from threshold - 1 points differs from the chunk.
            let chunks = try ShamirSharing.secretChunks(secret)
            for (chunk, expected) in chunks.enumerated() {
                let value = try ShamirSharing.interpolateAtZero(xs: fewer.map { UInt128($0.x) }, ys: fewer.map { $0.values[chunk] })
                #expect(value != expected)
            }
        }
    }

    @Test func sameSeedSameShares() throws {
        var first = SeededGenerator(seed: 9)
        var second = SeededGenerator(seed: 9)
        let secret = [UInt8](repeating: 0xab, count: 32)
        let a = try ShamirSharing.split(secret: secret, threshold: 3, shareholders: [1, 2, 3, 4], using: &first)
        let b = try ShamirSharing.split(secret: secret, threshold: 3, shareholders: [1, 2, 3, 4], using: &second)
        #expect(a == b)
        #expect(a[0].bytes.count == 52)
    }

    @Test func reconstructRefusesBadSharesWithErrors() throws {
        var generator = SeededGenerator(seed: 5)
        let secret = [UInt8](repeating: 7, count: 32)
        let shares = try ShamirSharing.split(secret: secret, threshold: 3, shareholders: [1, 2, 3, 4, 5], using: &generator)
        func failure(_ body: () throws -> [UInt8]) -> FailureClass? {
            do { _ = try body(); return nil } catch let error as FedRecError { return error.failure } catch { return nil }
        }
        #expect(failure { try ShamirSharing.reconstruct(Array(shares.prefix(2)), threshold: 3, secretLength: 32) } == .badData)
        #expect(failure { try ShamirSharing.reconstruct([shares[0], shares[0], shares[1]], threshold: 3, secretLength: 32) } == .badData)
        #expect(failure { try ShamirSharing.reconstruct(Array(shares.prefix(3)), threshold: 3, secretLength: 46) } == .mismatch)
        let mixed = try ShamirShare(x: 9, values: [1, 2])
        #expect(failure { try ShamirSharing.reconstruct([shares[0], shares[1], mixed], threshold: 3, secretLength: 32) } == .mismatch)
        #expect(failure { try ShamirSharing.reconstruct(Array(shares.prefix(3)), threshold: 0, secretLength: 32) } == .usage)
        // A share altered in transit reconstructs something else, which is refused (the noise
        // is a random field element: a small one could pass for chunks, as λ_3 = 1 here).
        let noise = PrimeField127.random(using: &generator)
        let altered = try ShamirShare(x: shares[2].x, values: shares[2].values.map { PrimeField127.add($0, noise) })
        #expect(failure { try ShamirSharing.reconstruct([shares[0], shares[1], altered], threshold: 3, secretLength: 32) } == .corrupt)
    }

    @Test func splitRefusesBadArguments() {
        var generator = SeededGenerator(seed: 1)
        #expect(throws: FedRecError.self) { try ShamirSharing.split(secret: [], threshold: 1, shareholders: [1], using: &generator) }
        #expect(throws: FedRecError.self) { try ShamirSharing.split(secret: [1], threshold: 3, shareholders: [1, 2], using: &generator) }
        #expect(throws: FedRecError.self) { try ShamirSharing.split(secret: [1], threshold: 0, shareholders: [1, 2], using: &generator) }
        #expect(throws: FedRecError.self) { try ShamirSharing.split(secret: [1], threshold: 2, shareholders: [1, 1], using: &generator) }
        #expect(throws: FedRecError.self) { try ShamirSharing.split(secret: [1], threshold: 2, shareholders: [0, 1], using: &generator) }
    }

    @Test func shareParsingRefusesWhatAnotherPartyCouldSend() throws {
        let good = try ShamirShare(x: 1, values: [PrimeField127.p - 1, 0, 5]).bytes
        #expect(good.count == 52)
        #expect(try ShamirShare(bytes: good).values == [PrimeField127.p - 1, 0, 5])
        #expect(throws: FedRecError.self) { try ShamirShare(bytes: []) }
        #expect(throws: FedRecError.self) { try ShamirShare(bytes: Array(good.prefix(4))) }
        #expect(throws: FedRecError.self) { try ShamirShare(bytes: Array(good.dropLast())) }
        var zeroX = good
        zeroX.replaceSubrange(0..<4, with: [0, 0, 0, 0])
        #expect(throws: FedRecError.self) { try ShamirShare(bytes: zeroX) }
        var atP = good
        atP.replaceSubrange(4..<20, with: ShamirShare.bigEndianBytes(PrimeField127.p))
        #expect(throws: FedRecError.self) { try ShamirShare(bytes: atP) }
        var allOnes = good
        allOnes.replaceSubrange(4..<20, with: [UInt8](repeating: 0xff, count: 16))
        #expect(throws: FedRecError.self) { try ShamirShare(bytes: allOnes) }
    }
}

extension ShamirShare {
    static func bigEndianBytes(_ value: UInt128) -> [UInt8] {
        (0..<16).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}
