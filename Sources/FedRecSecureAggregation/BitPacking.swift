import FedRecSupport

/// Words mod 2^b packed at b bits each, so a masked vector costs b/32 of its 32-bit words on
/// the wire (Flower's SecAgg+ ships 64-bit words whatever the modulus).
///
/// Layout: word i occupies bits i·b ..< (i+1)·b of the little-endian bit stream (bit j is bit
/// j mod 8 of byte j / 8); the last byte's unused high bits are zero. ⌈count · b / 8⌉ bytes.
public enum BitPacking {
    /// The bytes `count` words of `bits` bits pack into.
    public static func byteCount(count: Int, bits: Int) -> Int {
        (count * bits + 7) / 8
    }

    /// Packs the low `bits` bits (1...32) of each word; higher bits are ignored.
    public static func pack(_ words: UnsafeBufferPointer<UInt32>, bits: Int) -> [UInt8] {
        precondition((1...32).contains(bits), "bit width \(bits) is not in 1...32")
        let mask: UInt64 = (1 << UInt64(bits)) - 1
        var bytes = [UInt8](repeating: 0, count: byteCount(count: words.count, bits: bits))
        bytes.withUnsafeMutableBufferPointer { out in
            var accumulator: UInt64 = 0
            var held = 0
            var position = 0
            for word in words {
                accumulator |= (UInt64(word) & mask) << UInt64(held)
                held += bits
                while held >= 8 {
                    out[position] = UInt8(truncatingIfNeeded: accumulator)
                    position += 1
                    accumulator >>= 8
                    held -= 8
                }
            }
            if held > 0 { out[position] = UInt8(truncatingIfNeeded: accumulator) }
        }
        return bytes
    }

    /// `pack` of an array.
    public static func pack(_ words: [UInt32], bits: Int) -> [UInt8] {
        words.withUnsafeBufferPointer { pack($0, bits: bits) }
    }

    /// Unpacks `count` words of `bits` bits into `output`. Throws `.corrupt` unless `bytes` is
    /// exactly `byteCount(count:bits:)` long with the last byte's unused bits zero.
    public static func unpack(
        _ bytes: UnsafeRawBufferPointer, bits: Int, into output: UnsafeMutableBufferPointer<UInt32>
    ) throws {
        precondition((1...32).contains(bits), "bit width \(bits) is not in 1...32")
        let expected = byteCount(count: output.count, bits: bits)
        guard bytes.count == expected else {
            throw FedRecError(.corrupt, "\(output.count) words of \(bits) bits pack into \(expected) bytes, not \(bytes.count)")
        }
        let spare = expected * 8 - output.count * bits
        if spare > 0, bytes[expected - 1] >> UInt8(8 - spare) != 0 {
            throw FedRecError(.corrupt, "packed words with stray bits past the last word")
        }
        let mask: UInt64 = (1 << UInt64(bits)) - 1
        var accumulator: UInt64 = 0
        var held = 0
        var position = 0
        for i in 0..<output.count {
            while held < bits {
                accumulator |= UInt64(bytes[position]) << UInt64(held)
                position += 1
                held += 8
            }
            output[i] = UInt32(truncatingIfNeeded: accumulator & mask)
            accumulator >>= UInt64(bits)
            held -= bits
        }
    }

    /// `unpack` into a new array.
    public static func unpack(_ bytes: [UInt8], bits: Int, count: Int) throws -> [UInt32] {
        var output = [UInt32](repeating: 0, count: count)
        try bytes.withUnsafeBytes { raw in
            try output.withUnsafeMutableBufferPointer { try unpack(raw, bits: bits, into: $0) }
        }
        return output
    }
}
