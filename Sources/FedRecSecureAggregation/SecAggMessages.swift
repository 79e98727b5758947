import Crypto
import FedRecSupport

/// The messages of one secure-aggregation round, in the order they are sent (Bonawitz et al.,
/// CCS 2017, Fig. 4, semi-honest variant, over the neighbour graph of Bell et al., CCS 2020):
///
/// 1. each party → server: `KeyAdvertisement` (two X25519 public keys);
/// 2. server → all: `SecAggRoster` (who takes part, k and t, the modulus, the graph);
/// 3. each party → server: `ShareBundle` (Shamir shares of its self-mask seed and mask key,
///    one encrypted envelope per neighbour);
/// 4. server → each party: `ShareDelivery` (the envelopes addressed to it);
/// 5. each party → server: `MaskedInput` (its quantised update plus masks, mod 2^b), summed
///    by the server in any order (`MaskedInput.adding`);
/// 6. server → survivors: `UnmaskRequest` (who is in the sum, who dropped after sharing);
/// 7. each survivor → server: `UnmaskResponse` (for each neighbour, the one share the
///    request calls for); the server removes the masks (`SecAggServer.unmask`).
///
/// Every message names its session (32 random bytes the server draws for the round) and round,
/// and every receiver checks both (`checkRound`), so a message of another round is refused.
public protocol SecAggMessage: Sendable {
    var sessionID: [UInt8] { get }
    var round: UInt64 { get }
}

extension SecAggMessage {
    /// Throws `.mismatch` unless this message belongs to session `sessionID`, round `round`.
    public func checkRound(sessionID: [UInt8], round: UInt64, what: String) throws {
        guard self.sessionID == sessionID else {
            throw FedRecError(.mismatch, "\(what) belongs to another secure-aggregation session")
        }
        guard self.round == round else {
            throw FedRecError(.mismatch, "\(what) is of round \(self.round), not round \(round)")
        }
    }
}

/// Step 1: a party's two public keys, c (to encrypt the shares its neighbours send it) and s
/// (to agree pairwise masks), each 32 bytes (X25519, RFC 7748).
public struct KeyAdvertisement: SecAggMessage, Equatable {
    public let sessionID: [UInt8]
    public let round: UInt64
    public let party: UInt32
    public let encryptionKey: [UInt8]
    public let maskKey: [UInt8]

    public init(sessionID: [UInt8], round: UInt64, party: UInt32, encryptionKey: [UInt8], maskKey: [UInt8]) {
        self.sessionID = sessionID
        self.round = round
        self.party = party
        self.encryptionKey = encryptionKey
        self.maskKey = maskKey
    }
}

/// Step 2: the round's parties (those whose keys reached the server, in party order), the
/// parameters chosen for their number, the modulus of the vectors to sum, and the neighbour
/// graph over them. The vectors' length is not fixed here: every masked vector of a sum must
/// have the same (`MaskedInput.adding` refuses others), which the update's layout gives.
///
/// A party's index is its place in `parties`; its Shamir x coordinate is index + 1. The graph
/// is the Harary graph on a permutation keyed by SHA-256("fedrec-secagg-graph" ‖ session id ‖
/// round (UInt64 BE) ‖ every party's id (UInt32 BE) and two keys, in order), so that it is fixed
/// by the roster itself: every party recomputes it, and no one chooses it alone after seeing
/// the keys.
public struct SecAggRoster: SecAggMessage, Equatable {
    public let sessionID: [UInt8]
    public let round: UInt64
    public let parameters: SecAggParameters
    /// b: vectors are summed mod 2^b.
    public let modulusBits: Int
    public let parties: [KeyAdvertisement]
    public let graph: NeighbourGraph
    /// The key of the graph's permutation (`graphSeed(sessionID:round:parties:)`), kept
    /// because it covers session, round and every key: a party's roster digest hashes it
    /// instead of the whole roster again at each step.
    let permutationKey: [UInt8]
    private let indexByParty: [UInt32: Int]

    /// A roster of `parties`, which must be sorted by party id without duplicates, with keys
    /// of 32 bytes, of this session and round, and `parameters` chosen for their number.
    /// Throws `.badData` / `.mismatch` / `.usage` naming the first problem.
    public init(
        sessionID: [UInt8], round: UInt64, parameters: SecAggParameters, modulusBits: Int, parties: [KeyAdvertisement]
    ) throws {
        try KeyAgreement.checkSessionID(sessionID)
        guard (2...32).contains(modulusBits) else {
            throw FedRecError(.badData, "a secure-aggregation modulus of \(modulusBits) bits (2...32 allowed)")
        }
        guard parameters.partyCount == parties.count else {
            throw FedRecError(.mismatch, "a roster of \(parties.count) parties with parameters chosen for \(parameters.partyCount)")
        }
        var indexByParty = [UInt32: Int](minimumCapacity: parties.count)
        for (index, party) in parties.enumerated() {
            try party.checkRound(sessionID: sessionID, round: round, what: "the keys of party \(party.party)")
            guard party.encryptionKey.count == 32, party.maskKey.count == 32 else {
                throw FedRecError(.badData, "party \(party.party) advertised a key that is not 32 bytes")
            }
            if index > 0, parties[index - 1].party >= party.party {
                throw FedRecError(
                    .badData,
                    parties[index - 1].party == party.party
                        ? "party \(party.party) appears twice in the roster" : "the roster is not in party order")
            }
            indexByParty[party.party] = index
        }
        self.sessionID = sessionID
        self.round = round
        self.parameters = parameters
        self.modulusBits = modulusBits
        self.parties = parties
        self.indexByParty = indexByParty
        let permutationKey = Self.graphSeed(sessionID: sessionID, round: round, parties: parties)
        self.permutationKey = permutationKey
        self.graph = try NeighbourGraph(partyCount: parties.count, degree: parameters.degree, seed: permutationKey)
    }

    /// The key of the graph's permutation (see the type's documentation).
    static func graphSeed(sessionID: [UInt8], round: UInt64, parties: [KeyAdvertisement]) -> [UInt8] {
        var hash = SHA256()
        hash.update(data: Array("fedrec-secagg-graph".utf8))
        hash.update(data: sessionID)
        var bytes = [UInt8]()
        appendBigEndian(round, to: &bytes)
        hash.update(data: bytes)
        for party in parties {
            bytes.removeAll(keepingCapacity: true)
            appendBigEndian(party.party, to: &bytes)
            hash.update(data: bytes)
            hash.update(data: party.encryptionKey)
            hash.update(data: party.maskKey)
        }
        return Array(hash.finalize())
    }

    /// The roster index of `party`, if it takes part.
    public func index(of party: UInt32) -> Int? { indexByParty[party] }

    /// The party ids of the neighbours of the party at `index`, in roster order.
    public func neighbourParties(ofIndex index: Int) -> [UInt32] {
        graph.neighbours(of: index).map { parties[$0].party }
    }

    /// The Shamir x coordinate of the party at `index`: index + 1 (x = 0 holds the secret).
    public static func shamirX(ofIndex index: Int) -> UInt32 { UInt32(truncatingIfNeeded: index + 1) }

    public static func == (a: SecAggRoster, b: SecAggRoster) -> Bool {
        a.sessionID == b.sessionID && a.round == b.round && a.parameters == b.parameters
            && a.modulusBits == b.modulusBits && a.parties == b.parties
    }
}

/// Step 3: a party's encrypted shares for its neighbours, one envelope each (the plaintext is
/// the share of its self-mask seed b_u then the share of its mask private key s_u, each in
/// `ShamirShare`'s 52-byte form).
public struct ShareBundle: SecAggMessage, Equatable {
    public let sessionID: [UInt8]
    public let round: UInt64
    public let sender: UInt32
    public let envelopes: [ShareEnvelope]

    public init(sessionID: [UInt8], round: UInt64, sender: UInt32, envelopes: [ShareEnvelope]) {
        self.sessionID = sessionID
        self.round = round
        self.sender = sender
        self.envelopes = envelopes
    }
}

/// Step 4: the envelopes addressed to `receiver`, from those of its neighbours whose bundles
/// reached the server; their senders are the parties it masks with.
public struct ShareDelivery: SecAggMessage, Equatable {
    public let sessionID: [UInt8]
    public let round: UInt64
    public let receiver: UInt32
    public let envelopes: [ShareEnvelope]

    public init(sessionID: [UInt8], round: UInt64, receiver: UInt32, envelopes: [ShareEnvelope]) {
        self.sessionID = sessionID
        self.round = round
        self.receiver = receiver
        self.envelopes = envelopes
    }
}

/// Step 5: a masked vector mod 2^b, or the sum of several; `parties` (ascending) says whose.
/// Sums combine associatively and commutatively (`adding`), so they can be formed in a tree.
public struct MaskedInput: SecAggMessage, Equatable {
    public let sessionID: [UInt8]
    public let round: UInt64
    public let modulusBits: Int
    public let parties: [UInt32]
    public let values: [UInt32]

    /// Throws `.badData` if `parties` is not strictly ascending or a value is not below 2^b.
    public init(sessionID: [UInt8], round: UInt64, modulusBits: Int, parties: [UInt32], values: [UInt32]) throws {
        guard (2...32).contains(modulusBits) else {
            throw FedRecError(.badData, "a masked vector mod 2^\(modulusBits) (2...32 allowed)")
        }
        guard values.count <= MaskExpansion.maximumCount else {
            throw FedRecError(.badData, "a masked vector of \(values.count) values (at most \(MaskExpansion.maximumCount))")
        }
        guard !parties.isEmpty, zip(parties, parties.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw FedRecError(.badData, "a masked vector whose party list is empty or not strictly ascending")
        }
        if modulusBits < 32 {
            let limit = UInt32(1) << UInt32(modulusBits)
            guard values.allSatisfy({ $0 < limit }) else {
                throw FedRecError(.badData, "a masked vector with a value not below 2^\(modulusBits)")
            }
        }
        self.sessionID = sessionID
        self.round = round
        self.modulusBits = modulusBits
        self.parties = parties
        self.values = values
    }

    /// The sum of this and `other` mod 2^b. Throws `.mismatch` for another session, round,
    /// modulus or length, and `.badData` if a party is in both (it would count twice).
    public func adding(_ other: MaskedInput) throws -> MaskedInput {
        try other.checkRound(sessionID: sessionID, round: round, what: "a masked vector")
        guard other.modulusBits == modulusBits, other.values.count == values.count else {
            throw FedRecError(
                .mismatch,
                "masked vectors of \(values.count) values mod 2^\(modulusBits) and \(other.values.count) mod 2^\(other.modulusBits)")
        }
        var merged = [UInt32]()
        merged.reserveCapacity(parties.count + other.parties.count)
        var i = 0, j = 0
        while i < parties.count || j < other.parties.count {
            if j == other.parties.count || (i < parties.count && parties[i] < other.parties[j]) {
                merged.append(parties[i]); i += 1
            } else if i == parties.count || other.parties[j] < parties[i] {
                merged.append(other.parties[j]); j += 1
            } else {
                throw FedRecError(.badData, "party \(parties[i]) is in two masked vectors of one sum")
            }
        }
        let mask: UInt32 = modulusBits == 32 ? .max : (1 << UInt32(modulusBits)) - 1
        var sum = values
        sum.withUnsafeMutableBufferPointer { target in
            other.values.withUnsafeBufferPointer { source in
                for k in 0..<target.count { target[k] = (target[k] &+ source[k]) & mask }
            }
        }
        return try MaskedInput(sessionID: sessionID, round: round, modulusBits: modulusBits, parties: merged, values: sum)
    }
}

/// Step 6: whose masked vectors are in the sum (`survivors`, U3) and who sent shares but no
/// masked vector (`dropped`, U2 \ U3); both ascending, disjoint.
public struct UnmaskRequest: SecAggMessage, Equatable {
    public let sessionID: [UInt8]
    public let round: UInt64
    public let survivors: [UInt32]
    public let dropped: [UInt32]

    public init(sessionID: [UInt8], round: UInt64, survivors: [UInt32], dropped: [UInt32]) {
        self.sessionID = sessionID
        self.round = round
        self.survivors = survivors
        self.dropped = dropped
    }
}

/// Step 7: what one survivor reveals: for each neighbour in the sum, its share of that
/// neighbour's self-mask seed; for each neighbour that dropped, its share of that neighbour's
/// mask private key. Never both for one neighbour.
public struct UnmaskResponse: SecAggMessage, Equatable {
    /// One revealed share and whose secret it is a share of.
    public struct RevealedShare: Sendable, Equatable {
        public let owner: UInt32
        public let share: ShamirShare
        public init(owner: UInt32, share: ShamirShare) {
            self.owner = owner
            self.share = share
        }
    }

    public let sessionID: [UInt8]
    public let round: UInt64
    public let sender: UInt32
    public let selfMaskShares: [RevealedShare]
    public let maskKeyShares: [RevealedShare]

    public init(
        sessionID: [UInt8], round: UInt64, sender: UInt32, selfMaskShares: [RevealedShare], maskKeyShares: [RevealedShare]
    ) {
        self.sessionID = sessionID
        self.round = round
        self.sender = sender
        self.selfMaskShares = selfMaskShares
        self.maskKeyShares = maskKeyShares
    }
}
