import FedRecFormats
import FedRecSecureAggregation
import FedRecSupport

/// The files of a secure-aggregation round: each protocol message (`SecAggMessage`) as a
/// fedrec safetensors file, so every step is a command reading and writing files (docs/FORMATS.md,
/// "Secure aggregation"). Every file carries `secagg_session` (64 hex digits) and
/// `secagg_round`, which readers check against the round's session file; party ids are I64
/// tensors of values in 0...2^32 - 1; keys, envelopes and shares are U8 matrices of one row each.
///
/// A file may hold several parties' messages (a group): one shard's clients in cross-device
/// use, or the one party of a shard in cross-silo use.
public enum SecAggFiles {
    static let sessionKey = "secagg_session"
    static let roundKey = "secagg_round"

    /// The metadata every secure-aggregation file starts from.
    static func metadata(kind: FileKind, sessionID: [UInt8], round: UInt64) -> [String: String] {
        [
            "format": FedRecFormat.name, "format_version": String(FedRecFormat.version), "kind": kind.rawValue,
            sessionKey: hexDigest(sessionID), roundKey: String(round),
            "secagg_version": String(SecureAggregation.protocolVersion),
        ]
    }

    /// Opens `path` as a `kind` file and returns it with its session and round.
    static func open(_ path: String, kind: FileKind) throws -> (file: FedRecFile, sessionID: [UInt8], round: UInt64) {
        let file = try FedRecFile(path: path, kinds: [kind])
        let version = try file.int("secagg_version")
        guard version <= SecureAggregation.protocolVersion else {
            throw FedRecError(.newerVersion, file: path, "secure-aggregation protocol version \(version); this fedrec speaks up to \(SecureAggregation.protocolVersion)")
        }
        guard version == SecureAggregation.protocolVersion else {
            throw FedRecError(
                .mismatch, file: path,
                "secure-aggregation protocol version \(version), whose masks do not cancel with version \(SecureAggregation.protocolVersion)'s: every party and the server must run the same version")
        }
        let hex = try file.string(sessionKey)
        guard let session = bytes(hex: hex), session.count == KeyAgreement.sessionIDByteCount else {
            throw FedRecError(.corrupt, file: path, "metadata \(sessionKey) is not 64 hex digits")
        }
        guard let round = UInt64(try file.string(roundKey)) else {
            throw FedRecError(.corrupt, file: path, "metadata \(roundKey) is not a round number")
        }
        return (file, session, round)
    }

    /// Throws `.mismatch` naming `path` unless `message` is of `session`'s round.
    static func check(_ sessionID: [UInt8], _ round: UInt64, against session: SecAggSession, path: String) throws {
        guard sessionID == session.sessionID else {
            throw FedRecError(.mismatch, file: path, "belongs to another secure-aggregation session than \(session.path)")
        }
        guard round == session.round else {
            throw FedRecError(.mismatch, file: path, "is of round \(round), the session \(session.path) is of round \(session.round)")
        }
    }

    /// The bytes `hex` spells (lowercase or uppercase digits, even length), or nil.
    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(digits.count / 2)
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[i]), let low = value(digits[i + 1]) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }

    // MARK: tensors

    static func addParties(_ parties: [UInt32], named name: String, to writer: inout SafeTensorsWriter) {
        writer.add(name, shape: [parties.count], .i64(parties.map { Int64($0) }))
    }

    static func addRows(_ rows: [[UInt8]], width: Int, named name: String, to writer: inout SafeTensorsWriter) {
        var flat = [UInt8]()
        flat.reserveCapacity(rows.count * width)
        for row in rows {
            precondition(row.count == width, "\(name): a row of \(row.count) bytes where \(width) are due")
            flat += row
        }
        writer.add(name, shape: [rows.count, width], .u8(flat))
    }

    /// An I64 vector of party ids, each in 0...2^32 - 1.
    static func parties(_ file: FedRecFile, _ name: String) throws -> [UInt32] {
        let info = try file.tensors.info(name)
        guard info.dtype == .i64, info.shape.count == 1 else {
            throw FedRecError(.shape, file: file.path, "tensor \(name) is \(info.dtype.rawValue) \(info.shape), expected an I64 vector of party ids")
        }
        let raw = file.tensors.bytes(of: info)
        return try (0..<info.elementCount).map {
            let value = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))
            guard let party = UInt32(exactly: value) else {
                throw FedRecError(.corrupt, file: file.path, "tensor \(name) holds party id \(value), outside 0...\(UInt32.max)")
            }
            return party
        }
    }

    /// A U8 matrix of `count` rows of `width` bytes.
    static func rows(_ file: FedRecFile, _ name: String, count: Int, width: Int) throws -> [[UInt8]] {
        let info = try file.tensors.require(name, .u8, [count, width])
        let raw = file.tensors.bytes(of: info)
        return (0..<count).map { Array(raw[($0 * width)..<(($0 + 1) * width)]) }
    }

    /// A U8 vector (any length).
    static func byteVector(_ file: FedRecFile, _ name: String) throws -> [UInt8] {
        let info = try file.tensors.info(name)
        guard info.dtype == .u8, info.shape.count == 1 else {
            throw FedRecError(.shape, file: file.path, "tensor \(name) is \(info.dtype.rawValue) \(info.shape), expected a U8 vector")
        }
        return Array(file.tensors.bytes(of: info))
    }
}

/// The round's session: 32 random bytes the server draws (system CSPRNG) and the round
/// number, which every message of the round names. Written first, read by every step.
public struct SecAggSession: Sendable, Equatable {
    public let sessionID: [UInt8]
    public let round: UInt64
    /// The file it was read from (for messages).
    public let path: String

    /// A fresh session of `round`.
    public init(round: UInt64) {
        var generator = SystemRandomNumberGenerator()
        self.init(round: round, using: &generator)
    }

    /// A session whose id comes from `generator` (a named test seed in tests).
    public init<G: RandomNumberGenerator>(round: UInt64, using generator: inout G) {
        self.sessionID = randomBytes(KeyAgreement.sessionIDByteCount, using: &generator)
        self.round = round
        self.path = "-"
    }

    /// Reads a session file.
    public init(path: String) throws {
        let (_, session, round) = try SecAggFiles.open(path, kind: .secaggSession)
        self.sessionID = session
        self.round = round
        self.path = path
    }

    public func write(to path: String) throws {
        var writer = SafeTensorsWriter(metadata: SecAggFiles.metadata(kind: .secaggSession, sessionID: sessionID, round: round))
        writer.add("session_id", shape: [sessionID.count], .u8(sessionID))
        try writer.write(to: path, durable: false)
    }
}

/// A group's key advertisements (step 1).
public enum KeyAdvertisementFile {
    public static func write(_ advertisements: [KeyAdvertisement], session: SecAggSession, to path: String, kind: FileKind = .secaggKeys) throws {
        try writer(advertisements, session: session, kind: kind).write(to: path, durable: false)
    }

    static func writer(_ advertisements: [KeyAdvertisement], session: SecAggSession, kind: FileKind) -> SafeTensorsWriter {
        var writer = SafeTensorsWriter(metadata: SecAggFiles.metadata(kind: kind, sessionID: session.sessionID, round: session.round))
        SecAggFiles.addParties(advertisements.map(\.party), named: "parties", to: &writer)
        SecAggFiles.addRows(advertisements.map(\.encryptionKey), width: 32, named: "encryption_keys", to: &writer)
        SecAggFiles.addRows(advertisements.map(\.maskKey), width: 32, named: "mask_keys", to: &writer)
        return writer
    }

    public static func read(_ path: String, session: SecAggSession) throws -> [KeyAdvertisement] {
        let (file, id, round) = try SecAggFiles.open(path, kind: .secaggKeys)
        try SecAggFiles.check(id, round, against: session, path: path)
        return try advertisements(file, sessionID: id, round: round)
    }

    static func advertisements(_ file: FedRecFile, sessionID: [UInt8], round: UInt64) throws -> [KeyAdvertisement] {
        let parties = try SecAggFiles.parties(file, "parties")
        let encryption = try SecAggFiles.rows(file, "encryption_keys", count: parties.count, width: 32)
        let mask = try SecAggFiles.rows(file, "mask_keys", count: parties.count, width: 32)
        return parties.indices.map {
            KeyAdvertisement(sessionID: sessionID, round: round, party: parties[$0], encryptionKey: encryption[$0], maskKey: mask[$0])
        }
    }
}

/// The roster (step 2): the parties' keys in party order, and the parameters chosen.
public enum SecAggRosterFile {
    public static func write(_ roster: SecAggRoster, session: SecAggSession, to path: String) throws {
        var writer = KeyAdvertisementFile.writer(roster.parties, session: session, kind: .secaggRoster)
        let p = roster.parameters
        writer.metadata["secagg_parties"] = String(p.partyCount)
        writer.metadata["secagg_degree"] = String(p.degree)
        writer.metadata["secagg_threshold"] = String(p.threshold)
        writer.metadata["secagg_dropout_rate"] = "\(p.dropoutRate)"
        writer.metadata["secagg_corrupt_fraction"] = "\(p.corruptFraction)"
        writer.metadata["secagg_modulus_bits"] = String(roster.modulusBits)
        writer.metadata["secagg_guarantee"] = p.guarantee
        writer.metadata[maskPRGKey] = MaskExpansion.prgName
        try writer.write(to: path, durable: false)
    }

    /// The metadata naming the PRG the round's masks are expanded with (`MaskExpansion.prgName`).
    static let maskPRGKey = "secagg_mask_prg"

    /// Reads a roster and rebuilds its graph; parties recheck the parameters themselves.
    /// Refuses (`.mismatch`) a roster whose masks are not expanded with this fedrec's PRG.
    public static func read(_ path: String, session: SecAggSession) throws -> SecAggRoster {
        let (file, id, round) = try SecAggFiles.open(path, kind: .secaggRoster)
        try SecAggFiles.check(id, round, against: session, path: path)
        let prg = try file.string(maskPRGKey)
        guard prg == MaskExpansion.prgName else {
            throw FedRecError(.mismatch, file: path, "expands masks with \(prg.prefix(40)); this fedrec expands them with \(MaskExpansion.prgName)")
        }
        let parties = try KeyAdvertisementFile.advertisements(file, sessionID: id, round: round)
        let parameters = SecAggParameters(
            partyCount: try file.int("secagg_parties", in: 0...SecAggParameters.maximumPartyCount),
            degree: try file.int("secagg_degree", in: 1...SecAggParameters.maximumPartyCount),
            threshold: try file.int("secagg_threshold", in: 1...SecAggParameters.maximumPartyCount),
            dropoutRate: try file.double("secagg_dropout_rate", in: 0...1),
            corruptFraction: try file.double("secagg_corrupt_fraction", in: 0...1))
        do {
            return try SecAggRoster(
                sessionID: id, round: round, parameters: parameters,
                modulusBits: try file.int("secagg_modulus_bits", in: 2...32), parties: parties)
        } catch let error as FedRecError {
            throw error.inFile(path)
        }
    }
}

/// Encrypted shares (steps 3 and 4): a group's bundles, or the server's relay of every
/// sharer's envelopes with the list of sharers.
public enum ShareEnvelopeFile {
    /// Bytes of one envelope: nonce, the two 52-byte shares, tag.
    public static let envelopeByteCount = ShareEnvelope.overheadByteCount + 2 * SecAggParty.shareByteCount

    static func writer(_ envelopes: [ShareEnvelope], session: SecAggSession, kind: FileKind) -> SafeTensorsWriter {
        var writer = SafeTensorsWriter(metadata: SecAggFiles.metadata(kind: kind, sessionID: session.sessionID, round: session.round))
        SecAggFiles.addParties(envelopes.map(\.sender), named: "senders", to: &writer)
        SecAggFiles.addParties(envelopes.map(\.receiver), named: "receivers", to: &writer)
        SecAggFiles.addRows(envelopes.map(\.ciphertext), width: envelopeByteCount, named: "envelopes", to: &writer)
        return writer
    }

    static func envelopes(_ file: FedRecFile, round: UInt64) throws -> [ShareEnvelope] {
        let senders = try SecAggFiles.parties(file, "senders")
        let receivers = try SecAggFiles.parties(file, "receivers")
        guard receivers.count == senders.count else {
            throw FedRecError(.shape, file: file.path, "\(senders.count) senders and \(receivers.count) receivers")
        }
        let rows = try SecAggFiles.rows(file, "envelopes", count: senders.count, width: envelopeByteCount)
        return senders.indices.map { ShareEnvelope(sender: senders[$0], receiver: receivers[$0], round: round, ciphertext: rows[$0]) }
    }

    /// Writes a group's bundles (each party's envelopes, in order).
    public static func writeBundles(_ bundles: [ShareBundle], session: SecAggSession, to path: String) throws {
        try writer(bundles.flatMap(\.envelopes), session: session, kind: .secaggShares).write(to: path, durable: false)
    }

    /// Reads a group's bundles, one per sender.
    public static func readBundles(_ path: String, session: SecAggSession) throws -> [ShareBundle] {
        let (file, id, round) = try SecAggFiles.open(path, kind: .secaggShares)
        try SecAggFiles.check(id, round, against: session, path: path)
        let all = try envelopes(file, round: round)
        var order = [UInt32]()
        var bySender = [UInt32: [ShareEnvelope]]()
        for envelope in all {
            if bySender[envelope.sender] == nil { order.append(envelope.sender) }
            bySender[envelope.sender, default: []].append(envelope)
        }
        return order.map { ShareBundle(sessionID: id, round: round, sender: $0, envelopes: bySender[$0] ?? []) }
    }

    /// Writes the server's relay: the deliveries and who shared.
    public static func writeDeliveries(
        _ deliveries: [ShareDelivery], sharers: [UInt32], session: SecAggSession, to path: String
    ) throws {
        var writer = writer(deliveries.flatMap(\.envelopes), session: session, kind: .secaggDeliveries)
        SecAggFiles.addParties(sharers, named: "sharers", to: &writer)
        try writer.write(to: path, durable: false)
    }

    /// Reads the server's relay: who shared, and the delivery of each of them.
    public static func readDeliveries(_ path: String, session: SecAggSession) throws -> (sharers: [UInt32], deliveries: [UInt32: ShareDelivery]) {
        let (file, id, round) = try SecAggFiles.open(path, kind: .secaggDeliveries)
        try SecAggFiles.check(id, round, against: session, path: path)
        let sharers = try SecAggFiles.parties(file, "sharers")
        var byReceiver = [UInt32: [ShareEnvelope]]()
        for envelope in try envelopes(file, round: round) { byReceiver[envelope.receiver, default: []].append(envelope) }
        var deliveries = [UInt32: ShareDelivery]()
        for sharer in sharers {
            deliveries[sharer] = ShareDelivery(sessionID: id, round: round, receiver: sharer, envelopes: byReceiver[sharer] ?? [])
        }
        return (sharers, deliveries)
    }
}

/// The unmasking request (step 6).
public enum UnmaskRequestFile {
    public static func write(_ request: UnmaskRequest, session: SecAggSession, to path: String) throws {
        var writer = SafeTensorsWriter(metadata: SecAggFiles.metadata(kind: .secaggRequest, sessionID: session.sessionID, round: session.round))
        SecAggFiles.addParties(request.survivors, named: "survivors", to: &writer)
        SecAggFiles.addParties(request.dropped, named: "dropped", to: &writer)
        try writer.write(to: path, durable: false)
    }

    public static func read(_ path: String, session: SecAggSession) throws -> UnmaskRequest {
        let (file, id, round) = try SecAggFiles.open(path, kind: .secaggRequest)
        try SecAggFiles.check(id, round, against: session, path: path)
        return UnmaskRequest(
            sessionID: id, round: round, survivors: try SecAggFiles.parties(file, "survivors"),
            dropped: try SecAggFiles.parties(file, "dropped"))
    }
}

/// A group's revealed shares (step 7): one row per share, with who revealed it, whose secret
/// it is a share of, and which secret (1: self-mask seed, 2: mask key).
public enum UnmaskResponseFile {
    public static func write(_ responses: [UnmaskResponse], session: SecAggSession, to path: String) throws {
        var senders = [UInt32](), owners = [UInt32](), kinds = [UInt8](), shares = [[UInt8]]()
        for response in responses {
            for (kind, list) in [(UInt8(1), response.selfMaskShares), (2, response.maskKeyShares)] {
                for revealed in list {
                    senders.append(response.sender)
                    owners.append(revealed.owner)
                    kinds.append(kind)
                    shares.append(revealed.share.bytes)
                }
            }
        }
        var writer = SafeTensorsWriter(metadata: SecAggFiles.metadata(kind: .secaggReveal, sessionID: session.sessionID, round: session.round))
        SecAggFiles.addParties(senders, named: "senders", to: &writer)
        SecAggFiles.addParties(owners, named: "owners", to: &writer)
        writer.add("share_kinds", shape: [kinds.count], .u8(kinds))
        SecAggFiles.addRows(shares, width: SecAggParty.shareByteCount, named: "shares", to: &writer)
        // A group whose parties revealed nothing still says who answered.
        SecAggFiles.addParties(responses.map(\.sender), named: "responders", to: &writer)
        try writer.write(to: path, durable: false)
    }

    public static func read(_ path: String, session: SecAggSession) throws -> [UnmaskResponse] {
        let (file, id, round) = try SecAggFiles.open(path, kind: .secaggReveal)
        try SecAggFiles.check(id, round, against: session, path: path)
        let senders = try SecAggFiles.parties(file, "senders")
        let owners = try SecAggFiles.parties(file, "owners")
        let kinds = try SecAggFiles.byteVector(file, "share_kinds")
        let responders = try SecAggFiles.parties(file, "responders")
        guard owners.count == senders.count, kinds.count == senders.count else {
            throw FedRecError(.shape, file: path, "\(senders.count) senders, \(owners.count) owners and \(kinds.count) share kinds")
        }
        let rows = try SecAggFiles.rows(file, "shares", count: senders.count, width: SecAggParty.shareByteCount)
        var selfShares = [UInt32: [UnmaskResponse.RevealedShare]]()
        var keyShares = [UInt32: [UnmaskResponse.RevealedShare]]()
        for i in senders.indices {
            let share: ShamirShare
            do { share = try ShamirShare(bytes: rows[i]) } catch let error as FedRecError {
                throw error.inFile(path)
            }
            let revealed = UnmaskResponse.RevealedShare(owner: owners[i], share: share)
            switch kinds[i] {
            case 1: selfShares[senders[i], default: []].append(revealed)
            case 2: keyShares[senders[i], default: []].append(revealed)
            default: throw FedRecError(.corrupt, file: path, "share kind \(kinds[i]) (1: self mask, 2: mask key)")
            }
        }
        let known = Set(responders)
        if let stray = senders.first(where: { !known.contains($0) }) {
            throw FedRecError(.corrupt, file: path, "a share from party \(stray), which is not among the responders")
        }
        return responders.map {
            UnmaskResponse(
                sessionID: id, round: round, sender: $0, selfMaskShares: selfShares[$0] ?? [], maskKeyShares: keyShares[$0] ?? [])
        }
    }
}

/// A group's private state (`kind = secagg_state`, mode 600): each party's private keys,
/// self-mask seed, the shares its neighbours entrusted to it and its step. It stays with the
/// party (the shard's machine); the server never reads it. Written durably (fsync) before
/// the output of the step that changed it, so a crash can lose an answer (the party then
/// counts as dropped) but never make the party answer a step twice.
public enum SecAggStateFile {
    static let secretWidth = 32

    public static func write(_ parties: [SecAggParty], session: SecAggSession, to path: String) throws {
        let records = parties.map(\.record)
        var writer = SafeTensorsWriter(metadata: SecAggFiles.metadata(kind: .secaggState, sessionID: session.sessionID, round: session.round))
        SecAggFiles.addParties(records.map(\.party), named: "parties", to: &writer)
        writer.add("steps", shape: [records.count], .u8(records.map(\.step.rawValue)))
        SecAggFiles.addRows(records.map(\.encryptionPrivateKey), width: secretWidth, named: "encryption_private_keys", to: &writer)
        SecAggFiles.addRows(records.map(\.maskPrivateKey), width: secretWidth, named: "mask_private_keys", to: &writer)
        let zeros = [UInt8](repeating: 0, count: secretWidth)
        SecAggFiles.addRows(records.map { $0.selfMaskSeed.isEmpty ? zeros : $0.selfMaskSeed }, width: secretWidth, named: "self_mask_seeds", to: &writer)
        SecAggFiles.addRows(records.map { $0.rosterDigest.isEmpty ? zeros : $0.rosterDigest }, width: secretWidth, named: "roster_digests", to: &writer)
        var holders = [UInt32](), owners = [UInt32](), selfShares = [[UInt8]](), keyShares = [[UInt8]]()
        for record in records {
            for held in record.heldShares {
                holders.append(record.party)
                owners.append(held.owner)
                selfShares.append(held.selfMask.bytes)
                keyShares.append(held.maskKey.bytes)
            }
        }
        SecAggFiles.addParties(holders, named: "held_by", to: &writer)
        SecAggFiles.addParties(owners, named: "held_owners", to: &writer)
        SecAggFiles.addRows(selfShares, width: SecAggParty.shareByteCount, named: "held_self_mask_shares", to: &writer)
        SecAggFiles.addRows(keyShares, width: SecAggParty.shareByteCount, named: "held_mask_key_shares", to: &writer)
        var keyHolders = [UInt32](), keyPeers = [UInt32](), keys = [[UInt8]]()
        for record in records {
            for (peer, key) in record.shareKeys.sorted(by: { $0.key < $1.key }) {
                keyHolders.append(record.party)
                keyPeers.append(peer)
                keys.append(key)
            }
        }
        SecAggFiles.addParties(keyHolders, named: "share_keys_of", to: &writer)
        SecAggFiles.addParties(keyPeers, named: "share_keys_with", to: &writer)
        SecAggFiles.addRows(keys, width: secretWidth, named: "share_keys", to: &writer)
        try writer.write(to: path, durable: true, privateFile: true)
    }

    public static func read(_ path: String, session: SecAggSession) throws -> [SecAggParty] {
        let (file, id, round) = try SecAggFiles.open(path, kind: .secaggState)
        try SecAggFiles.check(id, round, against: session, path: path)
        let parties = try SecAggFiles.parties(file, "parties")
        let n = parties.count
        let steps = try SecAggFiles.byteVector(file, "steps")
        guard steps.count == n else { throw FedRecError(.shape, file: path, "\(steps.count) steps for \(n) parties") }
        let encryption = try SecAggFiles.rows(file, "encryption_private_keys", count: n, width: secretWidth)
        let mask = try SecAggFiles.rows(file, "mask_private_keys", count: n, width: secretWidth)
        let seeds = try SecAggFiles.rows(file, "self_mask_seeds", count: n, width: secretWidth)
        let digests = try SecAggFiles.rows(file, "roster_digests", count: n, width: secretWidth)
        let holders = try SecAggFiles.parties(file, "held_by")
        let owners = try SecAggFiles.parties(file, "held_owners")
        guard owners.count == holders.count else { throw FedRecError(.shape, file: path, "\(holders.count) holders and \(owners.count) owners") }
        let selfShares = try SecAggFiles.rows(file, "held_self_mask_shares", count: holders.count, width: SecAggParty.shareByteCount)
        let keyShares = try SecAggFiles.rows(file, "held_mask_key_shares", count: holders.count, width: SecAggParty.shareByteCount)
        var shareKeys = [UInt32: [UInt32: [UInt8]]]()
        if file.tensors.tensors["share_keys_of"] != nil {
            let of = try SecAggFiles.parties(file, "share_keys_of")
            let with = try SecAggFiles.parties(file, "share_keys_with")
            guard with.count == of.count else { throw FedRecError(.shape, file: path, "\(of.count) share-key holders and \(with.count) peers") }
            let keys = try SecAggFiles.rows(file, "share_keys", count: of.count, width: secretWidth)
            for i in of.indices { shareKeys[of[i], default: [:]][with[i]] = keys[i] }
        }
        var held = [UInt32: [SecAggParty.HeldShares]]()
        do {
            for i in holders.indices {
                held[holders[i], default: []].append(
                    SecAggParty.HeldShares(
                        owner: owners[i], selfMask: try ShamirShare(bytes: selfShares[i]), maskKey: try ShamirShare(bytes: keyShares[i])))
            }
            return try parties.indices.map { k in
                guard let step = SecAggParty.Step(rawValue: steps[k]) else {
                    throw FedRecError(.corrupt, "step \(steps[k]) of party \(parties[k])")
                }
                let shared = step != .advertised
                return try SecAggParty(
                    record: .init(
                        sessionID: id, round: round, party: parties[k], encryptionPrivateKey: encryption[k],
                        maskPrivateKey: mask[k], selfMaskSeed: shared ? seeds[k] : [], rosterDigest: shared ? digests[k] : [],
                        heldShares: held[parties[k]] ?? [], step: step, shareKeys: shareKeys[parties[k]] ?? [:]))
            }
        } catch let error as FedRecError {
            throw error.inFile(path)
        }
    }
}
