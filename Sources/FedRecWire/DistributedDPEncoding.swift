import FedRecFormats
import FedRecMechanisms
import FedRecSecureAggregation
import FedRecSupport

/// Distributed DP under secure aggregation (`DistributedGaussian`): what every party of a
/// round encodes alike and the server decodes, recorded in each masked file
/// (`secagg_ddp`) so that sums of differently encoded parties are refused.
///
/// A party's vector mod 2^b is d' rotated coordinates, the sum over its clients of each
/// client's release vector (`ReleaseVector`, clipped to norm c) rotated, scaled by 1/γ and
/// conditionally rounded, plus the party's discrete Gaussian share; then the party's client
/// count, exact, in `countWords` digits of `countDigitBits` bits (so that n parties' digits
/// sum without wrapping whatever b is). The modulus wraps what falls outside ±2^(b-1) (modular clipping, KLS21
/// §4.3; the calibration keeps it beyond k = 4 standard deviations).
public struct DistributedDPEncoding: Sendable, Equatable {
    public var mechanism: DistributedGaussian
    /// The public seed of the rotation's signs.
    public var rotationSeed: UInt64
    /// d: the release vector's length.
    public var values: Int
    /// t: a sum of fewer parties' shares is not unmasked (its noise would be below the promise).
    public var minimumParties: Int
    /// The promise the noise was calibrated for: (ε, δ) over `rounds` rounds with t shares.
    public var epsilon: Double
    public var delta: Double
    public var rounds: Int
    /// h and w: a party's client count is w digits in base 2^h, h = b − 1 − ⌈log₂ n⌉.
    public var countDigitBits: Int
    public var countWords: Int

    public init(
        mechanism: DistributedGaussian, rotationSeed: UInt64, values: Int, minimumParties: Int, epsilon: Double, delta: Double,
        rounds: Int, countDigitBits: Int, countWords: Int
    ) {
        self.countDigitBits = countDigitBits
        self.countWords = countWords
        self.mechanism = mechanism
        self.rotationSeed = rotationSeed
        self.values = values
        self.minimumParties = minimumParties
        self.epsilon = epsilon
        self.delta = delta
        self.rounds = rounds
    }

    /// The rotation seed of a round: the first 8 bytes of SHA-256 over a label, the session
    /// id and the round. The session id is the server's fresh random choice, public, so
    /// every party and the server derive the same seed and nobody has to send it.
    public static func rotationSeed(sessionID: [UInt8], round: UInt64) -> UInt64 {
        let roundBytes = (0..<8).map { UInt8(truncatingIfNeeded: round >> (56 - 8 * UInt64($0))) }
        let digest = sha256Hex(Array("fedrec distributed-dp rotation".utf8) + sessionID + roundBytes)
        return UInt64(digest.prefix(16), radix: 16) ?? 0
    }

    /// The fewest survivors a roster of n parties and expected dropout rate p guarantees but
    /// with probability 2^-20 (Hoeffding: P(S ≤ n(1-p) - x) ≤ exp(-2x²/n)), at least 1.
    public static func minimumSurvivors(parties n: Int, dropoutRate p: Double) -> Int {
        let x = (Double(n) * 20 * 0.693_147_180_559_945_3 / 2).squareRoot()  // ln 2
        return max(1, Int((Double(n) * (1 - p) - x).rounded(.down)))
    }

    /// The digits (h bits each, w of them) that carry a party's client count when n parties'
    /// counts, N in all, are summed mod 2^b. Throws `.usage` when b leaves no bit a digit.
    public static func countDigits(modulusBits b: Int, parties n: Int, clients: Int) throws -> (bits: Int, words: Int) {
        var log2n = 0
        while (1 << log2n) < n { log2n += 1 }
        let h = b - 1 - log2n
        guard h >= 1 else {
            throw FedRecError(.usage, "a \(b)-bit modulus cannot sum the client counts of \(n) parties: use more --secagg-bits")
        }
        let needed = max(1, Int.bitWidth - max(clients, 1).leadingZeroBitCount)
        return (h, (needed + h - 1) / h)
    }

    /// The count `clients` as the encoding's digits.
    public func countWords(_ clients: Int) throws -> [UInt32] {
        guard clients >= 0, clients >> (countDigitBits * countWords) == 0 else {
            throw FedRecError(.usage, "a party of \(clients) clients, more than the encoding's count digits hold: give --ddp-clients")
        }
        return (0..<countWords).map { UInt32(truncatingIfNeeded: (clients >> (countDigitBits * $0)) & ((1 << countDigitBits) - 1)) }
    }

    /// The rotation of this encoding's vectors.
    public func rotation() throws -> RandomRotation { try RandomRotation(seed: rotationSeed, dimension: values) }

    /// The vector mod 2^b: d' coordinates and the client count.
    public var length: Int { mechanism.dimension + countWords }

    /// "c=…;gamma=…;beta=…;dimension=…;sigma=…;seed=…;values=…;min_parties=…;epsilon=…;delta=…;rounds=…;
    /// count_digit_bits=…;count_words=…"
    public var description: String {
        [
            "c=\(mechanism.sensitivity)", "gamma=\(mechanism.granularity)", "beta=\(mechanism.beta)",
            "dimension=\(mechanism.dimension)", "sigma=\(mechanism.localSigma)", "seed=\(rotationSeed)", "values=\(values)",
            "min_parties=\(minimumParties)", "epsilon=\(epsilon)", "delta=\(delta)", "rounds=\(rounds)",
            "count_digit_bits=\(countDigitBits)", "count_words=\(countWords)",
        ].joined(separator: ";")
    }

    /// Parses `description`; `.corrupt` (naming `file`) for anything else.
    public init(parsing text: String, file: String) throws {
        var fields = [String: String]()
        for field in text.split(separator: ";") {
            let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, fields[parts[0]] == nil else {
                throw FedRecError(.corrupt, file: file, "distributed-DP field '\(field)' is not NAME=VALUE")
            }
            fields[parts[0]] = parts[1]
        }
        func double(_ name: String) throws -> Double {
            guard let text = fields[name], let value = Double(text), value.isFinite else {
                throw FedRecError(.corrupt, file: file, "distributed-DP encoding lacks a finite \(name)")
            }
            return value
        }
        func int(_ name: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let text = fields[name], let value = Int(text), range.contains(value) else {
                throw FedRecError(.corrupt, file: file, "distributed-DP encoding lacks \(name) in \(range)")
            }
            return value
        }
        guard Set(fields.keys) == [
            "c", "gamma", "beta", "dimension", "sigma", "seed", "values", "min_parties", "epsilon", "delta", "rounds", "count_digit_bits",
            "count_words",
        ],
            let seed = fields["seed"].flatMap({ UInt64($0) })
        else { throw FedRecError(.corrupt, file: file, "distributed-DP encoding '\(text.prefix(80))' does not have the expected fields") }
        do {
            mechanism = try DistributedGaussian(
                sensitivity: try double("c"), granularity: try double("gamma"), beta: try double("beta"),
                dimension: try int("dimension", 1...(1 << 30)), localSigma: try double("sigma"))
        } catch let error as FedRecError where error.failure == .usage {
            throw FedRecError(.corrupt, file: file, error.message)
        }
        rotationSeed = seed
        values = try int("values", 1...mechanism.dimension)
        minimumParties = try int("min_parties", 1...SecAggParameters.maximumPartyCount)
        epsilon = try double("epsilon")
        delta = try double("delta")
        rounds = try int("rounds", 1...Int(Int32.max))
        countDigitBits = try int("count_digit_bits", 1...31)
        countWords = try int("count_words", 1...62)
        guard RandomRotation.paddedDimension(values) == mechanism.dimension else {
            throw FedRecError(.corrupt, file: file, "distributed-DP encoding of \(values) values in a rotation of \(mechanism.dimension)")
        }
    }

    /// The ordinary sum from the unmasked sum of `parties` parties: the centred integers
    /// times γ, rotated back, read as the release vector (`ReleaseVector.unpack`), with
    /// the release's metadata (`dp_mechanism` distributed_discrete_gaussian, its σ, γ and
    /// shares). SGD rows are applied with the clients in the sum as their denominator.
    public func decode(_ sum: [UInt32], parties: Int, quantizer: Quantizer, header: UpdateHeader) throws -> ModelUpdate {
        guard sum.count == length else {
            throw FedRecError(.shape, "an unmasked sum of \(sum.count) values where the distributed-DP encoding has \(length)")
        }
        let d = mechanism.dimension
        var clients: Int64 = 0
        for j in 0..<countWords {
            // Each digit is a sum of parties' digits, ≥ 0; nothing read may overflow the count.
            let digit = quantizer.signedValue(sum[d + j])
            let shift = countDigitBits * j
            let (next, overflow) = digit >= 0 && shift < 63 && digit <= Int64.max >> Int64(shift)
                ? clients.addingReportingOverflow(digit << Int64(shift)) : (0, true)
            guard !overflow else {
                throw FedRecError(.corrupt, "the unmasked sum's client count is malformed: the masks did not cancel")
            }
            clients = next
        }
        guard clients >= 1, clients <= Int64(FedRecFile.maximumCount) else {
            throw FedRecError(.corrupt, "the unmasked sum counts \(clients) clients: the masks did not cancel")
        }
        var rotated = sum[0..<d].map { Double(quantizer.signedValue($0)) }
        let rotation = try rotation()
        rotated.withUnsafeMutableBufferPointer { rotation.invert($0, scale: mechanism.granularity) }
        let release = rotated[0..<values].map { Float($0) }
        var h = header
        h.clients = Int(clients)
        var update = try ReleaseVector.unpack(release, header: h, clients: Double(clients))
        update.header.extra[DPMetadata.mechanism] = DPMetadata.distributedGaussianMechanism
        update.header.extra[DPMetadata.parties] = String(parties)
        update.header.extra[DPMetadata.granularity] = "\(mechanism.granularity)"
        update.header.extra[DPMetadata.noiseStddev] = "\(mechanism.centralStddev(parties: parties))"
        update.header.extra[DPMetadata.sampleRate] = "1"
        if header.algorithm != .als { update.header.extra[DPMetadata.expectedClients] = "\(Double(clients))" }
        return update
    }
}
