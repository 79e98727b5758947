import ArgumentParser
import FedRecAggregation
import FedRecCore
import FedRecFormats
import FedRecSecureAggregation
import FedRecSupport
import FedRecTraining
import FedRecWire

/// `fl-secagg`: the steps of a secure-aggregation round, one subcommand per message.
public struct SecAggCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-secagg",
        abstract: "The steps of a secure-aggregation round: the server learns the sum of the updates and nothing else.",
        discussion: """
            SecAgg (Bonawitz et al., CCS 2017) over the sparse neighbour graph of SecAgg+ \
            (Bell et al., CCS 2020). Each step is a file: the server (S) and each party group (P: \
            a shard, or a shard's clients) run their subcommands in turn, and any party may drop \
            out between two steps.

            Examples:
              S  fl-secagg session --round 3 -o session
              P  fl-secagg keys --session session --party 0 --state p0.state -o p0.keys
              S  fl-secagg roster --session session p*.keys -o roster
              P  fl-secagg share --session session --state p0.state --roster roster \\
                     -o p0.shares
              S  fl-secagg relay --session session --roster roster p*.shares \\
                     -o deliveries
              P  fl-secagg mask --session session --state p0.state --roster roster \\
                     --deliveries deliveries --update update-0.safetensors -o p0.masked
              S  fl-aggregate p*.masked -o masked-sum
              S  fl-secagg request --session session --roster roster \\
                     --deliveries deliveries --sum masked-sum -o request
              P  fl-secagg reveal --session session --state p0.state --roster roster \\
                     --request request -o p0.reveal
              S  fl-secagg unmask --session session --roster roster --request request \\
                     --sum masked-sum p*.reveal -o sum.safetensors

            Threat model. The server is honest but curious: it follows the protocol and tries \
            to learn from what it sees. It then learns the sum over the parties in it and \
            nothing about any one update, even together with up to the assumed fraction of \
            corrupt parties (--corrupt-fraction), except with probability 2^-40. What is not \
            hidden: who takes part and who dropped (the roster, the request), the model and \
            round, each party's number of clients, and that the sum covers every item row (a \
            secure update is dense). A server that deviates (lies about who dropped, to two \
            parties differently) is not covered: each party refuses to reveal both shares \
            of one party and answers each step once, but a malicious server needs the \
            consistency round of Bonawitz et al. that this version does not run.

            The private state file (mode 600) holds the group's private keys and seeds: it \
            stays on the party's machine, and no command of the server reads it.
            """,
        version: fedrecVersion,
        subcommands: [
            SecAggSessionStep.self, SecAggKeysStep.self, SecAggRosterStep.self, SecAggShareStep.self, SecAggRelayStep.self,
            SecAggMaskStep.self, SecAggRequestStep.self, SecAggRevealStep.self, SecAggUnmaskStep.self,
        ])

    public init() {}
}

/// Options of every step: the session file.
public struct SessionArgument: ParsableArguments {
    @Option(help: "The round's session file (fl-secagg session).") var session: String
    public init() {}
    func load() throws -> SecAggSession { try SecAggSession(path: session) }
}

/// The randomness of a party group's step.
public struct PartyRandomnessArgument: ParsableArguments {
    @Option(help: "Tests only: derive keys, seeds and rounding from this seed (NOT private).") var testSeed: UInt64?
    public init() {}
    var randomness: SecureParty.Randomness { testSeed.map { .testSeed($0) } ?? .system }
    func warn(_ command: String) {
        if testSeed != nil {
            var stderr = StandardError()
            print("\(command): warning: --test-seed makes the keys and masks predictable: NOT private", to: &stderr)
        }
    }
}

/// `--secagg-clip-tensor NAME=C`: a tensor's own clip bound.
func tensorClips(_ specs: [String]) throws -> [String: Float] {
    var clips = [String: Float]()
    for spec in specs {
        let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let c = Float(parts[1]), c.isFinite, c > 0 else {
            throw FedRecError(.usage, "a tensor clip bound is NAME=C with C > 0 (rows.item_embedding=4, dense.als_global=1e6), not '\(spec)'")
        }
        clips[parts[0]] = c
    }
    return clips
}

/// Simulated dropouts of a group's parties (tests, benchmarks).
public struct DropoutArguments: ParsableArguments {
    @Option(help: "Simulate: each party of the group drops out of this step with this probability.") var simulateDropout: Double = 0
    @Option(help: "The seed of the simulated dropouts.") var dropoutSeed: UInt64 = 0
    public init() {}
    func simulated() throws -> SecureParty.SimulatedDropout {
        guard (0..<1).contains(simulateDropout) else { throw FedRecError(.usage, "--simulate-dropout must be in [0, 1)") }
        return SecureParty.SimulatedDropout(rate: simulateDropout, seed: dropoutSeed)
    }
}

public struct SecAggSessionStep: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "session", abstract: "S: start a round: a fresh session id (system CSPRNG) and the round number.",
        usage: """
            fl-secagg session --round <round> -o <output> [--test-seed <seed>]
            """)
    @Option(help: "The round number every message of the round names.") var round: UInt64
    @Option(name: [.short, .long], help: "The session file to write.") var output: String
    @Option(help: "Tests only: derive the session id from this seed (NOT private: sessions repeat).") var testSeed: UInt64?
    public init() {}
    public func run() throws {
        try reportingErrors("fl-secagg session") {
            guard let testSeed else {
                try SecAggSession(round: round).write(to: output)
                return
            }
            var stderr = StandardError()
            print("fl-secagg session: warning: --test-seed makes the session id predictable: NOT private", to: &stderr)
            var generator = SeededGenerator(seed: testSeed)
            try SecAggSession(round: round, using: &generator).write(to: output)
        }
    }
}

public struct SecAggKeysStep: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "P: make the group's key pairs; write its private state and its public keys.",
        usage: """
            fl-secagg keys --session <session> (--party <id> ... | --parties A-B |
              --shard <shard>) --state <state> -o <output>
            """)
    @OptionGroup var session: SessionArgument
    @Option(help: "A party id of the group (repeatable).") var party: [UInt32] = []
    @Option(help: "A range of party ids FIRST-LAST (inclusive).") var parties: String?
    @Option(help: "One party per client of this shard (party id = client index): cross-device.") var shard: String?
    @Option(help: "The group's private state file to create (mode 600; keep it on this machine).") var state: String
    @Option(name: [.short, .long], help: "The public keys to send to the server.") var output: String
    @OptionGroup var random: PartyRandomnessArgument
    @OptionGroup var dropout: DropoutArguments
    public init() {}

    func partyIDs() throws -> [UInt32] {
        var ids = party
        if let parties {
            let bounds = parties.split(separator: "-").map { UInt32($0) }
            guard bounds.count == 2, let first = bounds[0], let last = bounds[1], first <= last, last - first < 1 << 24 else {
                throw FedRecError(.usage, "--parties takes FIRST-LAST party ids, not '\(parties)'")
            }
            ids += Array(first...last)
        }
        if let shard { ids += try ShardClients.clients(of: shard) }
        guard !ids.isEmpty else { throw FedRecError(.usage, "give the group's parties: --party N, --parties FIRST-LAST or --shard") }
        return ids
    }

    public func run() throws {
        try reportingErrors("fl-secagg keys") {
            try FileRoles(inputs: [session.session, shard], outputs: [state, output]).check()
            random.warn("fl-secagg keys")
            try SecureParty.advertise(
                parties: try partyIDs(), session: try session.load(), state: state, output: output, randomness: random.randomness,
                dropout: try dropout.simulated())
        }
    }
}

public struct SecAggRosterStep: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "roster",
        abstract: "S: the round's parties and the degree k and threshold t the SecAgg+ rule gives for them.",
        usage: """
            fl-secagg roster --session <session> <keys> ... [--dropout-rate <δ>]
              [--corrupt-fraction <γ>] [--bits <b>] -o <output>
            """,
        discussion: """
            k and t are chosen for statistical security 2^-40 and failure probability 2^-20 \
            from the number of parties, --dropout-rate and --corrupt-fraction, as Google's \
            production SecAgg+ does; every party rechecks them before it shares anything. The \
            guarantee is printed on stderr (and with --json on stdout).
            """)
    @OptionGroup var session: SessionArgument
    @Argument(help: "The groups' key files.") var keys: [String]
    @Option(help: "δ: the fraction of parties expected to drop out.") var dropoutRate: Double = 0.1
    @Option(help: "γ: the fraction of parties assumed corrupt, colluding with the server.") var corruptFraction: Double = 0.05
    @Option(help: "b: masked vectors are summed mod 2^b (2...32); a party's values get (2^(b-1)-1)/n levels.")
    var bits: Int = 24
    @Option(name: [.short, .long], help: "The roster to publish to the parties.") var output: String
    @OptionGroup(title: "Output") var format: OutputFormatOptions
    public init() {}
    public func run() throws {
        try reportingErrors("fl-secagg roster") {
            guard !keys.isEmpty else { throw FedRecError(.emptyInput, file: "-", "no key files given") }
            try FileRoles(inputs: keys + [session.session], outputs: [output]).check()
            let roster = try SecureServer.roster(
                session: try session.load(), keys: keys, dropoutRate: dropoutRate, corruptFraction: corruptFraction,
                modulusBits: bits, output: output)
            let p = roster.parameters
            if format.json {
                try emit(
                    JSONValue.object([
                        "parties": .number(Double(p.partyCount)), "degree": .number(Double(p.degree)),
                        "threshold": .number(Double(p.threshold)), "dropout_rate": .number(p.dropoutRate),
                        "corrupt_fraction": .number(p.corruptFraction), "modulus_bits": .number(Double(roster.modulusBits)),
                        "guarantee": .string(p.guarantee),
                    ]).canonicalText)
            } else if !format.quiet {
                var stderr = StandardError()
                print("fl-secagg roster: \(p.partyCount) parties: \(p.guarantee)", to: &stderr)
            }
        }
    }
}

public struct SecAggShareStep: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "share", abstract: "P: share the group's self-mask seeds and mask keys with their neighbours, encrypted.",
        usage: """
            fl-secagg share --session <session> --state <state> --roster <roster>
              -o <output>
            """)
    @OptionGroup var session: SessionArgument
    @Option(help: "The group's private state (updated in place).") var state: String
    @Option(help: "The roster the server published.") var roster: String
    @Option(name: [.short, .long], help: "The encrypted shares to send to the server.") var output: String
    @OptionGroup var random: PartyRandomnessArgument
    @OptionGroup var dropout: DropoutArguments
    public init() {}
    public func run() throws {
        try reportingErrors("fl-secagg share") {
            try FileRoles(inputs: [session.session, roster], outputs: [output], updatedInPlace: [state]).check()
            random.warn("fl-secagg share")
            try SecureParty.shareKeys(
                session: try session.load(), state: state, roster: roster, output: output, randomness: random.randomness,
                dropout: try dropout.simulated())
        }
    }
}

public struct SecAggRelayStep: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "relay", abstract: "S: pass each encrypted share to its receiver; record who shared.",
        usage: """
            fl-secagg relay --session <session> --roster <roster> <shares> ...
              -o <output>
            """)
    @OptionGroup var session: SessionArgument
    @Option(help: "The roster.") var roster: String
    @Argument(help: "The groups' share files.") var shares: [String]
    @Option(name: [.short, .long], help: "The deliveries to publish to the parties.") var output: String
    public init() {}
    public func run() throws {
        try reportingErrors("fl-secagg relay") {
            guard !shares.isEmpty else { throw FedRecError(.emptyInput, file: "-", "no share files given") }
            try FileRoles(inputs: shares + [session.session, roster], outputs: [output]).check()
            try SecureServer.relay(session: try session.load(), roster: roster, shares: shares, output: output)
        }
    }
}

public struct SecAggMaskStep: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mask",
        abstract: "P: quantise a shard's update (one party) and mask it mod 2^b.",
        usage: """
            fl-secagg mask --session <session> --state <state> --roster <roster>
              --deliveries <deliveries> --update <update> [--clip <c>] -o <output>
            """,
        discussion: """
            Every item row is included (zero where untouched); model values are clipped to \
            [-c, c] (--clip) and rounded stochastically to the levels the roster's modulus \
            leaves each party; counts and example weights are exact. Clipped values are \
            counted in the output's secagg_clipped.
            """)
    @OptionGroup var session: SessionArgument
    @Option(help: "The group's private state (updated in place).") var state: String
    @Option(help: "The roster.") var roster: String
    @Option(help: "The server's deliveries of the shares.") var deliveries: String
    @Option(help: "The shard's update (fl-train-local).") var update: String
    @Option(help: "c: model values are clipped to [-c, c] before quantisation.") var clip: Float = 1
    @Option(help: "NAME=C: tensor NAME (rows.X or dense.X) clipped to [-C, C] instead (repeatable).") var clipTensor: [String] = []
    @Option(name: [.short, .long], help: "The masked update to send to the server.") var output: String
    @OptionGroup var random: PartyRandomnessArgument
    @OptionGroup var dropout: DropoutArguments
    public init() {}
    public func run() throws {
        try reportingErrors("fl-secagg mask") {
            try FileRoles(inputs: [session.session, roster, deliveries, update], outputs: [output], updatedInPlace: [state]).check()
            random.warn("fl-secagg mask")
            var stderr = StandardError()
            guard
                let masked = try SecureParty.mask(
                    update: try ModelUpdate.load(update), session: try session.load(), state: state, roster: roster,
                    deliveries: deliveries, clip: clip, tensorClips: try tensorClips(clipTensor), output: output,
                    randomness: random.randomness, dropout: try dropout.simulated())
            else {
                print("fl-secagg mask: \(state): the party drops out (simulated): nothing written", to: &stderr)
                return
            }
            if masked.clipped > 0 {
                print("fl-secagg mask: warning: \(masked.clipped) values of \(update) were clipped to ±\(clip)", to: &stderr)
            }
        }
    }
}

public struct SecAggRequestStep: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "request", abstract: "S: ask the parties in the masked sum for the shares that unmask it.",
        usage: """
            fl-secagg request --session <session> --roster <roster>
              --deliveries <deliveries> --sum <masked-sum> -o <output>
            """)
    @OptionGroup var session: SessionArgument
    @Option(help: "The roster.") var roster: String
    @Option(help: "The deliveries (who shared).") var deliveries: String
    @Option(help: "The masked sum (fl-aggregate of the masked updates).") var sum: String
    @Option(name: [.short, .long], help: "The request to publish.") var output: String
    public init() {}
    public func run() throws {
        try reportingErrors("fl-secagg request") {
            try FileRoles(inputs: [session.session, roster, deliveries, sum], outputs: [output]).check()
            _ = try SecureServer.request(session: try session.load(), roster: roster, deliveries: deliveries, sum: sum, output: output)
        }
    }
}

public struct SecAggRevealStep: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "reveal",
        abstract: "P: reveal, for each neighbour, the one share the request asks for; never both, never twice.",
        usage: """
            fl-secagg reveal --session <session> --state <state> --roster <roster>
              --request <request> -o <output>
            """)
    @OptionGroup var session: SessionArgument
    @Option(help: "The group's private state (updated in place).") var state: String
    @Option(help: "The roster.") var roster: String
    @Option(help: "The server's request.") var request: String
    @Option(name: [.short, .long], help: "The revealed shares to send to the server.") var output: String
    @OptionGroup var dropout: DropoutArguments
    public init() {}
    public func run() throws {
        try reportingErrors("fl-secagg reveal") {
            try FileRoles(inputs: [session.session, roster, request], outputs: [output], updatedInPlace: [state]).check()
            try SecureParty.reveal(
                session: try session.load(), state: state, roster: roster, request: request, output: output,
                dropout: try dropout.simulated())
        }
    }
}

public struct SecAggUnmaskStep: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "unmask",
        abstract: "S: remove the masks; write the ordinary sum that fl-dp-noise and fl-aggregate --model take.",
        usage: """
            fl-secagg unmask --session <session> --roster <roster>
              --request <request> --sum <masked-sum> <reveals> ... -o <output>
              [--ledger <ledger> [--budget-epsilon E] [--delta D]]
            """,
        discussion: """
            A sum masked with distributed DP (fl-train-local --ddp-epsilon) holds the \
            parties' noise already: unmask it with --ledger, which charges the release \
            (mechanism distributed_discrete_gaussian) before the sum is written, and \
            refuses a sum of fewer parties than the noise was promised for.
            """)
    @OptionGroup var session: SessionArgument
    @Option(help: "The roster.") var roster: String
    @Option(help: "The request the reveals answer.") var request: String
    @Option(help: "The masked sum.") var sum: String
    @Argument(help: "The groups' reveal files.") var reveals: [String]
    @Option(name: [.short, .long], help: "The sum to write (kind sum).") var output: String
    @Option(help: "Distributed DP: the privacy ledger to charge (created if missing).") var ledger: String?
    @Option(help: "Distributed DP: refuse a release that would bring epsilon past this (with --delta).") var budgetEpsilon: Double?
    @Option(help: "Distributed DP: report epsilon at this delta.") var delta: Double?
    @OptionGroup(title: "Output") var format: OutputFormatOptions
    public init() {}
    public func run() throws {
        try reportingErrors("fl-secagg unmask") {
            guard !reveals.isEmpty else { throw FedRecError(.emptyInput, file: "-", "no reveal files given") }
            guard let ledger else {
                guard budgetEpsilon == nil, delta == nil else { throw FedRecError(.usage, "--budget-epsilon and --delta need --ledger") }
                try FileRoles(inputs: reveals + [session.session, roster, request, sum], outputs: [output]).check()
                let update = try SecureServer.unmask(
                    session: try session.load(), roster: roster, request: request, sum: sum, reveals: reveals, output: output)
                if format.json && output != "-" { try emit(update.summary(path: output).canonicalText) }
                return
            }
            try FileRoles(inputs: reveals + [session.session, roster, request, sum], outputs: [output], updatedInPlace: [ledger]).check()
            var budget: PrivacyBudget?
            if let budgetEpsilon {
                guard let delta else { throw FedRecError(.usage, "--budget-epsilon needs --delta") }
                budget = try PrivacyBudget(epsilon: budgetEpsilon, delta: delta)
            }
            let report = try DistributedRelease.unmask(
                session: try session.load(), roster: roster, request: request, sum: sum, reveals: reveals, output: output,
                ledger: ledger, budget: budget, delta: delta)
            if !format.quiet {
                var stderr = StandardError()
                print("fl-secagg unmask: \(report.summaryLine)", to: &stderr)
            }
            if format.json { try emit(report.json(output: output).canonicalText) }
        }
    }
}
