import Crypto
import FedRecSupport

/// One party's side of a secure-aggregation round: its private keys and self-mask seed, the
/// shares its neighbours entrusted to it, and how far it has got. Each step checks the message
/// it answers and moves `step` on; a step answered once is never answered again, so a replayed
/// roster, delivery or unmasking request is refused (`.refused`), and a message of another
/// session or round is refused as `.mismatch` (Bonawitz et al., CCS 2017, Fig. 4, semi-honest
/// rounds 0–4; the sparse graph of Bell et al., CCS 2020).
///
/// The state is a value: a caller that persists it (the command line keeps it in the party's
/// private state file, which the server never reads) must store the new state before it
/// releases the step's output, so a crash can never make the party answer a step twice.
public struct SecAggParty: Sendable, Equatable {
    /// How far the party has got in the round.
    public enum Step: UInt8, Sendable, Equatable {
        /// Keys generated and advertised.
        case advertised = 1
        /// Shares of its seed and mask key sent to its neighbours.
        case sharedKeys = 2
        /// Masked input sent.
        case maskedInput = 3
        /// Shares revealed for unmasking: the round is over for this party.
        case revealed = 4
    }

    /// A share a neighbour entrusted to this party: of the neighbour's self-mask seed b and of
    /// its mask private key s.
    public struct HeldShares: Sendable, Equatable {
        public let owner: UInt32
        public let selfMask: ShamirShare
        public let maskKey: ShamirShare

        public init(owner: UInt32, selfMask: ShamirShare, maskKey: ShamirShare) {
            self.owner = owner
            self.selfMask = selfMask
            self.maskKey = maskKey
        }
    }

    /// Everything the party must keep between steps, as its private state file stores it.
    /// Never sent anywhere: it holds the private keys and the self-mask seed.
    public struct Record: Sendable, Equatable {
        public var sessionID: [UInt8]
        public var round: UInt64
        public var party: UInt32
        public var encryptionPrivateKey: [UInt8]
        public var maskPrivateKey: [UInt8]
        /// Empty before the party shares its keys.
        public var selfMaskSeed: [UInt8]
        /// Empty before the party shares its keys.
        public var rosterDigest: [UInt8]
        public var heldShares: [HeldShares]
        public var step: Step
        /// The share-encryption keys agreed with each neighbour when sharing, kept so the mask
        /// step opens their envelopes without agreeing them again (empty: agree them anew).
        public var shareKeys: [UInt32: [UInt8]]

        public init(
            sessionID: [UInt8], round: UInt64, party: UInt32, encryptionPrivateKey: [UInt8], maskPrivateKey: [UInt8],
            selfMaskSeed: [UInt8], rosterDigest: [UInt8], heldShares: [HeldShares], step: Step,
            shareKeys: [UInt32: [UInt8]] = [:]
        ) {
            self.shareKeys = shareKeys
            self.sessionID = sessionID
            self.round = round
            self.party = party
            self.encryptionPrivateKey = encryptionPrivateKey
            self.maskPrivateKey = maskPrivateKey
            self.selfMaskSeed = selfMaskSeed
            self.rosterDigest = rosterDigest
            self.heldShares = heldShares
            self.step = step
        }
    }

    /// The state to persist.
    public var record: Record {
        Record(
            sessionID: sessionID, round: round, party: party, encryptionPrivateKey: encryptionPrivateKey,
            maskPrivateKey: maskPrivateKey, selfMaskSeed: selfMaskSeed, rosterDigest: rosterDigest,
            heldShares: heldShares, step: step, shareKeys: shareKeys)
    }

    /// A party restored from its record; throws `.corrupt` if a key, seed or digest has the
    /// wrong length for its step.
    public init(record: Record) throws {
        guard record.sessionID.count == KeyAgreement.sessionIDByteCount, record.encryptionPrivateKey.count == 32,
            record.maskPrivateKey.count == 32
        else { throw FedRecError(.corrupt, "a secure-aggregation state with a session id or private key of the wrong length") }
        let shared = record.step != .advertised
        guard record.selfMaskSeed.count == (shared ? MaskExpansion.seedByteCount : 0),
            record.rosterDigest.count == (shared ? 32 : 0)
        else { throw FedRecError(.corrupt, "a secure-aggregation state whose seed or roster digest does not fit its step") }
        sessionID = record.sessionID
        round = record.round
        party = record.party
        encryptionPrivateKey = record.encryptionPrivateKey
        maskPrivateKey = record.maskPrivateKey
        selfMaskSeed = record.selfMaskSeed
        rosterDigest = record.rosterDigest
        heldShares = record.heldShares
        step = record.step
        guard record.shareKeys.values.allSatisfy({ $0.count == 32 }) else {
            throw FedRecError(.corrupt, "a secure-aggregation state with a share key that is not 32 bytes")
        }
        shareKeys = record.shareKeys
    }

    public let sessionID: [UInt8]
    public let round: UInt64
    public let party: UInt32
    /// The private half of the share-encryption key pair (c).
    let encryptionPrivateKey: [UInt8]
    /// The private half of the mask key pair (s).
    let maskPrivateKey: [UInt8]
    /// b: the seed of the party's own mask, drawn when it shares its keys.
    private(set) var selfMaskSeed: [UInt8]
    /// SHA-256 of the roster the party shared under; later steps must present the same one.
    private(set) var rosterDigest: [UInt8]
    /// The shares held for the neighbours whose envelopes reached this party, by owner.
    public private(set) var heldShares: [HeldShares]
    /// The share-encryption key agreed with each neighbour while sharing (`Record.shareKeys`).
    private(set) var shareKeys: [UInt32: [UInt8]]
    public private(set) var step: Step

    /// Bytes of a Shamir share of a 32-byte secret in wire form.
    public static let shareByteCount = 4 + ShamirShare.valueByteCount * ShamirSharing.chunkCount(secretLength: 32)

    /// Step 1: a party with fresh key pairs and its advertisement. Keys (and, later, the seed
    /// and the sharing polynomials) come from `generator`: the system CSPRNG, or a named test seed.
    public static func advertise<G: RandomNumberGenerator>(
        sessionID: [UInt8], round: UInt64, party: UInt32, using generator: inout G
    ) throws -> (SecAggParty, KeyAdvertisement) {
        try KeyAgreement.checkSessionID(sessionID)
        let encryption = PartyKeyPair(using: &generator)
        let mask = PartyKeyPair(using: &generator)
        let state = try SecAggParty(
            record: Record(
                sessionID: sessionID, round: round, party: party,
                encryptionPrivateKey: Array(encryption.privateKey.rawRepresentation),
                maskPrivateKey: Array(mask.privateKey.rawRepresentation),
                selfMaskSeed: [], rosterDigest: [], heldShares: [], step: .advertised))
        let advertisement = KeyAdvertisement(
            sessionID: sessionID, round: round, party: party,
            encryptionKey: encryption.publicKeyBytes, maskKey: mask.publicKeyBytes)
        return (state, advertisement)
    }

    /// Step 3: checks the roster (this session and round, this party in it with the keys it
    /// advertised, k and t as the published rule gives for the roster's size and stated
    /// assumptions), draws the self-mask seed, and shares it and the mask private key among
    /// its neighbours with threshold t, one encrypted envelope per neighbour.
    public mutating func shareKeys<G: RandomNumberGenerator>(
        roster: SecAggRoster, using generator: inout G
    ) throws -> ShareBundle {
        try roster.checkRound(sessionID: sessionID, round: round, what: "the roster")
        guard step == .advertised else {
            throw FedRecError(.refused, "party \(party) has already shared its keys in round \(round): a second roster is refused")
        }
        let keys = try keyPairs()
        let index = try ownIndex(in: roster, keys: keys)
        let expected = try SecAggParameters.choose(
            partyCount: roster.parties.count, dropoutRate: roster.parameters.dropoutRate,
            corruptFraction: roster.parameters.corruptFraction)
        guard expected == roster.parameters else {
            throw FedRecError(
                .mismatch,
                "the roster's degree \(roster.parameters.degree) and threshold \(roster.parameters.threshold) are not what the rule gives for \(roster.parties.count) parties (\(expected.degree) and \(expected.threshold))")
        }
        let neighbours = roster.graph.neighbours(of: index)
        let seed = randomBytes(MaskExpansion.seedByteCount, using: &generator)
        let holders = neighbours.map { SecAggRoster.shamirX(ofIndex: $0) }
        let threshold = roster.parameters.threshold
        let seedShares = try ShamirSharing.split(secret: seed, threshold: threshold, shareholders: holders, using: &generator)
        let keyShares = try ShamirSharing.split(
            secret: maskPrivateKey, threshold: threshold, shareholders: holders, using: &generator)
        let encryption = keys.encryption
        var envelopes = [ShareEnvelope]()
        envelopes.reserveCapacity(neighbours.count)
        var agreed = [UInt32: [UInt8]](minimumCapacity: neighbours.count)
        for (k, neighbour) in neighbours.enumerated() {
            let peer = roster.parties[neighbour]
            let key = try KeyAgreement.agreedSecret(
                privateKey: encryption.privateKey, publicKey: peer.encryptionKey, sessionID: sessionID,
                purpose: .shareEncryption, parties: (Int(party), Int(peer.party)))
            agreed[peer.party] = key
            envelopes.append(
                try ShareEnvelope.seal(
                    seedShares[k].bytes + keyShares[k].bytes, key: key, sessionID: sessionID, round: round,
                    sender: party, receiver: peer.party, using: &generator))
        }
        selfMaskSeed = seed
        rosterDigest = Self.digest(of: roster)
        shareKeys = agreed
        step = .sharedKeys
        return ShareBundle(sessionID: sessionID, round: round, sender: party, envelopes: envelopes)
    }

    /// Step 5: opens the envelopes delivered to it (each must be from a distinct neighbour and
    /// authenticate), keeps the shares, and masks `input` (quantised: words mod 2^b, as many
    /// as every party of the round masks): y = x + PRG(b) + Σ_v ±PRG(s_{u,v}) over the neighbours v whose envelopes
    /// arrived, + where this party's index is the smaller (Bonawitz et al. §4). Refuses
    /// (`.tooFewParties`) if fewer than t neighbours are left: its mask could not be removed.
    public mutating func maskInput(
        _ input: [UInt32], roster: SecAggRoster, delivery: ShareDelivery
    ) throws -> MaskedInput {
        try delivery.checkRound(sessionID: sessionID, round: round, what: "the share delivery")
        try checkSameRoster(roster)
        guard step == .sharedKeys else {
            throw FedRecError(
                step == .advertised ? .usage : .refused,
                step == .advertised
                    ? "party \(party) has not shared its keys yet" : "party \(party) has already sent its masked input in round \(round)")
        }
        guard delivery.receiver == party else {
            throw FedRecError(.mismatch, "a share delivery for party \(delivery.receiver) given to party \(party)")
        }
        guard !input.isEmpty, input.count <= MaskExpansion.maximumCount else {
            throw FedRecError(.shape, "an input of \(input.count) values (1...\(MaskExpansion.maximumCount) allowed)")
        }
        let keys = try keyPairs()
        let index = try ownIndex(in: roster, keys: keys)
        let neighbours = Set(roster.graph.neighbours(of: index))
        let (encryption, maskKeys) = keys
        let ownX = SecAggRoster.shamirX(ofIndex: index)
        var held = [HeldShares]()
        var senders = Set<Int>()
        for envelope in delivery.envelopes {
            guard let senderIndex = roster.index(of: envelope.sender), neighbours.contains(senderIndex) else {
                throw FedRecError(.mismatch, "a share envelope from party \(envelope.sender), which is not a neighbour of party \(party)")
            }
            guard senders.insert(senderIndex).inserted else {
                throw FedRecError(.badData, "two share envelopes from party \(envelope.sender)")
            }
            // The roster is the one shared under (checked above), so the key agreed then is
            // the one the neighbour sealed with.
            let key = try shareKeys[envelope.sender] ?? KeyAgreement.agreedSecret(
                privateKey: encryption.privateKey, publicKey: roster.parties[senderIndex].encryptionKey,
                sessionID: sessionID, purpose: .shareEncryption, parties: (Int(party), Int(envelope.sender)))
            let plaintext = try envelope.open(
                key: key, sessionID: sessionID, round: round, sender: envelope.sender, receiver: party)
            guard plaintext.count == 2 * Self.shareByteCount else {
                throw FedRecError(.corrupt, "a share envelope from party \(envelope.sender) of \(plaintext.count) bytes, not \(2 * Self.shareByteCount)")
            }
            let seedShare = try ShamirShare(bytes: Array(plaintext[0..<Self.shareByteCount]))
            let keyShare = try ShamirShare(bytes: Array(plaintext[Self.shareByteCount...]))
            guard seedShare.x == ownX, keyShare.x == ownX else {
                throw FedRecError(.corrupt, "shares from party \(envelope.sender) for x = \(seedShare.x), not this party's x = \(ownX)")
            }
            held.append(HeldShares(owner: envelope.sender, selfMask: seedShare, maskKey: keyShare))
        }
        guard held.count >= roster.parameters.threshold else {
            throw FedRecError(
                .tooFewParties,
                "only \(held.count) of party \(party)'s neighbours shared their keys; at least the threshold \(roster.parameters.threshold) are needed to unmask")
        }
        held.sort { $0.owner < $1.owner }
        let bits = roster.modulusBits
        let limit: UInt64 = 1 << UInt64(bits)
        guard input.allSatisfy({ UInt64($0) < limit }) else {
            throw FedRecError(.badData, "an input value is not below 2^\(bits): quantise it first")
        }
        var masks = [Mask(seed: selfMaskSeed, domain: MaskDomain(sessionID: sessionID, round: round, purpose: .selfMask), adding: true)]
        masks.reserveCapacity(1 + held.count)
        let pairwise = MaskDomain(sessionID: sessionID, round: round, purpose: .pairwise)
        for shares in held {
            guard let peerIndex = roster.index(of: shares.owner) else { continue }
            let secret = try KeyAgreement.agreedSecret(
                privateKey: maskKeys.privateKey, publicKey: roster.parties[peerIndex].maskKey, sessionID: sessionID,
                purpose: .pairwiseMask, parties: (Int(party), Int(shares.owner)))
            masks.append(Mask(seed: secret, domain: pairwise, adding: index < peerIndex))
        }
        var masked = input
        masked.withUnsafeMutableBufferPointer { MaskExpansion.apply(masks, modulusBits: bits, to: $0) }
        heldShares = held
        shareKeys = [:]
        step = .maskedInput
        return try MaskedInput(sessionID: sessionID, round: round, modulusBits: bits, parties: [party], values: masked)
    }

    /// Step 7: reveals, for each neighbour whose shares it holds, its share of that neighbour's
    /// self-mask seed if the neighbour is in the sum, or of its mask key if it dropped. Refuses
    /// (`.refused`) a request that names a party both in the sum and dropped (both shares would
    /// unmask that party's vector), a second request, or one that leaves this party out of the
    /// sum; refuses (`.tooFewParties`) a sum of fewer than t parties.
    public mutating func unmask(_ request: UnmaskRequest, roster: SecAggRoster) throws -> UnmaskResponse {
        try request.checkRound(sessionID: sessionID, round: round, what: "the unmasking request")
        try checkSameRoster(roster)
        switch step {
        case .maskedInput: break
        case .revealed:
            throw FedRecError(.refused, "party \(party) has already revealed its shares in round \(round): a second unmasking request is refused")
        case .advertised, .sharedKeys:
            throw FedRecError(.usage, "party \(party) has not sent a masked input in round \(round), so it has nothing to unmask")
        }
        let survivors = Set(request.survivors)
        let dropped = Set(request.dropped)
        guard survivors.count == request.survivors.count, dropped.count == request.dropped.count else {
            throw FedRecError(.badData, "an unmasking request that names a party twice")
        }
        if let both = request.survivors.first(where: { dropped.contains($0) }) {
            throw FedRecError(
                .refused,
                "the unmasking request names party \(both) both in the sum and dropped: revealing both of its shares would unmask its update; refused")
        }
        guard survivors.contains(party) else {
            throw FedRecError(.refused, "the unmasking request leaves party \(party) out of the sum it sent its masked input to; refused")
        }
        guard request.survivors.count >= roster.parameters.threshold else {
            throw FedRecError(
                .tooFewParties,
                "only \(request.survivors.count) parties are in the sum; the threshold is \(roster.parameters.threshold)")
        }
        var selfMaskShares = [UnmaskResponse.RevealedShare]()
        var maskKeyShares = [UnmaskResponse.RevealedShare]()
        for shares in heldShares {
            if survivors.contains(shares.owner) {
                selfMaskShares.append(.init(owner: shares.owner, share: shares.selfMask))
            } else if dropped.contains(shares.owner) {
                maskKeyShares.append(.init(owner: shares.owner, share: shares.maskKey))
            }
        }
        step = .revealed
        return UnmaskResponse(
            sessionID: sessionID, round: round, sender: party, selfMaskShares: selfMaskShares, maskKeyShares: maskKeyShares)
    }

    /// The party's two key pairs from its private keys (each derives its public key: made
    /// once a step and handed to `ownIndex` and the agreements).
    private func keyPairs() throws -> (encryption: PartyKeyPair, mask: PartyKeyPair) {
        (try PartyKeyPair(rawPrivateKey: encryptionPrivateKey), try PartyKeyPair(rawPrivateKey: maskPrivateKey))
    }

    /// The party's index in `roster`, after checking the roster lists the public keys of
    /// `keys` (the party's own, `keyPairs()`) for it.
    private func ownIndex(in roster: SecAggRoster, keys: (encryption: PartyKeyPair, mask: PartyKeyPair)) throws -> Int {
        guard let index = roster.index(of: party) else {
            throw FedRecError(.mismatch, "party \(party) is not in the round's roster")
        }
        let entry = roster.parties[index]
        guard entry.encryptionKey == keys.encryption.publicKeyBytes, entry.maskKey == keys.mask.publicKeyBytes else {
            throw FedRecError(.mismatch, "the roster lists other keys for party \(party) than it advertised")
        }
        return index
    }

    private func checkSameRoster(_ roster: SecAggRoster) throws {
        guard Self.digest(of: roster) == rosterDigest else {
            throw FedRecError(.mismatch, "another roster than the one party \(party) shared its keys under")
        }
    }

    /// SHA-256 over the roster's graph seed (which covers session, round and every key) and
    /// its parameters, modulus and length. The seed is the one the roster computed when it
    /// was built (`SecAggRoster.permutationKey`), so a digest costs two hash blocks.
    static func digest(of roster: SecAggRoster) -> [UInt8] {
        var bytes = roster.permutationKey
        for value in [
            roster.parameters.partyCount, roster.parameters.degree, roster.parameters.threshold, roster.modulusBits,
        ] {
            appendBigEndian(UInt64(truncatingIfNeeded: value), to: &bytes)
        }
        appendBigEndian(roster.parameters.dropoutRate.bitPattern, to: &bytes)
        appendBigEndian(roster.parameters.corruptFraction.bitPattern, to: &bytes)
        return Array(SHA256.hash(data: bytes))
    }
}
