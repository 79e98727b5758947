import FedRecFormats
import FedRecMechanisms
import FedRecModel
import FedRecSecureAggregation
import FedRecSupport
import FedRecWire

/// A party group's side of a secure-aggregation round over files: each step reads the
/// group's private state and the server's last message, answers for every party of the
/// group, and writes the new state (durably, mode 600) before the answer, so no crash can
/// make a party answer one step twice (docs/FORMATS.md, "Secure aggregation").
///
/// A group is the parties one process speaks for: a shard in cross-silo use (one party),
/// or each client of a shard in cross-device use.
public enum SecureParty {
    /// Where the group's randomness comes from: the system CSPRNG, or a named test seed
    /// (reproducible, and therefore NOT private: tests only).
    public enum Randomness: Sendable {
        case system
        case testSeed(UInt64)

        /// A generator for `party` at `step`: ChaCha20 keyed by 32 bytes of the system
        /// CSPRNG (fast and cryptographically strong), or the test seed's stream.
        public func generator(party: UInt32, step: UInt64) -> ChaCha20Generator {
            let key: [UInt8]
            switch self {
            case .system:
                var system = SystemRandomNumberGenerator()
                key = randomBytes(ChaCha20Generator.seedByteCount, using: &system)
            case .testSeed(let seed):
                var seeded = SeededGenerator(seed: seed, stream: UInt64(party) << 8 | step)
                key = randomBytes(ChaCha20Generator.seedByteCount, using: &seeded)
            }
            return ChaCha20Generator(seed: key, label: "party-step-\(step)")
        }

        /// Where `party`'s distributed-DP rounding and noise come from: the system CSPRNG,
        /// or the test seed's stream (marked not private).
        public func noiseSource(party: UInt32) -> any NoiseSource {
            switch self {
            case .system: return SystemNoiseSource()
            case .testSeed(let seed):
                var seeded = SeededGenerator(seed: seed, stream: UInt64(party) << 8 | 0x44)
                return SeededNoiseSource(seed: seeded.next())
            }
        }
    }

    /// Simulated dropouts (tests and benchmarks): each party of a group skips a step with
    /// probability `rate`, decided by the seeded stream of (seed, party, step), so a run
    /// is reproducible. A party that skipped a step takes no later part in the round.
    public struct SimulatedDropout: Sendable {
        public var rate: Double
        public var seed: UInt64
        public init(rate: Double, seed: UInt64) {
            self.rate = rate
            self.seed = seed
        }
        public static let none = SimulatedDropout(rate: 0, seed: 0)

        /// Whether `party` drops out of `step` (1 keys, 3 share, 5 mask, 7 reveal).
        public func drops(_ party: UInt32, step: UInt64) -> Bool {
            guard rate > 0 else { return false }
            var generator = SeededGenerator(seed: seed, stream: UInt64(party) << 8 | step)
            return generator.nextUnitDouble() < rate
        }
    }

    /// Whether a party at `current` should answer step `expected` (reached by answering the
    /// step before it): parties behind it dropped earlier and stay out; parties past it are
    /// asked anyway, so that the protocol refuses the replay.
    static func answers(_ current: SecAggParty.Step, expected: SecAggParty.Step) -> Bool {
        current.rawValue >= expected.rawValue
    }

    /// Step 1: fresh keys for `parties`; writes the state, then the advertisements.
    public static func advertise(
        parties: [UInt32], session: SecAggSession, state: String, output: String, randomness: Randomness,
        dropout: SimulatedDropout = .none
    ) throws {
        guard !parties.isEmpty, Set(parties).count == parties.count else {
            throw FedRecError(.usage, "a party group needs at least one party and no party twice")
        }
        var states = [SecAggParty]()
        var advertisements = [KeyAdvertisement]()
        for party in parties where !dropout.drops(party, step: 1) {
            var generator = randomness.generator(party: party, step: 1)
            let (state, advertisement) = try SecAggParty.advertise(
                sessionID: session.sessionID, round: session.round, party: party, using: &generator)
            states.append(state)
            advertisements.append(advertisement)
        }
        try SecAggStateFile.write(states, session: session, to: state)
        try KeyAdvertisementFile.write(advertisements, session: session, to: output)
    }

    /// Step 3: each party of the group in the roster shares its seed and mask key. Parties of
    /// the group left out of the roster (their keys did not reach the server) stay as they are.
    public static func shareKeys(
        session: SecAggSession, state: String, roster rosterPath: String, output: String, randomness: Randomness,
        dropout: SimulatedDropout = .none
    ) throws {
        let roster = try SecAggRosterFile.read(rosterPath, session: session)
        var states = try SecAggStateFile.read(state, session: session)
        var bundles = [ShareBundle]()
        for k in states.indices where roster.index(of: states[k].party) != nil && !dropout.drops(states[k].party, step: 3) {
            var generator = randomness.generator(party: states[k].party, step: 3)
            do {
                bundles.append(try states[k].shareKeys(roster: roster, using: &generator))
            } catch let error as FedRecError {
                throw error.inFile(rosterPath)
            }
        }
        guard !bundles.isEmpty || dropout.rate > 0 else {
            throw FedRecError(.mismatch, file: rosterPath, "lists none of the group's parties (\(states.map(\.party).prefix(5)))")
        }
        try SecAggStateFile.write(states, session: session, to: state)
        try ShareEnvelopeFile.writeBundles(bundles, session: session, to: output)
    }

    /// Step 5 for a group of one party: quantises `update` (clip `clip`, the roster's modulus,
    /// at most the roster's parties) and masks it. Returns nil, writing nothing, when the
    /// party is simulated as dropping out of this step.
    public static func mask(
        update: ModelUpdate, session: SecAggSession, state: String, roster rosterPath: String, deliveries: String,
        clip: Float, tensorClips: [String: Float] = [:], output: String, randomness: Randomness,
        dropout: SimulatedDropout = .none
    ) throws -> MaskedUpdateFile? {
        let roster = try SecAggRosterFile.read(rosterPath, session: session)
        let relay = try ShareEnvelopeFile.readDeliveries(deliveries, session: session)
        var states = try SecAggStateFile.read(state, session: session)
        guard states.count == 1 else {
            throw FedRecError(
                .usage, file: state,
                "holds \(states.count) parties; a group of several parties masks each client's own update (fl-train-local --secagg)")
        }
        if dropout.drops(states[0].party, step: 5) { return nil }
        guard let delivery = relay.deliveries[states[0].party] else {
            throw FedRecError(.tooFewParties, file: deliveries, "has no delivery for party \(states[0].party): the server counts it as dropped")
        }
        let quantizer = try Quantizer(clipBound: clip, modulusBits: roster.modulusBits, maximumParties: roster.parties.count)
        let file = try maskedUpdate(
            update, party: &states[0], roster: roster, delivery: delivery, deliveries: deliveries, quantizer: quantizer,
            clip: clip, tensorClips: tensorClips, randomness: randomness)
        try SecAggStateFile.write(states, session: session, to: state)
        try file.write(to: output, kind: .maskedUpdate)
        return file
    }

    /// `update` quantised (`quantizer`, the layout's clip bounds) and masked by `party` with the
    /// shares `delivery` brought it: what both mask steps send. The masking's errors name
    /// the deliveries file and the party.
    static func maskedUpdate(
        _ update: ModelUpdate, party: inout SecAggParty, roster: SecAggRoster, delivery: ShareDelivery, deliveries: String,
        quantizer: Quantizer, clip: Float, tensorClips: [String: Float], randomness: Randomness
    ) throws -> MaskedUpdateFile {
        let layout = try SecureUpdateLayout(update: update, clip: clip, tensorClips: tensorClips)
        var generator = randomness.generator(party: party.party, step: 5)
        let (words, clipped) = try layout.encode(update, quantizer: quantizer, using: &generator)
        let masked: MaskedInput
        do {
            masked = try party.maskInput(words, roster: roster, delivery: delivery)
        } catch let error as FedRecError {
            throw FedRecError(error.failure, file: deliveries, "party \(party.party): \(error.message)")
        }
        return MaskedUpdateFile(header: update.header, layout: layout, quantizer: quantizer, masked: masked, clipped: clipped)
    }

    /// Step 5 across clients (cross-device): trains every client of `shardPath` apart (as
    /// fl-train-local does, `options`; an mf model by `ShardTrainer`, an ncf model by
    /// `NCFShardTrainer`, which refuses `distributed` and `silo`), and masks each client's own update as its party
    /// (party id = the client's index); the output is the sum of the group's masked updates,
    /// still masked. Clients without a delivery (dropped before) or simulated as dropping
    /// send nothing. Returns nil, writing nothing, when no client of the group is left.
    ///
    /// With `distributed`, each client's vector is encoded for distributed DP
    /// (`DistributedDPShare`) instead of quantised; with `silo` as well, the shard is one
    /// party (the group's only state): its clients' vectors are rounded one by one, summed,
    /// and get the party's one noise share.
    public static func maskClients(
        modelPath: String, shardPath: String, userStateIn: String?, userStateOut: String?, options: TrainingOptions,
        session: SecAggSession, state: String, roster rosterPath: String, deliveries: String, clip: Float,
        tensorClips: [String: Float] = [:], output: String, randomness: Randomness, dropout: SimulatedDropout = .none,
        distributed: DistributedDPSettings? = nil, silo: Bool = false
    ) throws -> MaskedUpdateFile? {
        let family = try ModelFamily.of(model: modelPath)
        if family == .ncf { try NCFShardTrainer.refuseDistributedDP(distributed != nil || silo) }
        let roster = try SecAggRosterFile.read(rosterPath, session: session)
        let relay = try ShareEnvelopeFile.readDeliveries(deliveries, session: session)
        var states = try SecAggStateFile.read(state, session: session)
        // QSGD under masks: each client's values become at most s levels a sign on the
        // shared scale c (not its own norm, which the server would need apart), so the
        // integers sum; top-k's per-client index sets do not.
        var levelCap: Int64?
        if let compression = options.compression {
            guard let levels = compression.secureLevels, distributed == nil else {
                throw FedRecError(
                    .usage,
                    "--compress \(compression) does not compose with \(distributed == nil ? "secure aggregation: masked sums need every client's values on one support and one scale" : "distributed DP, whose rounding is its own")")
            }
            levelCap = levels
        }
        let quantizer = try Quantizer(clipBound: clip, modulusBits: roster.modulusBits, maximumParties: roster.parties.count, maximumLevels: levelCap)
        if silo {
            guard let distributed else {
                throw FedRecError(.usage, "a shard as one party masks its summed update with fl-secagg mask; fl-train-local --secagg-silo is for distributed DP")
            }
            guard states.count == 1 else {
                throw FedRecError(.usage, file: state, "holds \(states.count) parties; a shard as one party needs a state of one (fl-secagg keys --party)")
            }
            return try maskSilo(
                modelPath: modelPath, shardPath: shardPath, userStateIn: userStateIn, userStateOut: userStateOut, options: options,
                session: session, state: state, states: &states, roster: roster, relay: relay, deliveries: deliveries,
                quantizer: quantizer, output: output, randomness: randomness, dropout: dropout, settings: distributed)
        }
        // One share (encoding, rotation, workspace) serves every client of the group: the
        // calibration depends on the roster and the model alone.
        var share: DistributedDPShare?
        let total = try maskEach(
            states: &states, roster: roster, relay: relay, deliveries: deliveries, dropout: dropout, shardPath: shardPath,
            train: { sink in
                _ = try withoutActuallyEscaping(sink) { sink in
                    family == .ncf
                        ? try NCFShardTrainer.run(
                            modelPath: modelPath, shardPath: shardPath, stateIn: userStateIn, stateOut: userStateOut, output: "-",
                            options: options, clientSink: sink)
                        : try ShardTrainer.run(
                            modelPath: modelPath, shardPath: shardPath, stateIn: userStateIn, stateOut: userStateOut, output: "-",
                            options: options, clientSink: sink)
                }
            }
        ) { party, update, delivery, client in
            if let distributed {
                // Taken out of `share` so that the arrays are mutated in place, not copied.
                var clientShare = try share.take() ?? DistributedDPShare(encoding: distributed.encoding(header: update.header, roster: roster))
                clientShare.reset()
                let source = randomness.noiseSource(party: party.party)
                try clientShare.add(update, source: source)
                let file = try distributedMasked(
                    clientShare, header: update.header, party: &party, roster: roster, delivery: delivery, deliveries: deliveries,
                    quantizer: quantizer, source: source)
                share = clientShare
                return file
            }
            var update = update
            if let compression = options.compression { update.header.extra[UpdateCompression.decodedKey] = compression.description }
            return try maskedUpdate(
                update, party: &party, roster: roster, delivery: delivery, deliveries: deliveries,
                quantizer: quantizer, clip: clip, tensorClips: tensorClips, randomness: randomness)
        }
        try SecAggStateFile.write(states, session: session, to: state)
        try total?.write(to: output, kind: .maskedUpdate)
        return total
    }

    /// Step 5 across clients for updates another trainer makes (e.g. text-lora adapters'):
    /// `train` calls its sink once per client with the client's own update (dense tensors
    /// w_k·Δ_k, weight w_k), and each is quantised and masked as its party, as
    /// `maskClients` does; the output is the group's masked sum.
    public static func maskClientUpdates(
        session: SecAggSession, state: String, roster rosterPath: String, deliveries: String, clip: Float,
        tensorClips: [String: Float] = [:], output: String, randomness: Randomness, dropout: SimulatedDropout = .none,
        shardPath: String, train: (_ sink: (Int32, ModelUpdate) throws -> Void) throws -> Void
    ) throws -> MaskedUpdateFile? {
        let roster = try SecAggRosterFile.read(rosterPath, session: session)
        let relay = try ShareEnvelopeFile.readDeliveries(deliveries, session: session)
        var states = try SecAggStateFile.read(state, session: session)
        let quantizer = try Quantizer(clipBound: clip, modulusBits: roster.modulusBits, maximumParties: roster.parties.count)
        let total = try maskEach(
            states: &states, roster: roster, relay: relay, deliveries: deliveries, dropout: dropout, shardPath: shardPath, train: train
        ) { party, update, delivery, _ in
            try maskedUpdate(
                update, party: &party, roster: roster, delivery: delivery, deliveries: deliveries,
                quantizer: quantizer, clip: clip, tensorClips: tensorClips, randomness: randomness)
        }
        try SecAggStateFile.write(states, session: session, to: state)
        try total?.write(to: output, kind: .maskedUpdate)
        return total
    }

    /// The cross-device loop: each client `train` hands over that is a party of the group,
    /// has its delivery and has shared keys (and is not simulated as dropping) is masked by
    /// `encode`, and the masked files are summed. A client whose neighbours shared too
    /// little cannot be unmasked and drops out of the round (the others go on).
    static func maskEach(
        states: inout [SecAggParty], roster: SecAggRoster, relay: (sharers: [UInt32], deliveries: [UInt32: ShareDelivery]),
        deliveries: String, dropout: SimulatedDropout, shardPath: String,
        train: (_ sink: (Int32, ModelUpdate) throws -> Void) throws -> Void,
        encode: (_ party: inout SecAggParty, _ update: ModelUpdate, _ delivery: ShareDelivery, _ client: Int32) throws -> MaskedUpdateFile
    ) throws -> MaskedUpdateFile? {
        var slot = [UInt32: Int]()
        for (k, party) in states.enumerated() { slot[party.party] = k }
        var total: MaskedUpdateFile?
        try withoutActuallyEscaping(encode) { encode in
            try train { client, update in
                let party = UInt32(bitPattern: client)
                guard let k = slot[party], let delivery = relay.deliveries[party],
                    answers(states[k].step, expected: .sharedKeys), !dropout.drops(party, step: 5)
                else { return }
                let file: MaskedUpdateFile
                do {
                    file = try encode(&states[k], update, delivery, client)
                } catch let error as FedRecError where error.failure == .tooFewParties {
                    return
                }
                if total == nil { total = file } else { try total?.addClient(file, file: shardPath) }
            }
        }
        return total
    }

    /// A shard as one distributed-DP party: every client's vector rounded into the one share.
    static func maskSilo(
        modelPath: String, shardPath: String, userStateIn: String?, userStateOut: String?, options: TrainingOptions,
        session: SecAggSession, state: String, states: inout [SecAggParty], roster: SecAggRoster, relay: (sharers: [UInt32], deliveries: [UInt32: ShareDelivery]),
        deliveries: String, quantizer: Quantizer, output: String, randomness: Randomness, dropout: SimulatedDropout,
        settings: DistributedDPSettings
    ) throws -> MaskedUpdateFile? {
        let party = states[0].party
        if dropout.drops(party, step: 5) { return nil }
        guard let delivery = relay.deliveries[party] else {
            throw FedRecError(.tooFewParties, file: deliveries, "has no delivery for party \(party): the server counts it as dropped")
        }
        let source = randomness.noiseSource(party: party)
        var share: DistributedDPShare?
        var header: UpdateHeader?
        _ = try ShardTrainer.run(
            modelPath: modelPath, shardPath: shardPath, stateIn: userStateIn, stateOut: userStateOut, output: "-",
            options: options
        ) { _, update in
            if share == nil {
                share = try DistributedDPShare(encoding: try settings.encoding(header: update.header, roster: roster))
                header = update.header
                header?.clipped = 0
            }
            try share?.add(update, source: source)
            header?.clipped += update.header.clipped
        }
        guard let share, let header else {
            throw FedRecError(.emptyInput, file: shardPath, "has no client to train: a party with nothing to send")
        }
        let file = try distributedMasked(
            share, header: header, party: &states[0], roster: roster, delivery: delivery, deliveries: deliveries,
            quantizer: quantizer, source: source)
        try SecAggStateFile.write(states, session: session, to: state)
        try file.write(to: output, kind: .maskedUpdate)
        return file
    }

    /// A distributed-DP share noised and masked by `party`: what both distributed mask paths send.
    static func distributedMasked(
        _ share: DistributedDPShare, header: UpdateHeader, party: inout SecAggParty, roster: SecAggRoster,
        delivery: ShareDelivery, deliveries: String, quantizer: Quantizer, source: any NoiseSource
    ) throws -> MaskedUpdateFile {
        let words = try share.words(quantizer: quantizer, source: source)
        let masked: MaskedInput
        do {
            masked = try party.maskInput(words, roster: roster, delivery: delivery)
        } catch let error as FedRecError {
            throw FedRecError(error.failure, file: deliveries, "party \(party.party): \(error.message)")
        }
        var header = header
        header.clients = share.clients
        return MaskedUpdateFile(
            header: header, layout: SecureUpdateLayout(items: header.config.items, distributed: share.encoding),
            quantizer: quantizer, masked: masked, clipped: share.clipped, noiseIsPrivate: source.isCryptographicallySecure)
    }

    /// Step 7: each party of the group that sent a masked input reveals what the request asks.
    public static func reveal(
        session: SecAggSession, state: String, roster rosterPath: String, request requestPath: String, output: String,
        dropout: SimulatedDropout = .none
    ) throws {
        let roster = try SecAggRosterFile.read(rosterPath, session: session)
        let request = try UnmaskRequestFile.read(requestPath, session: session)
        var states = try SecAggStateFile.read(state, session: session)
        let survivors = Set(request.survivors)
        var responses = [UnmaskResponse]()
        for k in states.indices
        where survivors.contains(states[k].party) && answers(states[k].step, expected: .maskedInput) && !dropout.drops(states[k].party, step: 7) {
            do {
                responses.append(try states[k].unmask(request, roster: roster))
            } catch let error as FedRecError {
                throw error.inFile(requestPath)
            }
        }
        guard !responses.isEmpty || dropout.rate > 0 else {
            throw FedRecError(.mismatch, file: requestPath, "names none of the group's parties as in the sum")
        }
        try SecAggStateFile.write(states, session: session, to: state)
        try UnmaskResponseFile.write(responses, session: session, to: output)
    }
}
