import Crypto
import FedRecSupport
import Foundation

/// A bundle of Shamir shares from party `sender` to party `receiver`, encrypted with
/// ChaCha20-Poly1305 (RFC 8439 §2.8) under their agreed `.shareEncryption` key, relayed by the
/// server which cannot read it (Bonawitz et al., CCS 2017, §3.3 "Authenticated Encryption"
/// and §5, round ShareKeys: the encrypted shares of b_u and s_u^SK).
///
/// The associated data binds the envelope to where it belongs, so a replayed (other round or
/// session) or redirected (other sender or receiver) envelope fails to open:
/// protocol version (UInt32 BE) ‖ session id (32 bytes) ‖ round (UInt64 BE) ‖ sender (UInt32 BE)
/// ‖ receiver (UInt32 BE), 52 bytes. `ciphertext` is nonce (12) ‖ ciphertext ‖ tag (16), the
/// nonce drawn at random for each envelope (both directions of a pair share the key).
public struct ShareEnvelope: Sendable, Equatable {
    public let sender: UInt32
    public let receiver: UInt32
    public let round: UInt64
    /// nonce (12 bytes) ‖ ciphertext ‖ Poly1305 tag (16 bytes).
    public let ciphertext: [UInt8]

    /// Bytes a sealed envelope adds to its plaintext: nonce and tag.
    public static let overheadByteCount = 12 + 16

    /// An envelope as read from the wire; `open` checks it.
    public init(sender: UInt32, receiver: UInt32, round: UInt64, ciphertext: [UInt8]) {
        self.sender = sender
        self.receiver = receiver
        self.round = round
        self.ciphertext = ciphertext
    }

    /// Seals `plaintext` under the 32-byte `key` with a nonce from the system CSPRNG.
    public static func seal(
        _ plaintext: [UInt8], key: [UInt8], sessionID: [UInt8], round: UInt64, sender: UInt32, receiver: UInt32
    ) throws -> ShareEnvelope {
        var generator = SystemRandomNumberGenerator()
        return try seal(plaintext, key: key, sessionID: sessionID, round: round, sender: sender, receiver: receiver, using: &generator)
    }

    /// Seals `plaintext` with the nonce's 12 bytes drawn from `generator` (a named test seed
    /// in tests; never reuse a generator's stream under one key).
    public static func seal<G: RandomNumberGenerator>(
        _ plaintext: [UInt8], key: [UInt8], sessionID: [UInt8], round: UInt64, sender: UInt32, receiver: UInt32,
        using generator: inout G
    ) throws -> ShareEnvelope {
        try seal(
            plaintext, key: key, sessionID: sessionID, round: round, sender: sender, receiver: receiver,
            nonce: randomBytes(12, using: &generator))
    }

    /// Seals with an explicit 12-byte nonce (for the known-answer tests).
    static func seal(
        _ plaintext: [UInt8], key: [UInt8], sessionID: [UInt8], round: UInt64, sender: UInt32, receiver: UInt32,
        nonce: [UInt8]
    ) throws -> ShareEnvelope {
        let symmetricKey = try Self.symmetricKey(key)
        let associatedData = try Self.associatedData(sessionID: sessionID, round: round, sender: sender, receiver: receiver)
        do {
            let box = try ChaChaPoly.seal(
                plaintext, using: symmetricKey, nonce: ChaChaPoly.Nonce(data: nonce), authenticating: associatedData)
            return ShareEnvelope(sender: sender, receiver: receiver, round: round, ciphertext: Array(box.combined))
        } catch {
            throw FedRecError(.usage, "ChaCha20-Poly1305 refused to seal: \(error)")
        }
    }

    /// The plaintext, if this envelope was sealed under `key` for this session and `round`,
    /// from `sender` to `receiver` as it says. Throws `.mismatch` if it names another round,
    /// `.corrupt` if it is too short or does not authenticate (tampered, replayed from another
    /// session, or its sender or receiver changed).
    public func open(key: [UInt8], sessionID: [UInt8], round: UInt64) throws -> [UInt8] {
        guard self.round == round else {
            throw FedRecError(.mismatch, "a share envelope of round \(self.round) in round \(round)")
        }
        let symmetricKey = try Self.symmetricKey(key)
        let associatedData = try Self.associatedData(sessionID: sessionID, round: round, sender: sender, receiver: receiver)
        guard ciphertext.count >= Self.overheadByteCount else {
            throw FedRecError(.corrupt, "a share envelope of \(ciphertext.count) bytes is shorter than its nonce and tag")
        }
        do {
            let box = try ChaChaPoly.SealedBox(combined: ciphertext)
            return Array(try ChaChaPoly.open(box, using: symmetricKey, authenticating: associatedData))
        } catch {
            throw FedRecError(.corrupt, "a share envelope from party \(sender) to \(receiver) does not authenticate: tampered, or sealed for another session, round or pair")
        }
    }

    /// `open`, after checking the envelope names `sender` and `receiver` (whom the caller
    /// expects: the receiver itself, and the party the server says it relays from).
    public func open(key: [UInt8], sessionID: [UInt8], round: UInt64, sender: UInt32, receiver: UInt32) throws -> [UInt8] {
        guard self.sender == sender, self.receiver == receiver else {
            throw FedRecError(.mismatch, "a share envelope from party \(self.sender) to \(self.receiver) where one from \(sender) to \(receiver) is due")
        }
        return try open(key: key, sessionID: sessionID, round: round)
    }

    /// The 52 bytes of associated data (see the type's documentation).
    static func associatedData(sessionID: [UInt8], round: UInt64, sender: UInt32, receiver: UInt32) throws -> [UInt8] {
        try KeyAgreement.checkSessionID(sessionID)
        var data = [UInt8]()
        data.reserveCapacity(52)
        appendBigEndian(UInt32(SecureAggregation.protocolVersion), to: &data)
        data += sessionID
        appendBigEndian(round, to: &data)
        appendBigEndian(sender, to: &data)
        appendBigEndian(receiver, to: &data)
        return data
    }

    private static func symmetricKey(_ key: [UInt8]) throws -> SymmetricKey {
        guard key.count == 32 else { throw FedRecError(.badData, "a share-encryption key is 32 bytes, not \(key.count)") }
        return SymmetricKey(data: key)
    }
}
