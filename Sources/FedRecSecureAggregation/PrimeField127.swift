/// Arithmetic in GF(p) for the Mersenne prime p = 2^127 - 1: the field Shamir's secret sharing
/// works in (Shamir, "How to Share a Secret", CACM 1979; used for the seeds and keys of
/// Bonawitz et al., CCS 2017, §3.1).
///
/// Elements are `UInt128` values in 0..<p. A product of two elements (< 2^254) is reduced by
/// the Mersenne identity 2^127 ≡ 1 (mod p): hi·2^127 + lo ≡ hi + lo, so no division is needed.
/// Every function expects its arguments already reduced (in 0..<p); values from another party
/// are checked by `ShamirShare.init(bytes:)` before they reach here.
public struct PrimeField127: Sendable {
    /// The modulus, 2^127 - 1.
    public static let p: UInt128 = (1 << 127) - 1

    /// The element of `0..<p` congruent to `value` (any `UInt128`).
    @inline(__always)
    public static func reduce(_ value: UInt128) -> UInt128 {
        // value = hi·2^127 + lo with hi ≤ 1, lo < 2^127: hi + lo ≤ 2^127, one subtraction at most.
        let folded = (value & p) &+ (value >> 127)
        return folded >= p ? folded &- p : folded
    }

    /// (a + b) mod p.
    @inline(__always)
    public static func add(_ a: UInt128, _ b: UInt128) -> UInt128 {
        let sum = a &+ b  // < 2^128: no overflow for reduced operands
        return sum >= p ? sum &- p : sum
    }

    /// (a - b) mod p.
    @inline(__always)
    public static func sub(_ a: UInt128, _ b: UInt128) -> UInt128 {
        a >= b ? a &- b : a &+ (p &- b)
    }

    /// (-a) mod p.
    @inline(__always)
    public static func negate(_ a: UInt128) -> UInt128 {
        a == 0 ? 0 : p &- a
    }

    /// (a · b) mod p: the full 256-bit product, then Mersenne reduction.
    @inline(__always)
    public static func mul(_ a: UInt128, _ b: UInt128) -> UInt128 {
        let product = a.multipliedFullWidth(by: b)
        // product = high·2^128 + low = (high·2 + low>>127)·2^127 + (low & p)
        let upper = (product.high << 1) | (product.low >> 127)  // < 2^127 since product < 2^254
        let lower = product.low & p
        return add(upper, lower)
    }

    /// a^exponent mod p by square-and-multiply.
    public static func power(_ a: UInt128, _ exponent: UInt128) -> UInt128 {
        var result: UInt128 = 1
        var base = a
        var remaining = exponent
        while remaining != 0 {
            if remaining & 1 == 1 { result = mul(result, base) }
            base = mul(base, base)
            remaining >>= 1
        }
        return result
    }

    /// The multiplicative inverse of `a` by Fermat's little theorem (a^(p-2)), or nil for 0.
    public static func inverse(_ a: UInt128) -> UInt128? {
        a == 0 ? nil : power(a, p &- 2)
    }

    /// A uniform element of GF(p): 127 bits from `generator`, rejecting the one value (p itself)
    /// that is not below p, so every element has probability exactly 1/p.
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> UInt128 {
        while true {
            let high = UInt128(generator.next() as UInt64)
            let low = UInt128(generator.next() as UInt64)
            let candidate = ((high << 64) | low) & p
            if candidate < p { return candidate }
        }
    }
}
