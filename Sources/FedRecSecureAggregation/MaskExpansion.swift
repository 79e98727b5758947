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

/// The domain a mask is expanded in: a session, a round and a purpose, which fix the
/// AES-CTR nonce, so that one seed used in two rounds or for two purposes gives unrelated masks.
///
/// nonce = the first 12 bytes of SHA-256(label ‖ len ‖ sessionID ‖ round ‖ purpose), where
/// label is the 24 ASCII bytes "fedrec-secagg-mask-nonce", len the session id's byte count as
/// a big-endian UInt32, round a big-endian UInt64 and purpose one byte (`MaskPurpose`'s raw value).
/// Nonces of distinct domains collide with probability about 2^-96 per pair.
public struct MaskDomain: Sendable, Equatable {
    public let sessionID: [UInt8]
    public let round: UInt64
    public let purpose: MaskPurpose
    /// The 12-byte nonce this domain expands masks under: the first 12 bytes of AES-CTR's
    /// 16-byte counter block (NIST SP 800-38A §6.5), the last 4 being the block counter.
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

/// One mask to add to (or take from) a vector: PRG(seed) in `domain`.
public struct Mask: Sendable, Equatable {
    /// The 32-byte seed: a self-mask seed or a pairwise agreed secret.
    public let seed: [UInt8]
    public let domain: MaskDomain
    /// Whether the mask is added (+PRG) or subtracted (−PRG).
    public let adding: Bool

    public init(seed: [UInt8], domain: MaskDomain, adding: Bool) {
        self.seed = seed
        self.domain = domain
        self.adding = adding
    }
}

/// The mask PRG (Bonawitz et al., CCS 2017, §3.4 "Pseudorandom Generator"): AES-256 in
/// counter mode (NIST SP 800-38A §6.5) keyed by the full 256-bit seed, the 16-byte counter
/// block being `MaskDomain`'s 12-byte nonce followed by a big-endian 32-bit block counter from 0.
/// Coordinate i is the little-endian integer of keystream bytes i·w ..< (i+1)·w, with
/// w = ⌈b/8⌉ bytes a coordinate (1 for b ≤ 8, 2 for b ≤ 16, 3 for b ≤ 24, 4 otherwise),
/// reduced mod 2^b by keeping its low b bits: 2^b divides 2^(8w), so a uniform w-byte value
/// reduced mod 2^b is exactly uniform.
///
/// AES-256-CTR rather than ChaCha20: on x86-64 with AES-NI (and ARMv8 with its AES
/// instructions) BoringSSL's AES-CTR makes keystream about 2.4× as fast as its AVX2 ChaCha20
/// (`secagg-bench --prg-throughput`, bench/RESULTS.md). Keystream is made 48–64 KiB per call
/// into `AES._CTR` (16,384 coordinates), each call's counter block starting where the last
/// one ended. The 32-bit block counter bounds one (seed, domain) to 2^32 blocks of 16 bytes:
/// 64 GiB of keystream, at least 2^34 coordinates.
public enum MaskExpansion {
    /// Bytes of a mask seed: an AES-256 key.
    public static let seedByteCount = 32
    /// The most coordinates one (seed, domain) can mask: 2^32 blocks of 16 bytes at 4 bytes a
    /// coordinate (the widest).
    public static let maximumCount = 1 << 34
    /// Coordinates expanded per call into AES-CTR: a multiple of 16, so that every call
    /// starts on a block boundary whatever the bytes a coordinate.
    static let coordinatesPerCall = 1 << 14
    /// Zeros to encrypt into keystream: one call's worth at 4 bytes a coordinate.
    static let zeros = [UInt8](repeating: 0, count: coordinatesPerCall * 4)
    /// The name of the PRG that the roster records (`secagg_mask_prg`).
    public static let prgName = "aes-256-ctr"

    /// Keystream bytes one coordinate consumes mod 2^`modulusBits`: ⌈b/8⌉.
    public static func bytesPerCoordinate(modulusBits: Int) -> Int {
        (modulusBits + 7) / 8
    }

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
        apply([Mask(seed: seed, domain: domain, adding: adding)], modulusBits: modulusBits, to: vector)
    }

    /// `apply` of every mask of `masks` in turn, reducing mod 2^modulusBits once at the end:
    /// the masks are summed in wrapping 32-bit arithmetic, which 2^b divides, so the result
    /// is the same as reducing after each mask.
    public static func apply(_ masks: [Mask], modulusBits: Int, to vector: UnsafeMutableBufferPointer<UInt32>) {
        precondition((1...32).contains(modulusBits), "modulusBits \(modulusBits) is not in 1...32")
        precondition(vector.count <= maximumCount, "AES-CTR's 32-bit counter bounds a mask to 2^34 coordinates")
        guard let base = vector.baseAddress, !vector.isEmpty else { return }
        let width = bytesPerCoordinate(modulusBits: modulusBits)
        for mask in masks {
            precondition(mask.seed.count == seedByteCount, "a mask seed is \(seedByteCount) bytes, not \(mask.seed.count)")
            accumulate(
                key: SymmetricKey(data: mask.seed), nonce: mask.domain.nonce, width: width, subtracting: !mask.adding,
                into: base, count: vector.count)
        }
        let reduction: UInt32 = modulusBits == 32 ? .max : (1 << UInt32(modulusBits)) - 1
        for i in 0..<vector.count { base[i] &= reduction }
    }

    /// target[i] = target[i] ± (keystream coordinate i, w = `width` bytes) mod 2^32, i < count,
    /// the keystream being AES-256-CTR under `key` and `nonce` (12 bytes) from block 0. Bits of
    /// target at and above 8·w are left unspecified (the callers reduce mod 2^b, b ≤ 8·w).
    static func accumulate(
        key: SymmetricKey, nonce: [UInt8], width: Int, subtracting: Bool, into target: UnsafeMutablePointer<UInt32>,
        count: Int
    ) {
        // t − w = t + ¬w + 1 (mod 2^32): one loop for both signs, without a branch inside.
        let flip: UInt32 = subtracting ? .max : 0
        let carry: UInt32 = subtracting ? 1 : 0
        var start = 0
        while start < count {
            let chunk = min(coordinatesPerCall, count - start)
            let keystream = aesKeystream(
                zeros[0..<keystreamByteCount(count: chunk, width: width)], key: key, nonce: nonce,
                block: UInt32(start * width / 16))
            keystream.withUnsafeBytes { raw in
                guard let bytes = raw.baseAddress else { return }
                add(bytes, width: width, count: chunk, flip: flip, carry: carry, into: target + start)
            }
            start += chunk
        }
    }

    /// target[i] &+= (coordinate i of `bytes` ^ flip) &+ carry for i < count, coordinates laid
    /// out as `MaskExpansion` describes for `width` bytes. Only the low 8·width bits of each
    /// sum are exact (a 3-byte coordinate is added as a 32-bit word whose top byte belongs to
    /// another coordinate), which is all the callers keep.
    @inline(__always)
    static func add(
        _ bytes: UnsafeRawPointer, width: Int, count: Int, flip: UInt32, carry: UInt32,
        into target: UnsafeMutablePointer<UInt32>
    ) {
        switch width {
        case 4:
            for i in 0..<count {
                let word = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                target[i] = target[i] &+ (word ^ flip) &+ carry
            }
        case 3:
            // Groups of 16 coordinates from 48 bytes (`groupByteCount`), lane-wise so that it
            // vectorises with SSE2 alone: words W_0…W_11; coordinates 0–11 are their low three
            // bytes, coordinate 12 + j gathers the top bytes of W_j, W_4+j, W_8+j.
            let flip4 = SIMD4<UInt32>(repeating: flip), carry4 = SIMD4<UInt32>(repeating: carry)
            func lanes(_ offset: Int) -> SIMD4<UInt32> {
                SIMD4(
                    UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)),
                    UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)),
                    UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)),
                    UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)))
            }
            func add4(_ value: SIMD4<UInt32>, at index: Int) {
                let slot = UnsafeMutableRawPointer(target + index)
                let sum = slot.loadUnaligned(as: SIMD4<UInt32>.self) &+ (value ^ flip4) &+ carry4
                slot.storeBytes(of: sum, as: SIMD4<UInt32>.self)
            }
            let groups = count / 16
            for g in 0..<groups {
                let a = lanes(48 * g), b = lanes(48 * g + 16), c = lanes(48 * g + 32)
                add4(a, at: 16 * g)
                add4(b, at: 16 * g + 4)
                add4(c, at: 16 * g + 8)
                add4((a &>> 24) | ((b &>> 16) & 0xFF00) | ((c &>> 8) & 0xFF_0000), at: 16 * g + 12)
            }
            // The last, partial group: the same layout, its keystream made in full.
            for i in (16 * groups)..<count {
                let group = 48 * groups, lane = i - 16 * groups
                let word: UInt32
                if lane < 12 {
                    word = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: group + 4 * lane, as: UInt32.self))
                } else {
                    let j = lane - 12
                    word = UInt32(bytes.load(fromByteOffset: group + 4 * j + 3, as: UInt8.self))
                        | UInt32(bytes.load(fromByteOffset: group + 16 + 4 * j + 3, as: UInt8.self)) << 8
                        | UInt32(bytes.load(fromByteOffset: group + 32 + 4 * j + 3, as: UInt8.self)) << 16
                }
                target[i] = target[i] &+ (word ^ flip) &+ carry
            }
        case 2:
            for i in 0..<count {
                let value = UInt32(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                target[i] = target[i] &+ (value ^ flip) &+ carry
            }
        default:
            for i in 0..<count {
                let value = UInt32(bytes.load(fromByteOffset: i, as: UInt8.self))
                target[i] = target[i] &+ (value ^ flip) &+ carry
            }
        }
    }

    /// Keystream bytes `count` coordinates of `width` bytes take: count · width, rounded up to
    /// whole 48-byte groups of 16 coordinates when width is 3.
    static func keystreamByteCount(count: Int, width: Int) -> Int {
        width == 3 ? (count + 15) / 16 * groupByteCount : count * width
    }

    /// Bytes of a group of 16 three-byte coordinates.
    static let groupByteCount = 48

    /// AES-256-CTR applied to `zeros`: its keystream from counter block nonce ‖ `block`
    /// (big-endian). The only failures of `AES._CTR` are a key that is not 128, 192 or 256
    /// bits or a nonce that is not 12 or 16 bytes, which the callers rule out.
    static func aesKeystream(_ zeros: ArraySlice<UInt8>, key: SymmetricKey, nonce: [UInt8], block: UInt32) -> Data {
        var counterBlock = nonce
        appendBigEndian(block, to: &counterBlock)
        do {
            return try AES._CTR.encrypt(zeros, using: key, nonce: AES._CTR.Nonce(nonceBytes: counterBlock))
        } catch {
            preconditionFailure("AES-CTR refused a 256-bit key and 16-byte counter block: \(error)")
        }
    }
}
