import FedRecSupport

/// The server's side of a secure-aggregation round: it relays, sums and finally removes the
/// masks, and at no step holds a private key, a self-mask seed or an unencrypted share of a
/// party that is still in the sum (Bonawitz et al., CCS 2017, Fig. 4, semi-honest server;
/// Bell et al., CCS 2020, for the neighbour graph). Each step is a pure function of the
/// messages that reached it, so a step can run as its own process over files.
public enum SecAggServer {
    /// Step 2: the roster of the parties whose advertisements arrived, with k and t chosen by
    /// `SecAggParameters.choose` for their number and the stated dropout rate and corrupt
    /// fraction. Refuses (`.badData`) a party that advertised twice and (`.tooFewParties`)
    /// fewer than two parties.
    public static func roster(
        sessionID: [UInt8], round: UInt64, advertisements: [KeyAdvertisement], dropoutRate: Double,
        corruptFraction: Double, modulusBits: Int
    ) throws -> SecAggRoster {
        let sorted = advertisements.sorted { $0.party < $1.party }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.party == b.party {
            throw FedRecError(.badData, "party \(a.party) advertised keys twice")
        }
        guard sorted.count >= 2 else {
            throw FedRecError(.tooFewParties, "\(sorted.count) parties advertised keys; secure aggregation needs at least 2")
        }
        let parameters = try SecAggParameters.choose(
            partyCount: sorted.count, dropoutRate: dropoutRate, corruptFraction: corruptFraction)
        return try SecAggRoster(
            sessionID: sessionID, round: round, parameters: parameters, modulusBits: modulusBits, parties: sorted)
    }

    /// Step 4: each sharing party's envelopes regrouped by receiver. Only parties that sent a
    /// bundle receive a delivery (the others have dropped), and a delivery holds envelopes only
    /// from parties that sent one. Refuses a bundle from outside the roster, a second bundle
    /// from a party, an envelope from another sender than its bundle's, to a non-neighbour, or
    /// two envelopes for one receiver.
    public static func deliveries(roster: SecAggRoster, bundles: [ShareBundle]) throws -> [ShareDelivery] {
        var bySender = [Int: ShareBundle]()
        for bundle in bundles {
            try bundle.checkRound(sessionID: roster.sessionID, round: roster.round, what: "the shares of party \(bundle.sender)")
            guard let index = roster.index(of: bundle.sender) else {
                throw FedRecError(.mismatch, "shares from party \(bundle.sender), which is not in the roster")
            }
            guard bySender[index] == nil else { throw FedRecError(.badData, "party \(bundle.sender) sent its shares twice") }
            bySender[index] = bundle
        }
        var inbox = [Int: [ShareEnvelope]]()
        for (senderIndex, bundle) in bySender {
            let neighbours = Set(roster.graph.neighbours(of: senderIndex))
            var receivers = Set<Int>()
            for envelope in bundle.envelopes {
                guard envelope.sender == bundle.sender, envelope.round == roster.round,
                    let receiver = roster.index(of: envelope.receiver), neighbours.contains(receiver)
                else {
                    throw FedRecError(.badData, "party \(bundle.sender) sent an envelope that is not from it, of another round, or not to a neighbour")
                }
                guard receivers.insert(receiver).inserted else {
                    throw FedRecError(.badData, "party \(bundle.sender) sent two envelopes to party \(envelope.receiver)")
                }
                if bySender[receiver] != nil { inbox[receiver, default: []].append(envelope) }
            }
        }
        return bySender.keys.sorted().map { receiver in
            ShareDelivery(
                sessionID: roster.sessionID, round: roster.round, receiver: roster.parties[receiver].party,
                envelopes: (inbox[receiver] ?? []).sorted { $0.sender < $1.sender })
        }
    }

    /// Step 6: who is in `sum` and who shared (`sharers`, the parties that sent bundles) but
    /// is not. Refuses (`.tooFewParties`) a sum of fewer than t parties, and (`.mismatch`) a
    /// sum holding a party that did not share.
    public static func unmaskRequest(roster: SecAggRoster, sharers: [UInt32], sum: MaskedInput) throws -> UnmaskRequest {
        try sum.checkRound(sessionID: roster.sessionID, round: roster.round, what: "the masked sum")
        let sharing = Set(sharers)
        if let stranger = sum.parties.first(where: { !sharing.contains($0) }) {
            throw FedRecError(.mismatch, "the masked sum holds party \(stranger), which did not share its keys")
        }
        guard sum.parties.count >= roster.parameters.threshold else {
            throw FedRecError(
                .tooFewParties,
                "only \(sum.parties.count) masked inputs arrived; the round's threshold is \(roster.parameters.threshold), so nothing is released")
        }
        let inSum = Set(sum.parties)
        return UnmaskRequest(
            sessionID: roster.sessionID, round: roster.round, survivors: sum.parties,
            dropped: sharing.filter { !inSum.contains($0) }.sorted())
    }

    /// Step 8: the sum of the survivors' inputs mod 2^b. For each survivor u, its seed b_u is
    /// reconstructed from t revealed shares and PRG(b_u) subtracted; for each dropped party u,
    /// its mask key s_u is reconstructed (and checked against the public key it advertised),
    /// and for each of its neighbours v in the sum the pairwise mask v added, ±PRG(s_{v,u}),
    /// is taken out. Refuses (`.tooFewParties`) when fewer than t shares of a needed secret
    /// arrived, and (`.corrupt`) shares that do not reconstruct.
    public static func unmask(
        roster: SecAggRoster, request: UnmaskRequest, sum: MaskedInput, responses: [UnmaskResponse]
    ) throws -> [UInt32] {
        try request.checkRound(sessionID: roster.sessionID, round: roster.round, what: "the unmasking request")
        try sum.checkRound(sessionID: roster.sessionID, round: roster.round, what: "the masked sum")
        guard sum.parties == request.survivors else {
            throw FedRecError(.mismatch, "the masked sum's parties are not the unmasking request's")
        }
        guard sum.modulusBits == roster.modulusBits else {
            throw FedRecError(.mismatch, "a masked sum mod 2^\(sum.modulusBits) for a round mod 2^\(roster.modulusBits)")
        }
        let survivors = Set(request.survivors)
        let dropped = Set(request.dropped)
        var seedShares = [UInt32: [ShamirShare]]()
        var keyShares = [UInt32: [ShamirShare]]()
        var responders = Set<UInt32>()
        for response in responses {
            try response.checkRound(sessionID: roster.sessionID, round: roster.round, what: "the shares revealed by party \(response.sender)")
            guard survivors.contains(response.sender), let senderIndex = roster.index(of: response.sender) else {
                throw FedRecError(.mismatch, "revealed shares from party \(response.sender), which is not in the sum")
            }
            guard responders.insert(response.sender).inserted else {
                throw FedRecError(.badData, "party \(response.sender) revealed its shares twice")
            }
            let neighbours = Set(roster.neighbourParties(ofIndex: senderIndex))
            let expectedX = SecAggRoster.shamirX(ofIndex: senderIndex)
            for revealed in response.selfMaskShares + response.maskKeyShares {
                guard neighbours.contains(revealed.owner), revealed.share.x == expectedX else {
                    throw FedRecError(.badData, "party \(response.sender) revealed a share that is not its own share of a neighbour's secret")
                }
            }
            for revealed in response.selfMaskShares {
                guard survivors.contains(revealed.owner) else {
                    throw FedRecError(.badData, "party \(response.sender) revealed a self-mask share of party \(revealed.owner), which is not in the sum")
                }
                seedShares[revealed.owner, default: []].append(revealed.share)
            }
            for revealed in response.maskKeyShares {
                guard dropped.contains(revealed.owner) else {
                    throw FedRecError(.badData, "party \(response.sender) revealed a mask-key share of party \(revealed.owner), which did not drop")
                }
                keyShares[revealed.owner, default: []].append(revealed.share)
            }
        }
        let threshold = roster.parameters.threshold
        let bits = roster.modulusBits
        // Every mask to take out, gathered first (nothing is released if a secret cannot be
        // reconstructed), then expanded over the sum in one pass per mask.
        var masks = [Mask]()
        let selfDomain = MaskDomain(sessionID: roster.sessionID, round: roster.round, purpose: .selfMask)
        for party in request.survivors {
            let shares = seedShares[party] ?? []
            guard shares.count >= threshold else {
                throw FedRecError(
                    .tooFewParties,
                    "only \(shares.count) shares of party \(party)'s self-mask seed were revealed; \(threshold) are needed, so nothing is released")
            }
            let seed = try ShamirSharing.reconstruct(shares, threshold: threshold, secretLength: MaskExpansion.seedByteCount)
            masks.append(Mask(seed: seed, domain: selfDomain, adding: false))
        }
        let pairwise = MaskDomain(sessionID: roster.sessionID, round: roster.round, purpose: .pairwise)
        for party in request.dropped {
            guard let index = roster.index(of: party) else {
                throw FedRecError(.mismatch, "the unmasking request names party \(party), which is not in the roster")
            }
            let shares = keyShares[party] ?? []
            guard shares.count >= threshold else {
                throw FedRecError(
                    .tooFewParties,
                    "only \(shares.count) shares of dropped party \(party)'s mask key were revealed; \(threshold) are needed, so nothing is released")
            }
            let raw = try ShamirSharing.reconstruct(shares, threshold: threshold, secretLength: 32)
            let key = try PartyKeyPair(rawPrivateKey: raw)
            guard key.publicKeyBytes == roster.parties[index].maskKey else {
                throw FedRecError(.corrupt, "the revealed shares of party \(party)'s mask key do not reconstruct the key it advertised")
            }
            for neighbour in roster.graph.neighbours(of: index) {
                let peer = roster.parties[neighbour]
                guard survivors.contains(peer.party) else { continue }
                let secret = try KeyAgreement.agreedSecret(
                    privateKey: key.privateKey, publicKey: peer.maskKey, sessionID: roster.sessionID,
                    purpose: .pairwiseMask, parties: (Int(party), Int(peer.party)))
                // The survivor added +PRG if its index is the smaller: take out what it added.
                masks.append(Mask(seed: secret, domain: pairwise, adding: !(neighbour < index)))
            }
        }
        var result = sum.values
        result.withUnsafeMutableBufferPointer { MaskExpansion.apply(masks, modulusBits: bits, to: $0) }
        return result
    }
}
