import FedRecSupport

/// How a party's real-valued update becomes integers mod 2^b that can be masked and summed,
/// and how the server turns the unmasked sum back into real values.
///
/// Each coordinate is clipped to [-c, c] (c = `clipBound`), scaled by M / c and rounded
/// stochastically to one of the two nearest integers, so that the expected integer is exactly
/// x · M / c (unbiased rounding, as in Bonawitz et al. CCS 2017 §7 and the distributed-DP
/// pipelines of Kairouz, Liu & Steinke ICML 2021 §4): a party's integer lies in [-M, M] and is
/// stored in two's complement mod 2^b. M = ⌊(2^(b-1) - 1) / n⌋ for at most n parties, so the
/// sum of any n of them lies in [-(2^(b-1) - 1), 2^(b-1) - 1] and never wraps: the modulus is
/// chosen from the population, and a sum of more than n parties is refused
/// (`dequantizeSum`), never wrapped silently.
///
/// The rounding error of one coordinate is below c / M per party; of the sum of n parties,
/// below n · c / M in the worst case and about √n · c / (2M) in standard deviation.
public struct Quantizer: Sendable, Equatable, Codable {
    /// c: every coordinate is clipped to [-c, c] before scaling.
    public let clipBound: Float
    /// b: integers live mod 2^b (1...32).
    public let modulusBits: Int
    /// n: the most parties whose integers may be summed.
    public let maximumParties: Int
    /// M: a party's model values lie in [-M, M].
    public let levels: Int64
    /// A cap on M below ⌊(2^(b-1) - 1) / n⌋ (QSGD-compressed updates under masks: s =
    /// 2^(q-1) - 1 levels on the shared scale c, Alistarh et al. 2017 with c in place of each
    /// client's norm); nil: none.
    public let maximumLevels: Int64?
    /// ⌊(2^(b-1) - 1) / n⌋: the bound on a party's exact counts and weights (equal to M
    /// unless M is capped).
    public let countLevels: Int64

    /// A quantizer for at most `maximumParties` parties. Throws `.usage` if `clipBound` is not
    /// positive and finite, `modulusBits` is not in 2...32, or 2^(b-1) - 1 < n (not even one
    /// level per party: more bits are needed).
    public init(clipBound: Float, modulusBits: Int, maximumParties: Int, maximumLevels: Int64? = nil) throws {
        guard clipBound.isFinite, clipBound > 0 else {
            throw FedRecError(.usage, "the secure-aggregation clip bound must be positive and finite, not \(clipBound)")
        }
        guard (2...32).contains(modulusBits) else {
            throw FedRecError(.usage, "the secure-aggregation modulus is 2^b with b in 2...32, not \(modulusBits)")
        }
        guard maximumParties >= 1 else {
            throw FedRecError(.usage, "secure aggregation needs at least one party, not \(maximumParties)")
        }
        let half = (Int64(1) << Int64(modulusBits - 1)) - 1
        let levels = half / Int64(maximumParties)
        guard levels >= 1 else {
            throw FedRecError(
                .usage,
                "a sum of \(maximumParties) parties does not fit in \(modulusBits) bits without wrapping: use at least \(Self.bitsNeeded(parties: maximumParties, levels: 1)) bits")
        }
        if let maximumLevels, maximumLevels < 1 {
            throw FedRecError(.usage, "a quantizer needs at least one level, not \(maximumLevels)")
        }
        self.clipBound = clipBound
        self.modulusBits = modulusBits
        self.maximumParties = maximumParties
        self.countLevels = levels
        self.maximumLevels = maximumLevels
        self.levels = min(levels, maximumLevels ?? levels)
    }

    /// The same modulus and parties with another clip bound (one tensor's own).
    public func clipped(to bound: Float) throws -> Quantizer {
        try Quantizer(clipBound: bound, modulusBits: modulusBits, maximumParties: maximumParties, maximumLevels: maximumLevels)
    }

    /// The fewest modulus bits for which n parties with `levels` levels each cannot wrap:
    /// the least b with n · levels ≤ 2^(b-1) - 1.
    public static func bitsNeeded(parties: Int, levels: Int64) -> Int {
        let total = Int64(parties).multipliedReportingOverflow(by: levels)
        guard !total.overflow else { return 64 }
        var bits = 2
        while bits < 63, (Int64(1) << Int64(bits - 1)) - 1 < total.partialValue { bits += 1 }
        return bits
    }

    /// 2^b - 1: the mask that reduces a word mod 2^b.
    public var modulusMask: UInt32 { modulusBits == 32 ? .max : (1 << UInt32(modulusBits)) - 1 }

    /// The largest error the rounding adds to one coordinate of one party: c / M.
    public var resolution: Double { Double(clipBound) / Double(levels) }

    /// Clips, scales and rounds `values` into `output` (same count) as integers mod 2^b.
    /// Non-finite values are refused (`.badData`): an update holding NaN is a bug upstream,
    /// and clipping would hide it. The rounding draws one 64-bit word per coordinate from
    /// `generator` (a `ChaCha20Generator` keyed from the system CSPRNG, or a named test seed);
    /// a run of zeros (±0), which rounds to 0 whatever is drawn, has its words skipped
    /// (`SkippingRandomNumberGenerator`) rather than drawn, with the same result.
    /// Specialised for `ChaCha20Generator`, the parties' generator, so that other modules'
    /// calls draw a word inline instead of through the protocol's witness table.
    @_specialize(exported: true, where G == ChaCha20Generator)
    public func quantize<G: SkippingRandomNumberGenerator>(
        _ values: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<UInt32>,
        using generator: inout G
    ) throws {
        precondition(values.count == output.count, "quantize: \(values.count) values into \(output.count) words")
        let c = Double(clipBound)
        let scale = Double(levels) / c
        let mask = modulusMask
        var i = 0
        while i < values.count {
            let zeros = Self.zeroRun(values, from: i)
            if zeros > 0 {
                for k in i..<(i + zeros) { output[k] = 0 }
                generator.skip(words: zeros)
                i += zeros
                continue
            }
            let x = values[i]
            guard x.isFinite else {
                throw FedRecError(.badData, "an update value to quantize is \(x) (coordinate \(i))")
            }
            let scaled = (min(max(Double(x), -c), c) * scale)
            let floor = scaled.rounded(.down)
            let fraction = scaled - floor
            // Uniform in [0, 1) from the top 53 bits; round up with probability `fraction`.
            let draw = Double(generator.next() >> 11) * 0x1p-53
            var integer = Int64(floor) + (draw < fraction ? 1 : 0)
            integer = min(max(integer, -levels), levels)
            output[i] = UInt32(truncatingIfNeeded: integer) & mask
            i += 1
        }
    }

    /// How many of `values` from `start` on are zero (±0) before the first that is not.
    @inline(__always)
    static func zeroRun(_ values: UnsafeBufferPointer<Float>, from start: Int) -> Int {
        var end = start
        while end < values.count, values[end] == 0 { end += 1 }
        return end - start
    }

    /// `quantize` into a new array.
    public func quantize<G: SkippingRandomNumberGenerator>(_ values: [Float], using generator: inout G) throws -> [UInt32] {
        var output = [UInt32](repeating: 0, count: values.count)
        try values.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { try quantize(input, into: $0, using: &generator) }
        }
        return output
    }

    /// The integer a word mod 2^b stands for: words at or above 2^(b-1) are negative.
    @inline(__always)
    public func signedValue(_ word: UInt32) -> Int64 {
        let value = Int64(word & modulusMask)
        return value >= (Int64(1) << Int64(modulusBits - 1)) ? value - (Int64(1) << Int64(modulusBits)) : value
    }

    /// The real-valued sum of `parties` parties' updates from their integer sum mod 2^b:
    /// each word read as signed and scaled by c / M. Throws `.usage` if `parties` exceeds
    /// `maximumParties` (the sum might have wrapped).
    public func dequantizeSum(_ sum: [UInt32], parties: Int) throws -> [Double] {
        guard parties <= maximumParties else {
            throw FedRecError(
                .usage,
                "a sum of \(parties) parties where the modulus was chosen for at most \(maximumParties): it may have wrapped")
        }
        let step = Double(clipBound) / Double(levels)
        return sum.map { Double(signedValue($0)) * step }
    }
}
