import FedRecFormats
import FedRecSecureAggregation
import FedRecSupport
import FedRecWire

/// The server's side of a secure-aggregation round over files (docs/FORMATS.md, "Secure
/// aggregation"). It never reads a party's state file, and holds no private key, seed or
/// share beyond those the protocol reveals to it.
public enum SecureServer {
    /// Step 2: the roster of every party whose keys are in `keys`; returns it (with the
    /// parameters chosen and the guarantee they give).
    @discardableResult
    public static func roster(
        session: SecAggSession, keys: [String], dropoutRate: Double, corruptFraction: Double, modulusBits: Int, output: String
    ) throws -> SecAggRoster {
        var advertisements = [KeyAdvertisement]()
        var seen = [UInt32: String]()
        for path in keys {
            for advertisement in try KeyAdvertisementFile.read(path, session: session) {
                if let other = seen[advertisement.party] {
                    throw FedRecError(.badData, file: path, "advertises party \(advertisement.party), which \(other) advertises too")
                }
                seen[advertisement.party] = path
                advertisements.append(advertisement)
            }
        }
        let roster = try SecAggServer.roster(
            sessionID: session.sessionID, round: session.round, advertisements: advertisements, dropoutRate: dropoutRate,
            corruptFraction: corruptFraction, modulusBits: modulusBits)
        try SecAggRosterFile.write(roster, session: session, to: output)
        return roster
    }

    /// Step 4: relays the envelopes of every group's shares to their receivers, and records
    /// who shared.
    public static func relay(session: SecAggSession, roster rosterPath: String, shares: [String], output: String) throws {
        let roster = try SecAggRosterFile.read(rosterPath, session: session)
        var bundles = [ShareBundle]()
        var seen = [UInt32: String]()
        for path in shares {
            for bundle in try ShareEnvelopeFile.readBundles(path, session: session) {
                if let other = seen[bundle.sender] {
                    throw FedRecError(.badData, file: path, "holds the shares of party \(bundle.sender), which \(other) holds too")
                }
                seen[bundle.sender] = path
                bundles.append(bundle)
            }
        }
        let deliveries: [ShareDelivery]
        do {
            deliveries = try SecAggServer.deliveries(roster: roster, bundles: bundles)
        } catch let error as FedRecError {
            throw error.inFile(shares.count == 1 ? shares[0] : "the shares")
        }
        try ShareEnvelopeFile.writeDeliveries(deliveries, sharers: bundles.map(\.sender).sorted(), session: session, to: output)
    }

    /// Step 6: who is in the masked sum and who shared but is not.
    public static func request(
        session: SecAggSession, roster rosterPath: String, deliveries: String, sum sumPath: String, output: String
    ) throws -> UnmaskRequest {
        let roster = try SecAggRosterFile.read(rosterPath, session: session)
        let (sharers, _) = try ShareEnvelopeFile.readDeliveries(deliveries, session: session)
        let (sum, _) = try MaskedUpdateFile.read(sumPath)
        try checkSum(sum, roster: roster, path: sumPath)
        let request: UnmaskRequest
        do {
            request = try SecAggServer.unmaskRequest(roster: roster, sharers: sharers, sum: sum.masked)
        } catch let error as FedRecError {
            throw error.inFile(sumPath)
        }
        try UnmaskRequestFile.write(request, session: session, to: output)
        return request
    }

    /// Step 8: removes the masks and writes the ordinary sum (`kind = sum`) that fl-dp-noise
    /// and the server step take. Nothing is written when too few shares arrived. A
    /// distributed-DP sum is released through `DistributedRelease` (FedRecPrivacy), which
    /// charges the ledger first; here it is refused.
    public static func unmask(
        session: SecAggSession, roster rosterPath: String, request requestPath: String, sum sumPath: String,
        reveals: [String], output: String
    ) throws -> ModelUpdate {
        let (update, distributed) = try unmaskedSum(
            session: session, roster: rosterPath, request: requestPath, sum: sumPath, reveals: reveals)
        if distributed != nil {
            throw FedRecError(.usage, file: sumPath, "holds distributed-DP noise shares: unmask it with a privacy ledger (fl-secagg unmask --ledger)")
        }
        try update.write(to: output, kind: .sum)
        return update
    }

    /// What a distributed-DP sum was made of: the encoding, whether every party's noise was
    /// private, the modulus bits and the parties (noise shares) summed.
    public struct DistributedSum: Sendable {
        public let encoding: DistributedDPEncoding
        public let isPrivate: Bool
        public let modulusBits: Int
        public let parties: Int
    }

    /// The unmasked, decoded sum of step 8, not written, and what it was made of when it is
    /// a distributed-DP sum. A distributed-DP sum of fewer
    /// parties than the encoding's minimum is refused (`.tooFewParties`): its noise would
    /// be below what the parties were promised.
    public static func unmaskedSum(
        session: SecAggSession, roster rosterPath: String, request requestPath: String, sum sumPath: String, reveals: [String]
    ) throws -> (update: ModelUpdate, distributed: DistributedSum?) {
        let roster = try SecAggRosterFile.read(rosterPath, session: session)
        let request = try UnmaskRequestFile.read(requestPath, session: session)
        let (sum, _) = try MaskedUpdateFile.read(sumPath)
        try checkSum(sum, roster: roster, path: sumPath)
        if let encoding = sum.layout.distributed, sum.masked.parties.count < encoding.minimumParties {
            throw FedRecError(
                .tooFewParties, file: sumPath,
                "holds the noise shares of \(sum.masked.parties.count) parties, fewer than the \(encoding.minimumParties) distributed DP was calibrated for: not unmasked")
        }
        var responses = [UnmaskResponse]()
        for path in reveals { responses += try UnmaskResponseFile.read(path, session: session) }
        let words: [UInt32]
        do {
            words = try SecAggServer.unmask(roster: roster, request: request, sum: sum.masked, responses: responses)
        } catch let error as FedRecError {
            throw error.inFile(sumPath)
        }
        let update: ModelUpdate
        do {
            update = try sum.layout.decode(words, parties: sum.masked.parties.count, quantizer: sum.quantizer, header: sum.header)
        } catch let error as FedRecError {
            throw error.inFile(sumPath)
        }
        return (update, sum.layout.distributed.map {
            DistributedSum(encoding: $0, isPrivate: sum.noiseIsPrivate, modulusBits: sum.quantizer.modulusBits, parties: sum.masked.parties.count)
        })
    }

    static func checkSum(_ sum: MaskedUpdateFile, roster: SecAggRoster, path: String) throws {
        do {
            try sum.masked.checkRound(sessionID: roster.sessionID, round: roster.round, what: "the masked sum")
        } catch let error as FedRecError {
            throw error.inFile(path)
        }
        guard sum.quantizer.modulusBits == roster.modulusBits, sum.quantizer.maximumParties == roster.parties.count else {
            throw FedRecError(.mismatch, file: path, "was quantised for \(sum.quantizer.maximumParties) parties mod 2^\(sum.quantizer.modulusBits), the roster has \(roster.parties.count) mod 2^\(roster.modulusBits)")
        }
    }
}
