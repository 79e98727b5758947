import Crypto
import FedRecSupport
import Foundation

/// What an agreed key is for: each pair of parties agrees one key to encrypt the shares they
/// send each other and another as the seed of their pairwise mask (Bonawitz et al., CCS 2017,
/// §5, round ShareKeys: the keys c_u and s_u), from two separate X25519 key pairs.
public enum KeyPurpose: String, Sendable, CaseIterable {
    case shareEncryption
    case pairwiseMask
}

/// One party's X25519 key pair for one purpose (RFC 7748).
///
/// `@unchecked Sendable` because swift-crypto 3.12 does not mark its keys `Sendable`: the
/// private key is an immutable value (its bytes live in copy-on-write storage that nothing
/// mutates after the key is made), so sharing it between tasks is safe.
public struct PartyKeyPair: @unchecked Sendable {
    public let privateKey: Curve25519.KeyAgreement.PrivateKey

    /// The 32-byte public key, as published in the round's key advertisement.
    public var publicKeyBytes: [UInt8] { Array(privateKey.publicKey.rawRepresentation) }

    /// A fresh key pair from the system CSPRNG.
    public init() {
        var generator = SystemRandomNumberGenerator()
        self.init(using: &generator)
    }

    /// A key pair whose 32 private bytes come from `generator` (a named test seed in tests;
    /// `SystemRandomNumberGenerator` otherwise).
    public init<G: RandomNumberGenerator>(using generator: inout G) {
        do {
            privateKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: randomBytes(32, using: &generator))
        } catch {
            preconditionFailure("X25519 refused a 32-byte private key: \(error)")
        }
    }

    /// A key pair from its 32-byte private key (RFC 7748 clamping is applied by X25519 itself).
    public init(rawPrivateKey: [UInt8]) throws {
        guard rawPrivateKey.count == 32 else {
            throw FedRecError(.badData, "an X25519 private key is 32 bytes, not \(rawPrivateKey.count)")
        }
        do {
            privateKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: rawPrivateKey)
        } catch {
            throw FedRecError(.badData, "not an X25519 private key: \(error)")
        }
    }
}

/// X25519 key agreement (RFC 7748), then HKDF-SHA256 (RFC 5869) to a 32-byte secret bound to
/// the session, the purpose and the pair of parties, as SecAgg's KA.agree (Bonawitz et al.,
/// CCS 2017, §3.2 "Key Agreement": Diffie–Hellman composed with a hash function).
///
/// salt = the session id (32 bytes);
/// info = ASCII "fedrec-secagg/" ‖ ASCII purpose (`KeyPurpose.rawValue`) ‖ 0x00 ‖
///        protocol version (UInt32 BE) ‖ min(i, j) (UInt32 BE) ‖ max(i, j) (UInt32 BE),
/// so both parties of a pair derive the same key whichever way round they name it.
public enum KeyAgreement {
    /// Bytes of a session id.
    public static let sessionIDByteCount = 32
    /// Bytes of an agreed secret.
    public static let secretByteCount = 32

    /// The secret `privateKey`'s holder agrees with the holder of `publicKey` (32 bytes),
    /// for `purpose`, between `parties` (the two party indices, in either order). Throws on a
    /// public key that is not 32 bytes or yields the all-zero shared secret (a low-order point,
    /// RFC 7748 §6.1), a session id that is not 32 bytes, or party indices that are negative,
    /// beyond UInt32 or equal.
    public static func agreedSecret(
        privateKey: Curve25519.KeyAgreement.PrivateKey, publicKey: [UInt8], sessionID: [UInt8],
        purpose: KeyPurpose, parties: (Int, Int)
    ) throws -> [UInt8] {
        let info = try derivationInfo(purpose: purpose, parties: parties)
        try checkSessionID(sessionID)
        guard publicKey.count == 32 else {
            throw FedRecError(.badData, "an X25519 public key is 32 bytes, not \(publicKey.count)")
        }
        let shared: SharedSecret
        do {
            let peer = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: publicKey)
            shared = try privateKey.sharedSecretFromKeyAgreement(with: peer)
        } catch {
            throw FedRecError(.badData, "X25519 key agreement failed: \(error)")
        }
        let allZero = shared.withUnsafeBytes { $0.allSatisfy { $0 == 0 } }
        guard !allZero else {
            throw FedRecError(.badData, "an X25519 public key of low order (the shared secret is zero)")
        }
        let key = shared.hkdfDerivedSymmetricKey(
            using: SHA256.self, salt: sessionID, sharedInfo: info, outputByteCount: secretByteCount)
        return key.withUnsafeBytes { Array($0) }
    }

    /// HKDF's info for `purpose` between `parties`, indices in (min, max) order.
    static func derivationInfo(purpose: KeyPurpose, parties: (Int, Int)) throws -> [UInt8] {
        guard let first = UInt32(exactly: parties.0), let second = UInt32(exactly: parties.1) else {
            throw FedRecError(.badData, "party indices \(parties.0) and \(parties.1) are not in 0...\(UInt32.max)")
        }
        guard first != second else { throw FedRecError(.badData, "a party cannot agree a key with itself (\(first))") }
        var info = Array("fedrec-secagg/\(purpose.rawValue)".utf8)
        info.append(0)
        appendBigEndian(UInt32(SecureAggregation.protocolVersion), to: &info)
        appendBigEndian(min(first, second), to: &info)
        appendBigEndian(max(first, second), to: &info)
        return info
    }

    /// Throws unless `sessionID` is 32 bytes.
    static func checkSessionID(_ sessionID: [UInt8]) throws {
        guard sessionID.count == sessionIDByteCount else {
            throw FedRecError(.badData, "a session id is \(sessionIDByteCount) bytes, not \(sessionID.count)")
        }
    }
}

/// `count` bytes from `generator`, 8 per draw (little-endian), the last draw's surplus dropped:
/// keys, seeds and session ids (from the system CSPRNG, or a named test seed).
public func randomBytes<G: RandomNumberGenerator>(_ count: Int, using generator: inout G) -> [UInt8] {
    var bytes = [UInt8]()
    bytes.reserveCapacity(count + 7)
    while bytes.count < count {
        let word = generator.next() as UInt64
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
    }
    return Array(bytes.prefix(count))
}
