import FedRecSupport
import Testing

@testable import FedRecSecureAggregation

@Suite struct PrimeField127Tests {
    typealias F = PrimeField127

    @Test func modulusIsTwoToThe127MinusOne() {
        #expect(F.p == 0x7fff_ffff_ffff_ffff_ffff_ffff_ffff_ffff)
    }

    /// Against Python's integers (make_vectors.py): sums, differences, products, inverses.
    @Test func arithmeticMatchesIndependentIntegers() {
        for (a, b, sum, difference, product, inverse) in KnownAnswerVectors.field {
            #expect(F.add(a, b) == sum)
            #expect(F.sub(a, b) == difference)
            #expect(F.mul(a, b) == product)
            #expect(F.mul(b, a) == product)
            #expect(F.inverse(a) == (a == 0 ? nil : inverse))
        }
    }

    @Test func reductionOfHandPickedValues() {
        #expect(F.reduce(F.p) == 0)
        #expect(F.reduce(F.p + 1) == 1)
        #expect(F.reduce(UInt128.max) == 1)  // 2^128 - 1 = 2p + 1
        #expect(F.reduce(1 << 127) == 1)
        #expect(F.negate(0) == 0)
        #expect(F.negate(1) == F.p - 1)
    }

    /// a · a^-1 = 1 and (a + b) - b = a for seeded random elements.
    @Test func inverseAndSubtractionUndoTheirOperations() throws {
        var generator = SeededGenerator(seed: 127)
        for _ in 0..<200 {
            let a = F.random(using: &generator)
            let b = F.random(using: &generator)
            #expect(a < F.p && b < F.p)
            #expect(F.sub(F.add(a, b), b) == a)
            if a != 0 { #expect(F.mul(a, try #require(F.inverse(a))) == 1) }
        }
    }

    /// A generator that gives all ones 127 bits first (p itself, rejected) then a small value.
    @Test func randomRejectsTheModulus() {
        struct Scripted: RandomNumberGenerator {
            var words: [UInt64]
            mutating func next() -> UInt64 { words.removeFirst() }
        }
        var generator = Scripted(words: [.max, .max, 0, 5])
        #expect(F.random(using: &generator) == 5)
    }
}
