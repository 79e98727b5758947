import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecModel
import FedRecTraining

/// `fl-train-local`: every client of one shard trains; the shard's update is written.
public struct TrainLocalCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-train-local",
        abstract: "Train every client of a shard locally and write the shard's update.",
        usage: """
            fl-train-local [<options>] --model <model> --shard <shard>
              --output <output>
            """,
        discussion: """
            Each client starts from the global model, trains on its own data only, and \
            contributes its change (SGD) or least-squares statistics (ALS) for the item rows it \
            touched. The update is their sum with client count and weight, in sparse form. \
            User embeddings are private: they stay in the shard's state file (or are rebuilt \
            every round with --reconstruct) and never appear in the update. One process per \
            shard; shards can run in parallel (make -j, xargs -P) with no shared file. CTR \
            models (lr, fm) keep nothing private between rounds (each client hashes its own \
            features every round): --state and --reconstruct are not needed and are ignored. \
            Nor do graph filters (gfcf), whose update is each user's item co-occurrences \
            r_u r_uᵀ / d_u and item counts, summed over the shard.

            Examples:
              fl-train-local --model model-0003.safetensors \\
                  --shard ml100k/shards/shard-00000.tar \\
                  --state state/shard-00000.state.safetensors \\
                  -o update-0003-00000.safetensors
              fl-train-local --model m.safetensors --shard s.tar --reconstruct \\
                  --algorithm als -o u.safetensors
              fl-train-local --model m.safetensors --shard s.tar --reconstruct \\
                  --weighting uniform --clip 0.5 --sample-rate 0.1 \\
                  --sample-key-file run/sample-key -o u.safetensors
              fl-train-local --model m.safetensors --shard s.tar --reconstruct \\
                  --secagg-session session --secagg-state s.state \\
                  --secagg-roster roster --secagg-deliveries deliveries \\
                  -o s.masked

            A text-lora model (fl-init --model text-lora): each client with a query log \
            (fl-partition --queries) fine-tunes the adapter on its training queries, \
            --epochs passes of AdamW (--lr, default 0.001; --l2 its weight decay, default \
            0.01) on batches of --batch-size queries (default 16) with --negatives items \
            drawn from the catalogue (default 16), and the update holds the weighted sum \
            of the clients' deltas (--clip bounds each client's whole delta). A next-item \
            adapter (fl-init --task next-item) trains instead on up to --examples-per-user \
            of each user's transitions a round: the titles of the items before → the item. \
            With --secagg-session each client's delta is masked as its own party.
              fl-train-local --model model-0000.safetensors \\
                  --shard mls-search/shards/shard-00000.tar --epochs 1 \\
                  --batch-size 16 --lr 0.001 -o update-0000.safetensors

            With --compress (SGD; mf and ncf models), each client's update is compressed apart \
            and the output holds every client's segment, marked compression=SCHEME; \
            fl-aggregate decodes it. q8, q4: QSGD (Alistarh et al. 2017), 8 or 4 bits a value, \
            unbiased stochastic levels on each item row's L2 norm (an ncf tower: each weight \
            matrix's rows, each other tensor whole). topk:RATIO: the largest RATIO of each client's \
            values, with error feedback (Stich et al. 2018): what is not sent is added to the \
            next round's update, kept in --state (needed, even with --reconstruct). f32: the \
            values as they are (the baseline). With --secagg-session, q8 and q4 quantise to at \
            most 127 or 7 levels on the shared scale --secagg-clip, whose integers sum under \
            the masks at fewer modulus bits; top-k does not compose (each client's index set \
            differs, and the masks hide it), nor do per-client norms (the server would need \
            each one): top-k is refused there.
              fl-train-local --model m.safetensors --shard s.tar --reconstruct \\
                  --compress topk:0.03 --state s.state -o u.safetensors

            With --secagg-session (secure aggregation across clients, see fl-secagg): every \
            client is a party of its own (party id = its client index, the group made by \
            fl-secagg keys --shard); each client's update is quantised and masked apart, and \
            the output is the sum of the shard's masked updates, still masked: no one, the \
            shard's process included once it has exited, holds a client's update in the clear.

            With --ddp-epsilon E --ddp-delta D (distributed DP, Kairouz, Liu & Steinke \
            2021): each client's clipped vector is rotated, scaled to a grid and rounded \
            with its norm bounded, and each party adds its own discrete Gaussian share of \
            the noise before masking, calibrated from the roster so that (E, D) over \
            --ddp-rounds holds with --ddp-min-parties shares; no one ever sees an \
            un-noised sum (fl-secagg unmask --ledger charges it). --secagg-silo makes the \
            shard one party (fl-secagg keys --party; give --ddp-clients, the population).
              fl-train-local --model m.safetensors --shard s.tar --reconstruct \
                  --algorithm sgd --weighting uniform --clip 0.5 \
                  --secagg-session session --secagg-state s.state \
                  --secagg-roster roster --secagg-deliveries deliveries \
                  --secagg-silo --ddp-epsilon 8 --ddp-delta 1e-6 --ddp-rounds 3 \
                  --ddp-clients 30000 -o s.masked
            """,
        version: fedrecVersion)

    @Option(help: "Global model checkpoint of this round.") var model: String
    @Option(help: "Shard archive (.tar, .tar.gz, .tar.zst; - for stdin).") var shard: String
    @Option(name: [.short, .long], help: "Update file to write (- for stdout).") var output: String
    @Option(help: "The shard's private state file: read if it exists, rewritten atomically.") var state: String?
    @Option(help: "Write the new private state here instead of over --state.") var stateOut: String?
    @OptionGroup(title: "Local training") var training: TrainingArguments
    @OptionGroup(title: "Privacy") var privacy: SamplingArguments
    @OptionGroup(title: "Secure aggregation") var secure: SecureTrainingArguments
    @OptionGroup(title: "text-lora") var text: TextLoRATrainArguments
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    /// The state file read and the one written: users kept between rounds (no
    /// `--reconstruct`) or top-k's error-feedback residuals, which are kept even when users
    /// are rebuilt; nil when nothing is kept.
    var stateFiles: (read: String?, write: String?) {
        let keepsState = !training.reconstruct || training.compress?.keepsResidual == true
        return keepsState ? (state, stateOut ?? state) : (nil, nil)
    }

    /// Secure aggregation across clients for an mf or ncf model (`SecureParty.maskClients`):
    /// each client's update quantised (q8 and q4: to their levels) and masked as its own
    /// party, with distributed DP when asked; top-k is refused. `inputs`: the files
    /// read, besides the session's.
    func maskEachClient(session: String, options: TrainingOptions, inputs: [String?]) throws {
        if let compression = options.compression, compression.secureLevels == nil || secure.ddpEpsilon != nil {
            throw FedRecError(
                .usage,
                "--compress \(compression) does not compose with \(secure.ddpEpsilon == nil ? "secure aggregation: masked sums need every client's values on one support and one scale (q8 and q4 do)" : "distributed DP, whose rounding is its own")")
        }
        let (statePath, stateOutPath) = stateFiles
        let m = try secure.clientMasking(session: session, options: options, inputs: inputs, output: output, updatedInPlace: [stateOutPath])
        let masked = try SecureParty.maskClients(
            modelPath: model, shardPath: shard, userStateIn: statePath, userStateOut: stateOutPath, options: options,
            session: m.session, state: m.state, roster: m.roster, deliveries: m.deliveries, clip: m.clip, tensorClips: m.tensorClips,
            output: output, randomness: m.randomness, dropout: m.dropout, distributed: try secure.distributedSettings(), silo: secure.secaggSilo)
        try reportMasked(masked, output: output, shard: shard, clip: m.clip, json: format.json, quiet: format.quiet)
    }

    /// A text-lora model: the shard's clients fine-tune the adapter on their query logs.
    func trainTextLoRA() throws {
        guard state == nil, stateOut == nil, training.compress == nil else {
            throw FedRecError(.usage, "a text-lora model keeps no user state and takes no --compress yet")
        }
        guard !secure.secaggSilo, secure.ddpEpsilon == nil else {
            throw FedRecError(.usage, "a text-lora model takes no distributed DP yet (--secagg-silo, --ddp-epsilon): mask the shard's update with fl-secagg mask --update")
        }
        var options = training.options
        try privacy.apply(to: &options, quiet: format.quiet || secure.secaggSession != nil)
        guard options.localNoiseMultiplier == 0 else { throw FedRecError(.usage, "a text-lora model takes no local DP yet (--local-dp)") }
        var masking: SecureClientMasking?
        if let session = secure.secaggSession {
            masking = try secure.clientMasking(
                session: session, options: options, inputs: [model, shard, text.items, text.baseModel], output: output, updatedInPlace: [])
        } else {
            try FileRoles(inputs: [model, shard, text.items, text.baseModel], outputs: [output]).check()
        }
        guard text.examplesPerUser >= 0 else { throw FedRecError(.usage, "--examples-per-user must be 0 (all) or more") }
        let request = TextLoRATrainRequest(
            model: model, shard: shard, output: output, items: text.items, baseModel: text.baseModel, options: options,
            batchSize: training.batchSize, learningRate: training.learningRate, weightDecay: training.l2, negatives: training.negatives,
            examplesPerUser: text.examplesPerUser, temperature: text.temperature, loss: text.loss, threads: text.threads, secure: masking, quiet: format.quiet,
            json: format.json)
        try TextFamilyLink.require("fl-train-local").train(request)
    }

    public func run() throws {
        try reportingErrors("fl-train-local") {
            // A model that cannot be read is taken for mf here, so that a usage error comes
            // first; opening it below reports what is wrong with it.
            let family = (try? ModelFamily.of(model: model)) ?? .mf
            switch family {
            case .textLoRA: return try trainTextLoRA()
            case .lr, .fm:
                // A CTR model keeps nothing private between rounds: it needs no state.
                guard secure.secaggSession == nil else { throw FedRecError(.usage, "lr and fm models do not support secure aggregation yet") }
                var options = training.options
                try privacy.apply(to: &options, quiet: format.quiet)
                return try trainCTRShard(model: model, shard: shard, output: output, options: options, format: format)
            case .gfcf:
                guard secure.secaggSession == nil, privacy.sampleRate == nil else {
                    throw FedRecError(.usage, "gfcf models take no --secagg-session or --sample-rate: their statistics are sparse co-occurrences")
                }
                return try trainGraphFilterShard(model: model, shard: shard, output: output, options: training.options, format: format)
            case .mf, .ncf: break
            }
            if !training.reconstruct && state == nil && stateOut == nil {
                throw FedRecError(.usage, "private user parameters need a home: give --state FILE, or --reconstruct")
            }
            // Error feedback's residuals live in the state file even when users are rebuilt.
            if training.compress?.keepsResidual == true && state == nil && stateOut == nil {
                throw FedRecError(.usage, "--compress \(training.compress.map(\.description) ?? "topk") keeps each client's error-feedback residual in the state file: give --state FILE")
            }
            if family == .ncf { return try trainNCF() }
            let (statePath, stateOutPath) = stateFiles
            let base = try ModelView.basePath(of: model)
            // A state file rewritten over itself is the point of --state; anything else that
            // names one file twice would destroy an input.
            if let statePath, let stateOutPath, statePath != stateOutPath {
                try FileRoles(inputs: [model, base, shard, statePath], outputs: [output, stateOutPath]).check()
            } else {
                try FileRoles(inputs: [model, base, shard], outputs: [output], updatedInPlace: [stateOutPath]).check()
            }
            var options = training.options
            // With secure aggregation sampling is refused below: no line about it first.
            try privacy.apply(to: &options, quiet: format.quiet || secure.secaggSession != nil)
            if secure.secaggSession == nil && (secure.secaggSilo || secure.ddpEpsilon != nil) {
                throw FedRecError(.usage, "--secagg-silo and --ddp-epsilon (distributed DP) need --secagg-session: the noise share is added before masking")
            }
            if let session = secure.secaggSession {
                return try maskEachClient(session: session, options: options, inputs: [model, base, shard, statePath])
            }
            let summary = try ShardTrainer.run(
                modelPath: model, shardPath: shard, stateIn: statePath,
                stateOut: stateOutPath, output: output, options: options,
                progress: Progress(quiet: format.quiet))
            if format.json && output != "-" {
                try emit(summary.json(update: output, sampled: options.sampleRate != nil).canonicalText)
            }
        }
    }
}


/// fl-train-local's secure-aggregation options (cross-device: each client a party).
public struct SecureTrainingArguments: ParsableArguments {
    @Option(help: "Mask each client's update in this secure-aggregation session (fl-secagg session).") var secaggSession: String?
    @Option(help: "The group's private secure-aggregation state (fl-secagg keys --shard), updated in place.") var secaggState: String?
    @Option(help: "The round's roster.") var secaggRoster: String?
    @Option(help: "The server's deliveries of the shares.") var secaggDeliveries: String?
    @Option(help: "c: model values are clipped to [-c, c] before quantisation.") var secaggClip: Float = 1
    @Option(help: "NAME=C: tensor NAME (rows.X or dense.X) clipped to [-C, C] instead (repeatable).") var secaggClipTensor: [String] = []
    @Flag(help: "The shard is one party (cross-silo; fl-secagg keys --party): its clients' vectors are rounded apart and summed, and it adds one noise share. Needs --ddp-epsilon.")
    var secaggSilo = false
    @Option(help: "Distributed DP: add this party's share of discrete Gaussian noise for (epsilon, --ddp-delta) over --ddp-rounds rounds (Kairouz, Liu & Steinke 2021).")
    var ddpEpsilon: Double?
    @Option(help: "Distributed DP: delta of the promise.") var ddpDelta: Double?
    @Option(help: "Distributed DP: rounds the promise covers.") var ddpRounds: Int = 1
    @Option(help: "Distributed DP: the fewest parties whose shares an unmasked sum holds (default: the roster's parties less dropouts, with probability 1 - 2^-20).")
    var ddpMinParties: Int?
    @Option(help: "Distributed DP: the most clients in a sum (default: the roster's parties; give the population with --secagg-silo).")
    var ddpClients: Int?
    @OptionGroup var random: PartyRandomnessArgument
    @OptionGroup var dropout: DropoutArguments
    public init() {}

    func distributedSettings() throws -> DistributedDPSettings? {
        guard let ddpEpsilon else {
            guard ddpDelta == nil, ddpMinParties == nil, ddpClients == nil else {
                throw FedRecError(.usage, "--ddp-delta, --ddp-min-parties and --ddp-clients need --ddp-epsilon")
            }
            return nil
        }
        guard ddpEpsilon > 0, ddpEpsilon.isFinite, let ddpDelta, ddpDelta > 0, ddpDelta < 1, ddpRounds >= 1 else {
            throw FedRecError(.usage, "distributed DP needs --ddp-epsilon > 0, --ddp-delta in (0, 1) and --ddp-rounds >= 1")
        }
        return DistributedDPSettings(epsilon: ddpEpsilon, delta: ddpDelta, rounds: ddpRounds, minimumParties: ddpMinParties, clients: ddpClients)
    }

    /// What masking each client as its party needs, after the checks every model family
    /// shares: the state, roster and deliveries given, no client sampling, no output naming
    /// an input (`inputs` and the session's files; the state updated in place besides
    /// `updatedInPlace`), and the warning of a test seed.
    func clientMasking(
        session: String, options: TrainingOptions, inputs: [String?], output: String, updatedInPlace: [String?]
    ) throws -> SecureClientMasking {
        let parts = try required()
        guard options.sampleRate == nil else {
            throw FedRecError(.usage, "--secagg-session with --sample-rate is not supported yet: each client's masked update would not carry the sampling a DP release needs")
        }
        try FileRoles(
            inputs: inputs + [session, parts.roster, parts.deliveries], outputs: [output], updatedInPlace: updatedInPlace + [parts.state]
        ).check()
        random.warn("fl-train-local")
        return SecureClientMasking(
            session: try SecAggSession(path: session), state: parts.state, roster: parts.roster, deliveries: parts.deliveries,
            clip: secaggClip, tensorClips: try tensorClips(secaggClipTensor), randomness: random.randomness, dropout: try dropout.simulated())
    }

    func required() throws -> (state: String, roster: String, deliveries: String) {
        guard let secaggState, let secaggRoster, let secaggDeliveries else {
            throw FedRecError(.usage, "--secagg-session needs --secagg-state, --secagg-roster and --secagg-deliveries")
        }
        guard secaggClip.isFinite, secaggClip > 0 else { throw FedRecError(.usage, "--secagg-clip must be positive") }
        return (secaggState, secaggRoster, secaggDeliveries)
    }
}

/// What fl-train-local says of a masked upload: a warning when values were clipped (or
/// clients' vectors scaled down, for distributed DP), the `--json` line, or that no party
/// of the shard was left.
public func reportMasked(_ masked: MaskedUpdateFile?, output: String, shard: String, clip: Float, json: Bool, quiet: Bool) throws {
    var stderr = StandardError()
    guard let masked else {
        if !quiet { print("fl-train-local: no party of \(shard) is left in the round: nothing written", to: &stderr) }
        return
    }
    if masked.clipped > 0 && masked.layout.distributed != nil {
        print("fl-train-local: warning: \(masked.clipped) clients' vectors were scaled down to the distributed-DP norm bound", to: &stderr)
    } else if masked.clipped > 0 {
        print("fl-train-local: warning: \(masked.clipped) values were clipped to ±\(clip) before masking", to: &stderr)
    }
    if json && output != "-" {
        try emit(
            JSONValue.object([
                "masked": .string(output), "parties": .number(Double(masked.masked.parties.count)), "clipped": .number(Double(masked.clipped)),
            ]).canonicalText)
    }
}
