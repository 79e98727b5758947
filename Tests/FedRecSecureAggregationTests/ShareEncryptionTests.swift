import FedRecSupport
import Testing

@testable import FedRecSecureAggregation

@Suite struct ShareEncryptionTests {
    typealias Vectors = KnownAnswerVectors

    static let key = Vectors.bytes(Vectors.envelopeKey)
    static let session = Vectors.bytes(Vectors.envelopeSession)
    static let plaintext = Vectors.bytes(Vectors.envelopePlaintext)

    static func sealed() throws -> ShareEnvelope {
        try ShareEnvelope.seal(
            plaintext, key: key, sessionID: session, round: Vectors.envelopeRound,
            sender: Vectors.envelopeSender, receiver: Vectors.envelopeReceiver, nonce: Vectors.bytes(Vectors.envelopeNonce))
    }

    /// Sealing with a fixed nonce gives Python `cryptography`'s ChaCha20-Poly1305 output for
    /// our associated-data layout, and that output opens to the plaintext.
    @Test func sealMatchesIndependentChaChaPoly() throws {
        #expect(
            try ShareEnvelope.associatedData(
                sessionID: Self.session, round: Vectors.envelopeRound, sender: Vectors.envelopeSender,
                receiver: Vectors.envelopeReceiver) == Vectors.bytes(Vectors.envelopeAssociatedData))
        let envelope = try Self.sealed()
        #expect(envelope.ciphertext == Vectors.bytes(Vectors.envelopeCombined))
        #expect(envelope.ciphertext.count == Self.plaintext.count + ShareEnvelope.overheadByteCount)
        let received = ShareEnvelope(
            sender: Vectors.envelopeSender, receiver: Vectors.envelopeReceiver, round: Vectors.envelopeRound,
            ciphertext: Vectors.bytes(Vectors.envelopeCombined))
        #expect(try received.open(key: Self.key, sessionID: Self.session, round: Vectors.envelopeRound) == Self.plaintext)
        #expect(
            try received.open(
                key: Self.key, sessionID: Self.session, round: Vectors.envelopeRound,
                sender: Vectors.envelopeSender, receiver: Vectors.envelopeReceiver) == Self.plaintext)
    }

    /// A replayed, redirected, altered or misaddressed envelope fails to open, with an error.
    @Test func tamperedEnvelopesFailToOpen() throws {
        let envelope = try Self.sealed()
        let round = Vectors.envelopeRound
        func failure(_ body: () throws -> [UInt8]) -> FailureClass? {
            do { _ = try body(); return nil } catch let error as FedRecError { return error.failure } catch { return nil }
        }
        func relabelled(sender: UInt32? = nil, receiver: UInt32? = nil, round newRound: UInt64? = nil, ciphertext: [UInt8]? = nil) -> ShareEnvelope {
            ShareEnvelope(
                sender: sender ?? envelope.sender, receiver: receiver ?? envelope.receiver, round: newRound ?? envelope.round,
                ciphertext: ciphertext ?? envelope.ciphertext)
        }
        var otherSession = Self.session
        otherSession[5] ^= 0x80
        var otherKey = Self.key
        otherKey[0] ^= 1
        var flipped = envelope.ciphertext
        flipped[20] ^= 1
        #expect(failure { try envelope.open(key: Self.key, sessionID: otherSession, round: round) } == .corrupt)
        #expect(failure { try envelope.open(key: otherKey, sessionID: Self.session, round: round) } == .corrupt)
        #expect(failure { try envelope.open(key: Self.key, sessionID: Self.session, round: round + 1) } == .mismatch)
        #expect(failure { try relabelled(round: round + 1).open(key: Self.key, sessionID: Self.session, round: round + 1) } == .corrupt)
        #expect(failure { try relabelled(sender: 4).open(key: Self.key, sessionID: Self.session, round: round) } == .corrupt)
        #expect(failure { try relabelled(receiver: 8).open(key: Self.key, sessionID: Self.session, round: round) } == .corrupt)
        #expect(failure { try relabelled(sender: envelope.receiver, receiver: envelope.sender).open(key: Self.key, sessionID: Self.session, round: round) } == .corrupt)
        #expect(failure { try relabelled(ciphertext: flipped).open(key: Self.key, sessionID: Self.session, round: round) } == .corrupt)
        #expect(failure { try relabelled(ciphertext: Array(envelope.ciphertext.prefix(27))).open(key: Self.key, sessionID: Self.session, round: round) } == .corrupt)
        #expect(failure { try envelope.open(key: Self.key, sessionID: Self.session, round: round, sender: 9, receiver: envelope.receiver) } == .mismatch)
        #expect(failure { try envelope.open(key: Self.key, sessionID: Self.session, round: round, sender: envelope.sender, receiver: 9) } == .mismatch)
        #expect(failure { try envelope.open(key: Array(Self.key.prefix(16)), sessionID: Self.session, round: round) } == .badData)
        #expect(failure { try envelope.open(key: Self.key, sessionID: [1, 2], round: round) } == .badData)
    }

    /// Fresh nonces: sealing twice gives two ciphertexts, both opening; seeded nonces repeat.
    @Test func noncesAreFreshUnlessSeeded() throws {
        let a = try ShareEnvelope.seal(Self.plaintext, key: Self.key, sessionID: Self.session, round: 1, sender: 0, receiver: 1)
        let b = try ShareEnvelope.seal(Self.plaintext, key: Self.key, sessionID: Self.session, round: 1, sender: 0, receiver: 1)
        #expect(a.ciphertext != b.ciphertext)
        #expect(try a.open(key: Self.key, sessionID: Self.session, round: 1) == Self.plaintext)
        #expect(try b.open(key: Self.key, sessionID: Self.session, round: 1) == Self.plaintext)
        var first = SeededGenerator(seed: 8439)
        var second = SeededGenerator(seed: 8439)
        let c = try ShareEnvelope.seal([], key: Self.key, sessionID: Self.session, round: 1, sender: 0, receiver: 1, using: &first)
        let d = try ShareEnvelope.seal([], key: Self.key, sessionID: Self.session, round: 1, sender: 0, receiver: 1, using: &second)
        #expect(c == d)
        #expect(try c.open(key: Self.key, sessionID: Self.session, round: 1) == [])
    }
}
