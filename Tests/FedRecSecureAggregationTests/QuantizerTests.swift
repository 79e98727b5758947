import FedRecSupport
import Testing

@testable import FedRecSecureAggregation

@Suite struct QuantizerTests {
    /// M = ⌊(2^(b-1) - 1) / n⌋, computed by hand for a few cases.
    @Test func levelsLeaveNoRoomToWrap() throws {
        #expect(try Quantizer(clipBound: 1, modulusBits: 24, maximumParties: 943).levels == 8_895)  // 8388607 / 943
        #expect(try Quantizer(clipBound: 1, modulusBits: 32, maximumParties: 1).levels == 2_147_483_647)
        #expect(try Quantizer(clipBound: 1, modulusBits: 8, maximumParties: 127).levels == 1)
        #expect(Quantizer.bitsNeeded(parties: 943, levels: 8_895) == 24)
        #expect(Quantizer.bitsNeeded(parties: 943, levels: 8_896) == 25)
    }

    /// Too many parties for the bits, a bad clip bound or modulus: refused, never wrapped.
    @Test func refusesWhatWouldWrap() {
        #expect(throws: FedRecError.self) { try Quantizer(clipBound: 1, modulusBits: 8, maximumParties: 128) }
        #expect(throws: FedRecError.self) { try Quantizer(clipBound: 0, modulusBits: 24, maximumParties: 2) }
        #expect(throws: FedRecError.self) { try Quantizer(clipBound: .infinity, modulusBits: 24, maximumParties: 2) }
        #expect(throws: FedRecError.self) { try Quantizer(clipBound: 1, modulusBits: 33, maximumParties: 2) }
        #expect(throws: FedRecError.self) { try Quantizer(clipBound: 1, modulusBits: 1, maximumParties: 1) }
        let q = try? Quantizer(clipBound: 1, modulusBits: 16, maximumParties: 10)
        #expect(throws: FedRecError.self) { try q?.dequantizeSum([0], parties: 11) }
        var generator = SeededGenerator(seed: 1)
        #expect(throws: FedRecError.self) { try q?.quantize([0, .nan], using: &generator) }
    }

    /// n parties all at the clip bound (or beyond it) sum to exactly ±n·c: the extreme sum is
    /// representable, and values beyond the bound are clipped.
    @Test func extremeSumsDecodeExactly() throws {
        let n = 100
        let q = try Quantizer(clipBound: 0.5, modulusBits: 20, maximumParties: n)
        var generator = SeededGenerator(seed: 2)
        let one = try q.quantize([0.5, -0.5, 7, -7, 0], using: &generator)
        #expect(one.map(q.signedValue) == [q.levels, -q.levels, q.levels, -q.levels, 0])
        let mask = q.modulusMask
        let sum = one.map { UInt32(truncatingIfNeeded: UInt64($0) * UInt64(n)) & mask }
        let decoded = try q.dequantizeSum(sum, parties: n)
        for (value, expected) in zip(decoded, [50.0, -50, 50, -50, 0]) { #expect(abs(value - expected) < 1e-9) }
    }

    /// Stochastic rounding is unbiased: the mean of many roundings of x is x·M/c within a few
    /// standard errors (each rounding is Bernoulli on the fraction, sd ≤ 1/2).
    @Test func roundingIsUnbiased() throws {
        let q = try Quantizer(clipBound: 1, modulusBits: 12, maximumParties: 8)  // M = 255
        let x: Float = 0.3
        let exact = Double(x) * Double(q.levels)  // 76.5 (x is not exactly 0.3 in Float)
        var generator = SeededGenerator(seed: 3)
        let count = 40_000
        let words = try q.quantize([Float](repeating: x, count: count), using: &generator)
        let values = words.map(q.signedValue)
        #expect(Set(values) == [Int64(exact.rounded(.down)), Int64(exact.rounded(.down)) + 1])
        let mean = Double(values.reduce(0, +)) / Double(count)
        #expect(abs(mean - exact) < 5 * 0.5 / Double(count).squareRoot())
    }

    /// A generator that draws the words it skips (the default `skip`): quantising with it is
    /// quantising with one draw per coordinate, zeros included.
    struct DrawingGenerator: SkippingRandomNumberGenerator {
        var stream: ChaCha20Generator
        mutating func next() -> UInt64 { stream.next() }
    }

    /// Zeros' rounding draws are skipped by seeking the ChaCha20 stream: a sparse vector
    /// (runs of ±0 within and across 4 KiB of keystream, at the ends too) quantises to the
    /// same words as when every coordinate draws, and the stream ends in the same place.
    @Test func zeroRunsQuantiseAsIfDrawn() throws {
        let q = try Quantizer(clipBound: 4, modulusBits: 22, maximumParties: 943)
        var values = [Float](repeating: 0, count: 20_000)
        var picker = SeededGenerator(seed: 6)
        for run in stride(from: 3, to: values.count - 40, by: 1_337) {
            for i in run..<(run + Int(picker.next() % 40)) { values[i] = Float(picker.nextUnitDouble() * 8 - 4) }
        }
        values[7] = -0.0
        values[values.count - 1] = 1.25
        var seeking = ChaCha20Generator(seed: [UInt8](repeating: 9, count: 32), label: "quantise")
        var drawing = DrawingGenerator(stream: seeking)
        #expect(try q.quantize(values, using: &seeking) == q.quantize(values, using: &drawing))
        #expect(try q.quantize([0, -0.0, 0], using: &seeking) == q.quantize([0, -0.0, 0], using: &drawing))
        #expect(seeking.next() == drawing.next())
    }

    /// Negative values round between the two nearest integers too, in two's complement.
    @Test func negativeValuesInTwosComplement() throws {
        let q = try Quantizer(clipBound: 2, modulusBits: 8, maximumParties: 1)  // M = 127
        var generator = SeededGenerator(seed: 4)
        let words = try q.quantize([-2, -1], using: &generator)
        #expect(words[0] == 256 - 127)
        #expect([192, 193].contains(words[1]))  // -63.5 → -64 or -63
        #expect(q.signedValue(255) == -1 && q.signedValue(127) == 127 && q.signedValue(128) == -128)
    }
}

@Suite struct BitPackingTests {
    /// A bit-at-a-time packing, written independently of the accumulator loop.
    static func naivePack(_ words: [UInt32], bits: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (words.count * bits + 7) / 8)
        for (i, word) in words.enumerated() {
            for bit in 0..<bits where (word >> UInt32(bit)) & 1 == 1 {
                let position = i * bits + bit
                out[position / 8] |= 1 << UInt8(position % 8)
            }
        }
        return out
    }

    @Test(arguments: [1, 3, 7, 8, 12, 17, 24, 31, 32])
    func packsAsTheNaiveLayoutAndRoundTrips(_ bits: Int) throws {
        var generator = SeededGenerator(seed: UInt64(bits))
        let mask: UInt32 = bits == 32 ? .max : (1 << UInt32(bits)) - 1
        for count in [0, 1, 2, 5, 8, 1000] {
            let words = (0..<count).map { _ in UInt32(truncatingIfNeeded: generator.next()) & mask }
            let packed = BitPacking.pack(words, bits: bits)
            #expect(packed == Self.naivePack(words, bits: bits))
            #expect(packed.count == (count * bits + 7) / 8)
            #expect(try BitPacking.unpack(packed, bits: bits, count: count) == words)
        }
    }

    /// High bits beyond the width are dropped when packing.
    @Test func ignoresBitsAboveTheWidth() throws {
        #expect(BitPacking.pack([0xFFFF_FFFF, 0x100], bits: 4) == [0x0F])
    }

    /// A wrong length or stray bits past the last word are refused, not read.
    @Test func refusesWrongLengthAndStrayBits() {
        #expect(throws: FedRecError.self) { try BitPacking.unpack([0, 0], bits: 12, count: 2) }
        #expect(throws: FedRecError.self) { try BitPacking.unpack([0, 0, 0, 0], bits: 12, count: 2) }
        #expect(throws: FedRecError.self) { try BitPacking.unpack([0, 0x10], bits: 12, count: 1) }
        #expect((try? BitPacking.unpack([0xFF, 0x0F], bits: 12, count: 1)) == [0xFFF])
    }
}
