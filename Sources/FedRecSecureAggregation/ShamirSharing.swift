import FedRecSupport

/// One party's share of a secret: the x coordinate (the shareholder's index + 1, never 0, since
/// the secret is the polynomial's value at 0) and the sharing polynomials' values at x, one per
/// 15-byte chunk of the secret (3 for a 32-byte seed or key).
///
/// Wire form (`bytes`): x as a big-endian UInt32, then each value as a big-endian 16-byte
/// integer; 4 + 16·chunks bytes, 52 for a 32-byte secret.
public struct ShamirShare: Sendable, Equatable {
    public let x: UInt32
    public let values: [UInt128]

    /// Bytes of one value in the wire form.
    public static let valueByteCount = 16

    /// A share from its parts; throws if x is 0, there are no values or a value is not below p.
    public init(x: UInt32, values: [UInt128]) throws {
        guard x != 0 else {
            throw FedRecError(.badData, "a Shamir share at x = 0 would be the secret itself; shares have x >= 1")
        }
        guard !values.isEmpty else { throw FedRecError(.corrupt, "a Shamir share holds no values") }
        guard values.allSatisfy({ $0 < PrimeField127.p }) else {
            throw FedRecError(.corrupt, "a Shamir share's value is not below 2^127 - 1")
        }
        self.x = x
        self.values = values
    }

    /// The fixed-size wire form: x (UInt32, big-endian), then each value (16 bytes, big-endian).
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(4 + Self.valueByteCount * values.count)
        appendBigEndian(x, to: &out)
        for value in values { appendBigEndian(value, to: &out) }
        return out
    }

    /// Parses the wire form; refuses a length that is not 4 + 16·k (k >= 1), x = 0 and values
    /// not below p, as a share from another party may be anything.
    public init(bytes: [UInt8]) throws {
        let valueBytes = bytes.count - 4
        guard valueBytes >= Self.valueByteCount, valueBytes % Self.valueByteCount == 0 else {
            throw FedRecError(.corrupt, "a Shamir share of \(bytes.count) bytes: expected 4 + 16·k bytes with k >= 1")
        }
        let x = readBigEndian(bytes, from: 0, count: 4, as: UInt32.self)
        let values = stride(from: 4, to: bytes.count, by: Self.valueByteCount).map {
            readBigEndian(bytes, from: $0, count: Self.valueByteCount, as: UInt128.self)
        }
        try self.init(x: x, values: values)
    }
}

/// Shamir's t-out-of-n secret sharing over GF(2^127 - 1) (Shamir, CACM 1979), as SecAgg uses
/// it for each party's self-mask seed and key-agreement secret (Bonawitz et al., CCS 2017,
/// §3.1 "Secret Sharing").
///
/// A secret of any length is cut into 15-byte chunks (the last may be shorter), each read as a
/// big-endian integer below 2^120 < p, and each chunk is shared with its own random polynomial
/// of degree `threshold - 1` whose constant term is the chunk.
public enum ShamirSharing {
    /// Bytes of the secret per field element: 15, so every chunk is below 2^120 < p.
    public static let chunkByteCount = 15

    /// The number of field elements (share values) for a secret of `secretLength` bytes.
    public static func chunkCount(secretLength: Int) -> Int {
        (secretLength + chunkByteCount - 1) / chunkByteCount
    }

    /// Shares `secret` (any non-empty length, split in 15-byte chunks) with threshold
    /// `threshold` (any `threshold` shares reconstruct, fewer reveal nothing) among
    /// `shareholders` (distinct x coordinates >= 1), one share per shareholder in their order.
    ///
    /// The polynomials' coefficients are uniform in GF(p) (`PrimeField127.random`), drawn from
    /// `generator` chunk by chunk, coefficient of x^1 first; pass `SystemRandomNumberGenerator`
    /// except in tests.
    public static func split<G: RandomNumberGenerator>(
        secret: [UInt8], threshold: Int, shareholders: [UInt32], using generator: inout G
    ) throws -> [ShamirShare] {
        let chunks = try secretChunks(secret)
        guard threshold >= 1, threshold <= shareholders.count else {
            throw FedRecError(.usage, "Shamir threshold \(threshold) must be in 1...\(shareholders.count) (the number of shareholders)")
        }
        let coefficients = chunks.map { _ in
            (1..<threshold).map { _ in PrimeField127.random(using: &generator) }
        }
        return try split(chunks: chunks, coefficients: coefficients, shareholders: shareholders)
    }

    /// Lagrange interpolation at 0 from `threshold` shares with distinct x: the first
    /// `threshold` of `shares` are used (any more are not checked against them). Throws, not
    /// crashes, on too few shares, x = 0, duplicate x, a share with another number of values
    /// than `secretLength` needs, and a result that does not fit (the shares are not all from one
    /// sharing, or `threshold` is too small: a wrong interpolation is a random field element,
    /// which fits a 15-byte chunk with probability 2^-7 and a 32-byte secret's 2-byte chunk
    /// with probability 2^-111).
    public static func reconstruct(_ shares: [ShamirShare], threshold: Int, secretLength: Int) throws -> [UInt8] {
        guard secretLength >= 1 else { throw FedRecError(.usage, "a Shamir secret has at least one byte") }
        guard threshold >= 1 else { throw FedRecError(.usage, "Shamir threshold \(threshold) must be at least 1") }
        guard shares.count >= threshold else {
            throw FedRecError(.badData, "\(shares.count) Shamir shares cannot reconstruct a secret of threshold \(threshold)")
        }
        let used = shares.prefix(threshold)
        let chunks = chunkCount(secretLength: secretLength)
        var seen = Set<UInt32>()
        for share in used {
            guard share.x != 0 else { throw FedRecError(.badData, "a Shamir share at x = 0") }
            guard seen.insert(share.x).inserted else {
                throw FedRecError(.badData, "two Shamir shares at the same x = \(share.x)")
            }
            guard share.values.count == chunks else {
                throw FedRecError(.mismatch, "a Shamir share with \(share.values.count) values where a \(secretLength)-byte secret has \(chunks)")
            }
        }
        let xs = used.map { UInt128($0.x) }
        let weights = try lagrangeWeightsAtZero(xs)
        var secret = [UInt8]()
        secret.reserveCapacity(secretLength)
        for chunk in 0..<chunks {
            var value: UInt128 = 0
            for (share, weight) in zip(used, weights) {
                value = PrimeField127.add(value, PrimeField127.mul(share.values[chunk], weight))
            }
            let length = min(chunkByteCount, secretLength - chunk * chunkByteCount)
            guard value >> (8 * length) == 0 else {
                throw FedRecError(.corrupt, "Shamir shares do not reconstruct a \(secretLength)-byte secret: they are not from one sharing, or fewer than its threshold")
            }
            for byte in (0..<length).reversed() { secret.append(UInt8(truncatingIfNeeded: value >> (8 * byte))) }
        }
        return secret
    }

    // MARK: - The arithmetic, exposed to the tests

    /// The secret's chunks as field elements (big-endian, 15 bytes each, the last shorter).
    static func secretChunks(_ secret: [UInt8]) throws -> [UInt128] {
        guard !secret.isEmpty else { throw FedRecError(.usage, "an empty secret cannot be Shamir-shared") }
        return stride(from: 0, to: secret.count, by: chunkByteCount).map { start in
            readBigEndian(secret, from: start, count: min(chunkByteCount, secret.count - start), as: UInt128.self)
        }
    }

    /// Shares with explicit coefficients: `coefficients[c]` are those of x^1…x^(t-1) for chunk c.
    static func split(chunks: [UInt128], coefficients: [[UInt128]], shareholders: [UInt32]) throws -> [ShamirShare] {
        guard Set(shareholders).count == shareholders.count else {
            throw FedRecError(.usage, "Shamir shareholders' x coordinates must be distinct")
        }
        guard !shareholders.contains(0) else {
            throw FedRecError(.usage, "a Shamir shareholder at x = 0 would receive the secret itself")
        }
        return try shareholders.map { x in
            let point = UInt128(x)
            let values = zip(chunks, coefficients).map { constant, higher in
                // Horner: ((a_{t-1}·x + a_{t-2})·x + … + a_1)·x + secret
                var value: UInt128 = 0
                for coefficient in higher.reversed() { value = PrimeField127.add(PrimeField127.mul(value, point), coefficient) }
                return PrimeField127.add(PrimeField127.mul(value, point), constant)
            }
            return try ShamirShare(x: x, values: values)
        }
    }

    /// λ_i = Π_{j≠i} x_j / (x_j - x_i): f(0) = Σ λ_i f(x_i) for f of degree < xs.count.
    /// The x must be distinct and nonzero (checked by the caller).
    static func lagrangeWeightsAtZero(_ xs: [UInt128]) throws -> [UInt128] {
        try xs.indices.map { i in
            var numerator: UInt128 = 1
            var denominator: UInt128 = 1
            for j in xs.indices where j != i {
                numerator = PrimeField127.mul(numerator, xs[j])
                denominator = PrimeField127.mul(denominator, PrimeField127.sub(xs[j], xs[i]))
            }
            guard let inverse = PrimeField127.inverse(denominator) else {
                throw FedRecError(.badData, "Shamir shares with repeated x coordinates")
            }
            return PrimeField127.mul(numerator, inverse)
        }
    }

    /// f(0) from the points (x_i, y_i) of a polynomial of degree < points.count.
    static func interpolateAtZero(xs: [UInt128], ys: [UInt128]) throws -> UInt128 {
        let weights = try lagrangeWeightsAtZero(xs)
        return zip(ys, weights).reduce(0) { PrimeField127.add($0, PrimeField127.mul($1.0, $1.1)) }
    }
}

/// Appends `value` big-endian.
func appendBigEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    for shift in stride(from: T.bitWidth - 8, through: 0, by: -8) {
        bytes.append(UInt8(truncatingIfNeeded: value >> shift))
    }
}

/// The big-endian integer in `bytes[start..<start + count]` (count <= T's byte width; the caller
/// checks the range).
func readBigEndian<T: FixedWidthInteger>(_ bytes: [UInt8], from start: Int, count: Int, as type: T.Type) -> T {
    var value: T = 0
    for byte in bytes[start..<(start + count)] { value = value << 8 | T(byte) }
    return value
}
