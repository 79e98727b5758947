import Crypto
import _CryptoExtras
import Foundation
import FedRecSupport

/// Where privacy noise gets its random bits.
///
/// A reference type on purpose: a copied value-type generator would hand out the same bits
/// twice, and repeated noise cancels. Production noise comes from `SystemNoiseSource`;
/// `SeededNoiseSource` exists for tests and reproducible examples only, and anything noised
/// with it must be recorded as not private (`isCryptographicallySecure == false`).
public protocol NoiseSource: AnyObject {
    /// 64 independent uniformly random bits.
    func next() -> UInt64
    /// Fills `words` with independent uniformly random words (samplers take bits in blocks).
    func fill(_ words: UnsafeMutableBufferPointer<UInt64>)
    /// Whether the bits come from a cryptographically secure generator. The privacy ledger
    /// records `private: false` for a release noised from a source where this is false.
    var isCryptographicallySecure: Bool { get }
}

extension NoiseSource {
    public func fill(_ words: UnsafeMutableBufferPointer<UInt64>) {
        for i in words.indices { words[i] = next() }
    }
}

/// The cryptographically secure noise source.
///
/// The key comes from `SystemRandomNumberGenerator`, which on Linux calls `getrandom(2)`,
/// the kernel's CSPRNG (on Darwin, `arc4random_buf`). One `getrandom` per 64-bit word
/// costs about 0.9 µs on our machines and `/dev/urandom` reads ran at ~150 MB/s, too slow
/// for tens of millions of coordinates, so the kernel's 256-bit key is expanded in user
/// space with ChaCha20 (RFC 8439, swift-crypto's `Insecure.ChaCha20CTR` over BoringSSL) — the construction of
/// Linux's own CRNG and OpenBSD's `arc4random` — with fast key erasure (Bernstein 2017):
/// each 64 KiB block is the keystream of a fresh key, whose first 32 bytes become the next
/// key, so a later memory compromise does not reveal earlier noise. Keys are never reused,
/// so the fixed all-zero nonce is sound.
///
/// Not fork-safe: a child process that inherits the buffer would repeat its bits; fedrec's
/// commands do not fork.
///
/// `init(key:isCryptographicallySecure:)` expands a given 256-bit key the same way: a
/// release (`CentralRelease`) draws its key from the system source, records it privately,
/// and can regenerate exactly the same noise from it after a crash.
public final class SystemNoiseSource: NoiseSource {
    public let isCryptographicallySecure: Bool

    private static let blockBytes = 1 << 16
    private var key: SymmetricKey
    private let buffer: UnsafeMutableBufferPointer<UInt64>
    private var index: Int

    /// Keyed by 256 bits from the kernel's CSPRNG.
    public convenience init() {
        var system = SystemRandomNumberGenerator()
        let seed = (0..<4).map { _ in system.next() }
        self.init(key: seed.withUnsafeBytes { Array($0) }, isCryptographicallySecure: true)
    }

    /// The ChaCha20 stream of `key` (32 bytes). Private only if the key is: pass
    /// `isCryptographicallySecure: true` only for a key drawn from a CSPRNG and kept secret.
    public init(key: [UInt8], isCryptographicallySecure: Bool) {
        precondition(key.count == 32, "a ChaCha20 key has 32 bytes")
        self.key = SymmetricKey(data: key)
        self.isCryptographicallySecure = isCryptographicallySecure
        buffer = .allocate(capacity: Self.blockBytes / 8)
        index = 0
        refill()
    }

    deinit {
        buffer.update(repeating: 0)
        buffer.deallocate()
    }

    public func next() -> UInt64 {
        if index == buffer.count { refill() }
        let word = buffer[index]
        buffer[index] = 0  // do not keep used noise bits in memory
        index += 1
        return word
    }

    public func fill(_ words: UnsafeMutableBufferPointer<UInt64>) {
        var done = 0
        while done < words.count {
            if index == buffer.count { refill() }
            let n = min(words.count - done, buffer.count - index)
            let from = UnsafeMutableBufferPointer(rebasing: buffer[index..<(index + n)])
            _ = UnsafeMutableBufferPointer(rebasing: words[done..<(done + n)]).update(fromContentsOf: from)
            from.update(repeating: 0)  // do not keep used noise bits in memory
            index += n
            done += n
        }
    }

    private func refill() {
        let zeros = Data(count: 32 + Self.blockBytes)
        // ChaCha20 (RFC 8439 §2.4, block counter 0) of zeros is its keystream. The only
        // failures are a key that is not 256 bits or a nonce that is not 12 bytes.
        let stream: Data
        do {
            stream = try Insecure.ChaCha20CTR.encrypt(zeros, using: key, nonce: Insecure.ChaCha20CTR.Nonce(data: Data(count: 12)))
        } catch {
            preconditionFailure("ChaCha20 refused a 256-bit key and a 12-byte nonce: \(error)")
        }
        key = SymmetricKey(data: stream.prefix(32))
        stream.withUnsafeBytes { src in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(
                from: UnsafeRawBufferPointer(rebasing: src[32..<(32 + Self.blockBytes)]))
        }
        index = 0
    }
}

/// A deterministic noise source for tests: xoshiro256** from a seed. Never private.
public final class SeededNoiseSource: NoiseSource {
    public var isCryptographicallySecure: Bool { false }
    private var generator: SeededGenerator

    public init(seed: UInt64) { generator = SeededGenerator(seed: seed) }

    public func next() -> UInt64 { generator.next() }

    /// The same words as `next()` would give one by one, without an exclusivity check each.
    public func fill(_ words: UnsafeMutableBufferPointer<UInt64>) {
        var local = generator
        for i in words.indices { words[i] = local.next() }
        generator = local
    }
}
