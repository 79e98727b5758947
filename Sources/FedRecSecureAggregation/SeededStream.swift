import Crypto
import FedRecSupport
import Foundation
import _CryptoExtras

/// A deterministic, cryptographically strong stream of random words: the ChaCha20 keystream
/// (RFC 8439) under a 32-byte seed, for choices every party must make identically from a shared
/// seed (the neighbour graph's permutation) and that nobody may predict without the seed.
///
/// The key is the seed, the 12-byte nonce the first 12 bytes of
/// SHA-256("fedrec-secagg-stream/" ‖ label) (the label's UTF-8 bytes), so one seed gives
/// unrelated streams under distinct labels; the block counter starts at 0. The keystream is
/// made 4 KiB (64 blocks) at a time and read in order, 8 bytes per `next()` as a little-endian
/// UInt64. ChaCha20's 32-bit block counter bounds one (seed, label) to 256 GiB of keystream
/// (2^35 words); reading further is a programming error and stops the process.
///
/// Not a replacement for `SystemRandomNumberGenerator` where fresh randomness is due (secrets,
/// Shamir coefficients): anyone holding the seed can replay the stream.
public struct ChaCha20Generator: RandomNumberGenerator, Sendable {
    /// Bytes of a seed: a ChaCha20 key.
    public static let seedByteCount = 32
    /// Bytes of keystream made per call into ChaCha20 (64 blocks of 64 bytes).
    static let bufferByteCount = 4096
    /// The prefix hashed in front of the label to make the nonce.
    static let nonceLabel = "fedrec-secagg-stream/"

    /// The seed: the ChaCha20 key (kept as bytes, since `SymmetricKey` is not `Sendable`).
    private let key: [UInt8]
    /// The 12-byte ChaCha20 nonce this stream is made under.
    let nonce: [UInt8]
    /// The block counter the next refill starts at.
    private var nextBlock: UInt64 = 0
    private var buffer: [UInt8] = []
    /// Bytes of `buffer` already read.
    private var position = 0

    /// The stream of `seed` (32 bytes) under `label`. The seed is the caller's, already
    /// validated (`NeighbourGraph` throws on another length); another length stops the process.
    public init(seed: [UInt8], label: String) {
        precondition(seed.count == Self.seedByteCount, "a stream seed is \(Self.seedByteCount) bytes, not \(seed.count)")
        self.key = seed
        self.nonce = Array(SHA256.hash(data: Array((Self.nonceLabel + label).utf8)).prefix(12))
    }

    /// The next 8 keystream bytes, as a little-endian UInt64.
    public mutating func next() -> UInt64 {
        if position == buffer.count { refill() }
        let word = buffer.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: position, as: UInt64.self)) }
        position += 8
        return word
    }

    /// Passes over the next `count` words (count ≥ 0): the words `next()` draws afterwards
    /// are those it would draw after `count` calls, but the keystream of whole 4 KiB
    /// buffers in between is never made (ChaCha20 is seekable by its block counter).
    public mutating func skip(words count: Int) {
        precondition(count >= 0, "skip(words:) needs a count of at least 0, not \(count)")
        let ahead = position + 8 * count
        guard ahead > buffer.count else {
            position = ahead
            return
        }
        // Bytes past the end of the buffer, which ends where block `nextBlock` starts.
        let beyond = ahead - buffer.count
        nextBlock += UInt64(beyond / Self.bufferByteCount) * UInt64(Self.bufferByteCount / 64)
        let offset = beyond % Self.bufferByteCount
        guard offset > 0 else {
            position = buffer.count  // the next `next()` refills from `nextBlock`
            return
        }
        refill()
        position = offset
    }

    /// A uniform integer in 0..<bound (bound > 0), without modulo bias: Lemire's multiply-shift
    /// with rejection ("Fast Random Integer Generation in an Interval", ACM TOMACS 29(1), 2019).
    /// The 128-bit product of a word x and the bound is m; m's high word is the result unless
    /// m's low word falls below 2^64 mod bound, in which case x is redrawn. The sequence of
    /// words consumed is part of the contract (other implementations replay it).
    public mutating func nextIndex(below bound: Int) -> Int {
        precondition(bound > 0, "nextIndex(below:) needs a positive bound, not \(bound)")
        let range = UInt64(bound)
        var product = next().multipliedFullWidth(by: range)
        if product.low < range {
            let threshold = (0 &- range) % range
            while product.low < threshold {
                product = next().multipliedFullWidth(by: range)
            }
        }
        return Int(product.high)
    }

    /// Makes the next 4 KiB of keystream, from block `nextBlock`.
    private mutating func refill() {
        let blocks = UInt64(Self.bufferByteCount / 64)
        precondition(nextBlock + blocks <= 1 << 32, "ChaCha20's 32-bit counter bounds a stream to 256 GiB")
        let zeros = [UInt8](repeating: 0, count: Self.bufferByteCount)
        buffer = Array(
            Self.keystream(zeros[...], key: SymmetricKey(data: key), counter: UInt32(truncatingIfNeeded: nextBlock), nonce: nonce))
        nextBlock += blocks
        position = 0
    }

    /// ChaCha20 applied to `zeros`: its keystream from block `counter` under the 12-byte
    /// `nonce` (RFC 8439 §2.4). The only failures of `Insecure.ChaCha20CTR` are a key that is
    /// not 256 bits or a nonce that is not 12 bytes, which the callers rule out.
    static func keystream(_ zeros: ArraySlice<UInt8>, key: SymmetricKey, counter: UInt32, nonce: [UInt8]) -> Data {
        do {
            return try Insecure.ChaCha20CTR.encrypt(
                zeros, using: key, counter: Insecure.ChaCha20CTR.Counter(offset: counter),
                nonce: Insecure.ChaCha20CTR.Nonce(data: nonce))
        } catch {
            preconditionFailure("ChaCha20 refused a 256-bit key and 12-byte nonce: \(error)")
        }
    }
}

/// A generator whose next words can be passed over without being used (`skip(words:)`): the
/// words drawn after skipping n are those drawn after n calls of `next()`. The quantizer
/// skips the rounding draws of zero coordinates (most of a sparse update's), which round to
/// zero whatever is drawn, so its output is the same as drawing them.
public protocol SkippingRandomNumberGenerator: RandomNumberGenerator {
    mutating func skip(words count: Int)
}

extension SkippingRandomNumberGenerator {
    /// `count` calls of `next()`, their words dropped.
    public mutating func skip(words count: Int) {
        for _ in 0..<count { _ = next() }
    }
}

/// Seeks its ChaCha20 block counter (`ChaCha20Generator.skip(words:)`).
extension ChaCha20Generator: SkippingRandomNumberGenerator {}

/// Draws and drops (tests' generator).
extension SeededGenerator: SkippingRandomNumberGenerator {}
