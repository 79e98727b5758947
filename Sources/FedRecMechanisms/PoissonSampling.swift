import Crypto
import FedRecSupport

/// Poisson client sampling: each client takes part in a round independently with
/// probability q, the sampling the accountant (`RDPAccountant`) assumes.
///
/// The decision for client c in round r is a pure function of (seed, r, c): the first 53
/// bits of HMAC-SHA256(key: seed, "fedrec-poisson-v1" ‖ r ‖ c), read as a uniform u in
/// [0, 1), and the client is in iff u < q. Every shard process therefore agrees without
/// talking to the others, a round can be re-run with the same sample, and the number of
/// participants is Binomial(N, q) — never fixed.
///
/// Privacy needs the seed to be secret: amplification by subsampling assumes the adversary
/// does not know who was sampled. HMAC is a pseudo-random function of its key, so with a
/// secret seed the sample is unpredictable; `fl-rounds --dp` draws a fresh 64-bit seed
/// from the system CSPRNG and keeps it in the run directory (mode 600).
///
/// Fixed-size sampling (exactly m clients per round, without replacement) is a different
/// mechanism: its RDP needs the analysis of sampling without replacement under the
/// substitution relation (Wang, Balle, Kasiviswanathan 2019), which fedrec's accountant
/// does not implement. Do not combine fixed-size sampling with `fl-dp-noise`'s numbers.
public struct PoissonSampling: Sendable {
    /// Probability q ∈ [0, 1] that a client takes part in a round.
    public let rate: Double
    private let seed: UInt64

    /// - Throws: `FedRecError(.usage)` unless 0 ≤ q ≤ 1.
    public init(rate: Double, seed: UInt64) throws {
        guard rate >= 0, rate <= 1 else {
            throw FedRecError(.usage, "the sampling rate must be in [0, 1], got \(rate)")
        }
        self.rate = rate
        self.seed = seed
    }

    /// The uniform u ∈ [0, 1) that decides whether `client` takes part in `round`.
    public func uniform(round: Int, client: Int) -> Double {
        var message = Array("fedrec-poisson-v1".utf8)
        withUnsafeBytes(of: UInt64(truncatingIfNeeded: round).littleEndian) { message += $0 }
        withUnsafeBytes(of: UInt64(truncatingIfNeeded: client).littleEndian) { message += $0 }
        let key = withUnsafeBytes(of: seed.littleEndian) { SymmetricKey(data: $0) }
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: key)
        var word: UInt64 = 0
        for byte in mac.prefix(8) { word = word << 8 | UInt64(byte) }
        return Double(word >> 11) * 0x1p-53
    }

    /// Whether `client` takes part in `round`.
    /// - Complexity: one HMAC-SHA256 of 33 bytes.
    public func includes(round: Int, client: Int) -> Bool {
        if rate >= 1 { return true }
        if rate <= 0 { return false }
        return uniform(round: round, client: client) < rate
    }
}

/// A secret sampling key kept in a file (`fl-train-local --sample-key-file`): one decimal
/// 64-bit number, as `od -An -N8 -tu8 /dev/urandom` writes it.
public enum SamplingKey {
    /// - Throws: `.noInput` for a missing file, `.badData` for anything but one number.
    public static func read(_ path: String) throws -> UInt64 {
        let file = try MappedFile(path: path)
        let words = file.withBytes { String(decoding: $0, as: UTF8.self) }.split(whereSeparator: \.isWhitespace)
        guard words.count == 1, let key = UInt64(words[0]) else {
            throw FedRecError(.badData, file: path, "is not a sampling key (one decimal number below 2^64)")
        }
        return key
    }
}
