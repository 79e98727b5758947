import Crypto
import Foundation
import _CryptoExtras

/// What a mask is for: a party's own (self) mask b_u, or a pairwise mask s_{u,v} shared with a
/// neighbour (Bonawitz et al., CCS 2017, §4 "Technical Intuition":
/// y_u = x_u + PRG(b_u) + Σ_v ±PRG(s_{u,v})).
public enum MaskPurpose: UInt8, Sendable, Equatable, CaseIterable {
    case selfMask = 1
    case pairwise = 2
}

/// The domain a mask is expanded in: a session, a round and a purpose, which fix the ChaCha20
/// nonce, so that one seed used in two rounds or for two purposes gives unrelated masks.
///
/// nonce = the first 12 bytes of SHA-256(label ‖ len ‖ sessionID ‖ round ‖ purpose), where
/// label is the 24 ASCII bytes "fedrec-secagg-mask-nonce", len the session id's byte count as
/// a big-endian UInt32, round a big-endian UInt64 and purpose one byte (`MaskPurpose`'s raw value).
/// Nonces of distinct domains collide with probability about 2^-96 per pair.
public struct MaskDomain: Sendable, Equatable {
    public let sessionID: [UInt8]
    public let round: UInt64
    public let purpose: MaskPurpose
    /// The 12-byte ChaCha20 nonce (RFC 8439 §2.3) this domain expands masks under.
    public let nonce: [UInt8]

    /// The label hashed in front of the domain.
    static let nonceLabel = Array("fedrec-secagg-mask-nonce".utf8)

    /// The domain of `purpose` masks in `round` of session `sessionID` (32 bytes in the protocol;
    /// any length is accepted here, since it is hashed with its length).
    public init(sessionID: [UInt8], round: UInt64, purpose: MaskPurpose) {
        self.sessionID = sessionID
        self.round = round
        self.purpose = purpose
        var input = Self.nonceLabel
        appendBigEndian(UInt32(truncatingIfNeeded: sessionID.count), to: &input)
        input += sessionID
        appendBigEndian(round, to: &input)
        input.append(purpose.rawValue)
        self.nonce = Array(SHA256.hash(data: input).prefix(12))
    }
}

/// The mask PRG (Bonawitz et al., CCS 2017, §3.4 "Pseudorandom Generator"): ChaCha20
/// (RFC 8439) keyed by the full 256-bit seed, nonce from `MaskDomain`, block counter from 0;
/// the keystream is read as little-endian UInt32 words, word i masking coordinate i, reduced
/// mod 2^b by keeping its low b bits (2^b divides 2^32, so the reduced words stay uniform).
///
/// `Insecure.ChaCha20CTR` takes the RFC 8439 layout: a 4-byte block counter and a 12-byte
/// nonce, separately; the keystream is made by encrypting a reused zero buffer, 64 KiB per call,
/// each call starting at the block where the last one ended. ChaCha20's 32-bit block counter
/// bounds one (seed, domain) to 2^32 blocks of 64 bytes: 256 GiB of keystream, 2^36 coordinates.
public enum MaskExpansion {
    /// Bytes of a mask seed: a ChaCha20 key.
    public static let seedByteCount = 32
    /// The most coordinates one (seed, domain) can mask: 2^32 blocks × 16 words.
    public static let maximumCount = 1 << 36
    /// Keystream words generated per call into ChaCha20 (a multiple of its 16-word block).
    static let wordsPerCall = 1 << 14

    /// vector[i] = (vector[i] + sign · PRG(seed, domain)[i]) mod 2^modulusBits for all i, with
    /// sign +1 if `adding`, else -1; entries of `vector` are expected in [0, 2^modulusBits).
    ///
    /// The seed and modulus are the caller's, not another party's: a seed is 32 bytes as
    /// `KeyAgreement` derives and `ShamirSharing.reconstruct(…, secretLength: 32)` returns
    /// it, and `modulusBits` (1...32) has been validated with the parameters (`Quantizer`);
    /// other values are a programming error and stop the process.
    public static func apply(
        seed: [UInt8], domain: MaskDomain, modulusBits: Int, adding: Bool,
        to vector: UnsafeMutableBufferPointer<UInt32>
    ) {
        applyKeystream(key: seed, nonce: domain.nonce, modulusBits: modulusBits, adding: adding, to: vector)
    }

    /// `apply` with an explicit 12-byte nonce (for the RFC 8439 test vectors).
    static func applyKeystream(
        key: [UInt8], nonce nonceBytes: [UInt8], modulusBits: Int, adding: Bool,
        to vector: UnsafeMutableBufferPointer<UInt32>
    ) {
        precondition(key.count == seedByteCount, "a mask seed is \(seedByteCount) bytes, not \(key.count)")
        precondition((1...32).contains(modulusBits), "modulusBits \(modulusBits) is not in 1...32")
        precondition(vector.count <= maximumCount, "ChaCha20's 32-bit counter bounds a mask to 2^36 coordinates")
        guard let base = vector.baseAddress, !vector.isEmpty else { return }
        let mask: UInt32 = modulusBits == 32 ? .max : (1 << UInt32(modulusBits)) - 1
        let key = SymmetricKey(data: key)
        let zeros = [UInt8](repeating: 0, count: min(vector.count, wordsPerCall) * 4)
        var blockCounter: UInt32 = 0
        var start = 0
        while start < vector.count {
            let count = min(wordsPerCall, vector.count - start)
            let keystream = chaCha20Keystream(zeros[0..<(count * 4)], key: key, counter: blockCounter, nonce: nonceBytes)
            keystream.withUnsafeBytes { raw in
                let target = base + start
                if adding {
                    for k in 0..<count {
                        let word = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self))
                        target[k] = (target[k] &+ word) & mask
                    }
                } else {
                    for k in 0..<count {
                        let word = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self))
                        target[k] = (target[k] &- word) & mask
                    }
                }
            }
            start += count
            blockCounter &+= UInt32(wordsPerCall / 16)
        }
    }

    /// ChaCha20 applied to `zeros`: its keystream from block `counter` (the masks here, and
    /// `ChaCha20Generator`'s stream). The only failures of `Insecure.ChaCha20CTR` are a key
    /// that is not 256 bits or a nonce that is not 12 bytes, which the callers rule out.
    static func chaCha20Keystream(
        _ zeros: ArraySlice<UInt8>, key: SymmetricKey, counter: UInt32, nonce: [UInt8]
    ) -> Data {
        do {
            return try Insecure.ChaCha20CTR.encrypt(
                zeros, using: key, counter: Insecure.ChaCha20CTR.Counter(offset: counter),
                nonce: Insecure.ChaCha20CTR.Nonce(data: nonce))
        } catch {
            preconditionFailure("ChaCha20 refused a 256-bit key and 12-byte nonce: \(error)")
        }
    }
}
