import FedRecSupport
import Testing

@testable import FedRecSecureAggregation

/// A whole round in memory, with parties dropping out between any two steps.
struct SimulatedRound {
    /// Where a party stops answering.
    enum Drop: Equatable {
        /// Advertised keys, then nothing: not a sharer.
        case beforeSharing
        /// Shared keys, then nothing: in the unmasking request's dropped list.
        case beforeMasking
        /// Sent its masked input, then did not answer the unmasking request.
        case beforeUnmasking
    }

    static let session = (0..<32).map { UInt8($0 &* 7 &+ 1) }
    let round: UInt64 = 3
    let parties: [UInt32]
    let length: Int
    let bits: Int
    let drops: [UInt32: Drop]
    var generator: SeededGenerator

    /// Every message the server saw, for the scan for secrets.
    var serverSaw: [[UInt8]] = []
    var states: [UInt32: SecAggParty] = [:]
    var inputs: [UInt32: [UInt32]] = [:]
    var roster: SecAggRoster?
    var request: UnmaskRequest?

    init(parties: [UInt32], length: Int, bits: Int, drops: [UInt32: Drop] = [:], seed: UInt64) {
        self.parties = parties
        self.length = length
        self.bits = bits
        self.drops = drops
        self.generator = SeededGenerator(seed: seed)
    }

    /// Runs the round to the end; returns the unmasked sum and the plain sum of the inputs of
    /// the parties in it.
    mutating func run(dropoutRate: Double = 0.1, corruptFraction: Double = 0.05) throws -> (unmasked: [UInt32], plain: [UInt32]) {
        var advertisements = [KeyAdvertisement]()
        for party in parties {
            let (state, advertisement) = try SecAggParty.advertise(
                sessionID: Self.session, round: round, party: party, using: &generator)
            states[party] = state
            advertisements.append(advertisement)
            serverSaw += [advertisement.encryptionKey, advertisement.maskKey]
        }
        let roster = try SecAggServer.roster(
            sessionID: Self.session, round: round, advertisements: advertisements.reversed(), dropoutRate: dropoutRate,
            corruptFraction: corruptFraction, modulusBits: bits)
        self.roster = roster
        var bundles = [ShareBundle]()
        for party in parties where drops[party] != .beforeSharing {
            let bundle = try states[party]!.shareKeys(roster: roster, using: &generator)
            bundles.append(bundle)
            serverSaw += bundle.envelopes.map(\.ciphertext)
        }
        let deliveries = try SecAggServer.deliveries(roster: roster, bundles: bundles)
        let mask: UInt32 = bits == 32 ? .max : (1 << UInt32(bits)) - 1
        var sum: MaskedInput?
        var plain = [UInt32](repeating: 0, count: length)
        for delivery in deliveries where drops[delivery.receiver] != .beforeMasking {
            let input = (0..<length).map { _ in UInt32(truncatingIfNeeded: generator.next()) & mask }
            inputs[delivery.receiver] = input
            let masked = try states[delivery.receiver]!.maskInput(input, roster: roster, delivery: delivery)
            serverSaw.append(masked.values.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } })
            sum = try sum.map { try $0.adding(masked) } ?? masked
            for i in 0..<length { plain[i] = (plain[i] &+ input[i]) & mask }
        }
        guard let sum else { throw FedRecError(.tooFewParties, "no masked inputs") }
        let request = try SecAggServer.unmaskRequest(roster: roster, sharers: bundles.map(\.sender), sum: sum)
        self.request = request
        var responses = [UnmaskResponse]()
        for party in request.survivors where drops[party] != .beforeUnmasking {
            let response = try states[party]!.unmask(request, roster: roster)
            responses.append(response)
            serverSaw += (response.selfMaskShares + response.maskKeyShares).map(\.share.bytes)
        }
        return (try SecAggServer.unmask(roster: roster, request: request, sum: sum, responses: responses), plain)
    }
}

@Suite struct SecAggProtocolTests {
    static func failure(_ body: () throws -> Void) -> FailureClass? {
        do { try body(); return nil } catch let error as FedRecError { return error.failure } catch { return nil }
    }

    /// `count` parties 0..<count that have advertised keys in `round`, and their advertisements.
    static func advertised(
        _ count: Int, round: UInt64, using generator: inout SeededGenerator
    ) throws -> (states: [SecAggParty], advertisements: [KeyAdvertisement]) {
        var states = [SecAggParty]()
        var advertisements = [KeyAdvertisement]()
        for party in 0..<count {
            let (state, ad) = try SecAggParty.advertise(
                sessionID: SimulatedRound.session, round: round, party: UInt32(party), using: &generator)
            states.append(state)
            advertisements.append(ad)
        }
        return (states, advertisements)
    }

    /// No dropouts: the unmasked sum is the plain sum mod 2^b, exactly, for any n and modulus.
    @Test(arguments: [(2, 24), (3, 8), (5, 32), (10, 16), (50, 24), (200, 20)])
    func unmaskedSumEqualsPlainSum(_ n: Int, _ bits: Int) throws {
        var round = SimulatedRound(parties: (0..<n).map { UInt32($0 * 3 + 10) }, length: 37, bits: bits, seed: UInt64(n))
        let (unmasked, plain) = try round.run()
        #expect(unmasked == plain)
        #expect(round.request?.survivors.count == n && round.request?.dropped == [])
    }

    /// For every width of mask coordinate (1, 3, 3 and 4 keystream bytes at b = 8, 17, 24, 32)
    /// and vectors longer than one call into AES-CTR and not a whole number of groups, with
    /// parties dropping before masking (the server takes their pairwise masks out) and before
    /// unmasking: the unmasked sum is the survivors' plain sum mod 2^b, exactly.
    @Test(arguments: [8, 17, 24, 32])
    func unmaskedSumIsExactForEveryMaskWidth(_ bits: Int) throws {
        let parties = (0..<12).map { UInt32($0) }
        var round = SimulatedRound(
            parties: parties, length: 16_384 + 37, bits: bits, drops: [3: .beforeMasking, 8: .beforeUnmasking],
            seed: 40 + UInt64(bits))
        let (unmasked, plain) = try round.run(dropoutRate: 0.2)
        #expect(unmasked == plain)
        #expect(round.request?.dropped == [3])
    }

    /// Dropouts between every pair of steps, at once, for several n: the survivors' sum still
    /// comes out exactly, and only theirs.
    @Test(arguments: [10, 40, 120])
    func dropoutsAtEveryStep(_ n: Int) throws {
        let parties = (0..<n).map { UInt32($0) }
        var drops = [UInt32: SimulatedRound.Drop]()
        // 5 % before sharing, 5 % after sharing, 5 % after masking (at least one of each).
        let each = max(1, n / 20)
        for k in 0..<each {
            drops[UInt32(3 * k)] = .beforeSharing
            drops[UInt32(3 * k + 1)] = .beforeMasking
            drops[UInt32(3 * k + 2)] = .beforeUnmasking
        }
        var round = SimulatedRound(parties: parties, length: 19, bits: 24, drops: drops, seed: 77 + UInt64(n))
        let (unmasked, plain) = try round.run(dropoutRate: 0.3)
        #expect(unmasked == plain)
        let request = try #require(round.request)
        #expect(request.dropped == (0..<each).map { UInt32(3 * $0 + 1) })
        #expect(request.survivors.count == n - 2 * each)
        #expect(Set(request.survivors) == Set(round.inputs.keys))
    }

    /// A population of 1,000 parties on the sparse graph with 10 % dropouts after sharing.
    @Test func thousandPartiesWithDropouts() throws {
        let n = 1000
        var drops = [UInt32: SimulatedRound.Drop]()
        for k in stride(from: 0, to: n, by: 10) { drops[UInt32(k)] = .beforeMasking }
        for k in stride(from: 5, to: n, by: 50) { drops[UInt32(k)] = .beforeUnmasking }
        var round = SimulatedRound(parties: (0..<n).map { UInt32($0) }, length: 4, bits: 30, drops: drops, seed: 1000)
        let (unmasked, plain) = try round.run(dropoutRate: 0.15, corruptFraction: 0.05)
        #expect(unmasked == plain)
        let roster = try #require(round.roster)
        #expect(!roster.parameters.isCompleteGraph && roster.parameters.degree < n / 4)
    }

    /// Fewer than t masked inputs: the server refuses to ask for shares (nothing released).
    @Test func tooFewSurvivorsIsRefused() throws {
        let n = 6
        var drops = [UInt32: SimulatedRound.Drop]()
        for k in 0..<5 { drops[UInt32(k)] = .beforeMasking }
        var round = SimulatedRound(parties: (0..<n).map { UInt32($0) }, length: 3, bits: 16, drops: drops, seed: 6)
        #expect(Self.failure { _ = try round.run(dropoutRate: 0.5, corruptFraction: 0) } == .tooFewParties)
        #expect(round.request == nil)
    }

    /// Too few unmasking answers for a survivor's seed: refused, not a wrong sum.
    @Test func tooFewRevealedSharesIsRefused() throws {
        let n = 8
        var drops = [UInt32: SimulatedRound.Drop]()
        for k in 0..<6 { drops[UInt32(k)] = .beforeUnmasking }
        var round = SimulatedRound(parties: (0..<n).map { UInt32($0) }, length: 3, bits: 16, drops: drops, seed: 8)
        #expect(Self.failure { _ = try round.run(dropoutRate: 0.3, corruptFraction: 0.1) } == .tooFewParties)
    }

    /// A request naming a party both in the sum and dropped is refused by every party asked;
    /// a second request is refused after a first was answered; a replayed roster too.
    @Test func doubleRevealAndReplaysAreRefused() throws {
        var round = SimulatedRound(parties: (0..<6).map { UInt32($0) }, length: 2, bits: 16, seed: 9)
        _ = try round.run(dropoutRate: 0.2, corruptFraction: 0)
        let roster = try #require(round.roster)
        let request = try #require(round.request)
        // Fresh parties up to the masked step, then a crafted request.
                var generator = SeededGenerator(seed: 10)
        var (states, advertisements) = try Self.advertised(6, round: round.round, using: &generator)
        let fresh = try SecAggServer.roster(
            sessionID: SimulatedRound.session, round: round.round, advertisements: advertisements, dropoutRate: 0.2,
            corruptFraction: 0, modulusBits: 16)
        let bundles = try states.indices.map { try states[$0].shareKeys(roster: fresh, using: &generator) }
        #expect(Self.failure { _ = try states[0].shareKeys(roster: fresh, using: &generator) } == .refused)
        let deliveries = try SecAggServer.deliveries(roster: fresh, bundles: bundles)
        for k in states.indices { _ = try states[k].maskInput([1, 2], roster: fresh, delivery: deliveries[k]) }
        #expect(Self.failure { _ = try states[1].maskInput([1, 2], roster: fresh, delivery: deliveries[1]) } == .refused)
        let both = UnmaskRequest(
            sessionID: SimulatedRound.session, round: round.round, survivors: [0, 1, 2, 3, 4, 5], dropped: [3])
        for k in states.indices { #expect(Self.failure { _ = try states[k].unmask(both, roster: fresh) } == .refused) }
        let honest = UnmaskRequest(
            sessionID: SimulatedRound.session, round: round.round, survivors: [0, 1, 2, 3, 4, 5], dropped: [])
        _ = try states[2].unmask(honest, roster: fresh)
        let other = UnmaskRequest(sessionID: SimulatedRound.session, round: round.round, survivors: [0, 1, 2, 4, 5], dropped: [3])
        #expect(Self.failure { _ = try states[2].unmask(other, roster: fresh) } == .refused)
        // Messages of another round or session, and a roster the party did not share under.
        let wrongRound = UnmaskRequest(sessionID: SimulatedRound.session, round: 99, survivors: honest.survivors, dropped: [])
        #expect(Self.failure { _ = try states[3].unmask(wrongRound, roster: fresh) } == .mismatch)
        #expect(Self.failure { _ = try states[3].unmask(request, roster: roster) } == .mismatch)
    }

    /// A roster whose threshold is not what the rule gives for its size is refused by the
    /// parties (a server cannot lower t on its own).
    @Test func partiesCheckTheRostersParameters() throws {
        var generator = SeededGenerator(seed: 11)
        var (states, advertisements) = try Self.advertised(20, round: 1, using: &generator)
        let honest = try SecAggParameters.choose(partyCount: 20, dropoutRate: 0.1, corruptFraction: 0.05)
        let weak = SecAggParameters(
            partyCount: 20, degree: honest.degree, threshold: 1, dropoutRate: 0.1, corruptFraction: 0.05)
        let roster = try SecAggRoster(
            sessionID: SimulatedRound.session, round: 1, parameters: weak, modulusBits: 16, parties: advertisements)
        #expect(Self.failure { _ = try states[0].shareKeys(roster: roster, using: &generator) } == .mismatch)
        #expect(states[0].step == .advertised)
    }

    /// The server's messages hold no private key, no self-mask seed of a party in the sum and
    /// no unencrypted share except those the protocol reveals (self-mask shares of survivors,
    /// mask-key shares of dropped parties): scanned byte for byte.
    @Test func serverSeesNoSecrets() throws {
        var drops = [UInt32: SimulatedRound.Drop]()
        drops[2] = .beforeMasking
        var round = SimulatedRound(parties: (0..<12).map { UInt32($0) }, length: 8, bits: 24, drops: drops, seed: 12)
        let (unmasked, plain) = try round.run(dropoutRate: 0.2)
        #expect(unmasked == plain)
        let seen = round.serverSaw
        func contains(_ needle: [UInt8]) -> Bool {
            seen.contains { haystack in
                haystack.count >= needle.count
                    && (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
            }
        }
        var held = 0
        for (party, state) in round.states {
            #expect(!contains(state.encryptionPrivateKey))
            if party != 2 { #expect(!contains(state.maskPrivateKey)) }
            if !state.selfMaskSeed.isEmpty { #expect(!contains(state.selfMaskSeed)) }
            for shares in state.heldShares {
                held += 1
                // Survivors' mask-key shares and the dropped party's seed shares never reach it.
                if shares.owner == 2 {
                    #expect(!contains(shares.selfMask.bytes))
                } else {
                    #expect(!contains(shares.maskKey.bytes))
                }
            }
        }
        #expect(held > 0)
    }

    /// One masked vector is uniform mod 2^b whatever the input (all zeros, all 2^b − 1), for
    /// b = 8, 17, 24 and 32 (one, three, three and four keystream bytes a coordinate): chi-square
    /// tests over 256 cells, 51,200 coordinates, of the low byte and of the top byte
    /// (bits b − 8 ..< b; the whole value at b = 8) (df = 255; the bound 400 is about 6.4
    /// standard deviations above the mean 255), and of lag-1 pairs of top bytes.
    @Test(arguments: [(UInt32(0), 8), (255, 8), (0, 17), ((1 << 17) - 1, 17), (0, 24), ((1 << 24) - 1, 24), (0, 32), (.max, 32)])
    func maskedVectorsAreUniform(_ fill: UInt32, _ bits: Int) throws {
        var generator = SeededGenerator(seed: 13 + UInt64(fill & 0xFFFF) + UInt64(bits) << 20)
        var (states, advertisements) = try Self.advertised(5, round: 2, using: &generator)
        let length = 256 * 200
        let roster = try SecAggServer.roster(
            sessionID: SimulatedRound.session, round: 2, advertisements: advertisements, dropoutRate: 0, corruptFraction: 0,
            modulusBits: bits)
        let bundles = try states.indices.map { try states[$0].shareKeys(roster: roster, using: &generator) }
        let deliveries = try SecAggServer.deliveries(roster: roster, bundles: bundles)
        let masked = try states[0].maskInput([UInt32](repeating: fill, count: length), roster: roster, delivery: deliveries[0])
        #expect(bits == 32 || masked.values.allSatisfy { $0 < 1 << UInt32(bits) })
        func chiSquare(_ cells: [Int]) -> Double {
            var counts = [Int](repeating: 0, count: 256)
            for cell in cells { counts[cell] += 1 }
            let expected = Double(cells.count) / 256
            return counts.reduce(0.0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
        }
        let top = masked.values.map { Int($0 >> UInt32(bits - 8)) }
        #expect(chiSquare(top) < 400)
        #expect(chiSquare(masked.values.map { Int($0 & 0xFF) }) < 400)
        // Neighbouring coordinates are not correlated either (lag-1 pairs over 256 × 256 cells).
        var pairs = [Int](repeating: 0, count: 256 * 256)
        for i in stride(from: 0, to: length - 1, by: 2) { pairs[top[i] * 256 + top[i + 1]] += 1 }
        let pairExpected = Double(length / 2) / 65536
        let pairChi = pairs.reduce(0.0) { $0 + (Double($1) - pairExpected) * (Double($1) - pairExpected) / pairExpected }
        #expect(abs(pairChi - 65535) < 6 * (2 * 65535.0).squareRoot())
    }

    /// Masked sums combine in any grouping (a tree of aggregators gives the same sum), and a
    /// party counted twice is refused.
    @Test func maskedSumsAreAssociativeAndRefuseDuplicates() throws {
        let s = SimulatedRound.session
        let a = try MaskedInput(sessionID: s, round: 1, modulusBits: 8, parties: [1], values: [250, 3])
        let b = try MaskedInput(sessionID: s, round: 1, modulusBits: 8, parties: [4], values: [10, 255])
        let c = try MaskedInput(sessionID: s, round: 1, modulusBits: 8, parties: [2, 7], values: [1, 1])
        let left = try a.adding(b).adding(c)
        let right = try a.adding(c.adding(b))
        #expect(left == right)
        #expect(left.values == [5, 3] && left.parties == [1, 2, 4, 7])
        #expect(Self.failure { _ = try left.adding(a) } == .badData)
        let otherRound = try MaskedInput(sessionID: s, round: 2, modulusBits: 8, parties: [9], values: [0, 0])
        #expect(Self.failure { _ = try a.adding(otherRound) } == .mismatch)
        #expect(Self.failure { _ = try MaskedInput(sessionID: s, round: 1, modulusBits: 8, parties: [1], values: [256]) } == .badData)
    }
}
