import Crypto
import FedRecSupport
import Testing

@testable import FedRecSecureAggregation

@Suite struct KeyAgreementTests {
    typealias Vectors = KnownAnswerVectors

    /// RFC 7748 §6.1: Alice's and Bob's keys and their shared secret, literals from the RFC.
    @Test func rfc7748X25519Vector() throws {
        let alice = try PartyKeyPair(rawPrivateKey: Vectors.bytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        let bob = try PartyKeyPair(rawPrivateKey: Vectors.bytes("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        #expect(alice.publicKeyBytes == Vectors.bytes("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
        #expect(bob.publicKeyBytes == Vectors.bytes("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
        let shared = try alice.privateKey.sharedSecretFromKeyAgreement(
            with: Curve25519.KeyAgreement.PublicKey(rawRepresentation: bob.publicKeyBytes))
        #expect(shared.withUnsafeBytes { Array($0) } == Vectors.bytes("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"))
    }

    /// X25519 then HKDF-SHA256 with our salt and info, against Python `cryptography`; both
    /// parties derive the same key whichever order they name the pair in.
    @Test(arguments: [KeyPurpose.shareEncryption, .pairwiseMask])
    func agreedSecretsMatchIndependentHKDF(_ purpose: KeyPurpose) throws {
        let alice = try PartyKeyPair(rawPrivateKey: Vectors.bytes(Vectors.alicePrivate))
        let bob = try PartyKeyPair(rawPrivateKey: Vectors.bytes(Vectors.bobPrivate))
        #expect(alice.publicKeyBytes == Vectors.bytes(Vectors.alicePublic))
        #expect(bob.publicKeyBytes == Vectors.bytes(Vectors.bobPublic))
        let session = Vectors.bytes(Vectors.keyAgreementSession)
        let expected = Vectors.bytes(purpose == .shareEncryption ? Vectors.agreedShareEncryption : Vectors.agreedPairwiseMask)
        let fromAlice = try KeyAgreement.agreedSecret(
            privateKey: alice.privateKey, publicKey: bob.publicKeyBytes, sessionID: session, purpose: purpose,
            parties: (Vectors.aliceIndex, Vectors.bobIndex))
        let fromBob = try KeyAgreement.agreedSecret(
            privateKey: bob.privateKey, publicKey: alice.publicKeyBytes, sessionID: session, purpose: purpose,
            parties: (Vectors.bobIndex, Vectors.aliceIndex))
        #expect(fromAlice == expected)
        #expect(fromBob == expected)
    }

    @Test func infoLayoutMatchesIndependentBytes() throws {
        let info = try KeyAgreement.derivationInfo(purpose: .shareEncryption, parties: (Vectors.aliceIndex, Vectors.bobIndex))
        #expect(info == Vectors.bytes(Vectors.infoShareEncryption))
        #expect(try KeyAgreement.derivationInfo(purpose: .shareEncryption, parties: (Vectors.bobIndex, Vectors.aliceIndex)) == info)
    }

    /// The key depends on the purpose, the pair and the session.
    @Test func keysAreBoundToPurposePairAndSession() throws {
        var generator = SeededGenerator(seed: 25519)
        let a = PartyKeyPair(using: &generator)
        let b = PartyKeyPair(using: &generator)
        let session = [UInt8](repeating: 3, count: 32)
        func agree(_ purpose: KeyPurpose, _ parties: (Int, Int), _ session: [UInt8]) throws -> [UInt8] {
            try KeyAgreement.agreedSecret(privateKey: a.privateKey, publicKey: b.publicKeyBytes, sessionID: session, purpose: purpose, parties: parties)
        }
        let reference = try agree(.pairwiseMask, (0, 1), session)
        #expect(reference.count == 32)
        #expect(try agree(.shareEncryption, (0, 1), session) != reference)
        #expect(try agree(.pairwiseMask, (0, 2), session) != reference)
        #expect(try agree(.pairwiseMask, (0, 1), [UInt8](repeating: 4, count: 32)) != reference)
        // Seeded key pairs are reproducible; fresh ones differ.
        var again = SeededGenerator(seed: 25519)
        #expect(PartyKeyPair(using: &again).publicKeyBytes == a.publicKeyBytes)
        #expect(PartyKeyPair().publicKeyBytes != PartyKeyPair().publicKeyBytes)
    }

    /// What another party could send: a short key, a low-order point, a bad session id or index.
    @Test func refusesBadInputsWithErrors() throws {
        let mine = PartyKeyPair()
        let theirs = PartyKeyPair().publicKeyBytes
        let session = [UInt8](repeating: 0, count: 32)
        func agree(_ key: [UInt8], _ session: [UInt8], _ parties: (Int, Int)) throws -> [UInt8] {
            try KeyAgreement.agreedSecret(privateKey: mine.privateKey, publicKey: key, sessionID: session, purpose: .pairwiseMask, parties: parties)
        }
        #expect(throws: FedRecError.self) { try agree(Array(theirs.prefix(31)), session, (0, 1)) }
        #expect(throws: FedRecError.self) { try agree([UInt8](repeating: 0, count: 32), session, (0, 1)) }
        #expect(throws: FedRecError.self) { try agree([1] + [UInt8](repeating: 0, count: 31), session, (0, 1)) }
        #expect(throws: FedRecError.self) { try agree(theirs, Array(session.prefix(16)), (0, 1)) }
        #expect(throws: FedRecError.self) { try agree(theirs, session, (-1, 1)) }
        #expect(throws: FedRecError.self) { try agree(theirs, session, (0, Int(UInt32.max) + 1)) }
        #expect(throws: FedRecError.self) { try agree(theirs, session, (4, 4)) }
        #expect(throws: FedRecError.self) { try PartyKeyPair(rawPrivateKey: [1, 2, 3]) }
    }
}
