#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecMechanisms
import FedRecModel
import FedRecSupport
import FedRecWire

/// What one `fl-dp-noise` release did.
public struct DPReleaseReport: Sendable {
    public var round: Int
    /// Clients in the sum (recorded in the ledger only; the output carries q·N).
    public var clients: Int
    public var sampleRate: Double
    public var expectedClients: Double
    /// Coordinates noised: every one the model has.
    public var coordinates: Int
    public var granularity: Double
    public var isPrivate: Bool
    /// ε of the ledger after this release, when a δ was given.
    public var epsilon: Double?
    /// Releases of the same (q, z) still within the budget, when a budget was given.
    public var remainingRounds: Int?
    /// With adaptive clipping: the noise split and the released clip update.
    public var adaptiveClip: (plan: AdaptiveClipPlan, step: AdaptiveClipStep)?
}

/// Settings of a central release.
public struct DPReleaseOptions: Sendable {
    /// z: noise standard deviation over sensitivity.
    public var noiseMultiplier: Double
    /// The privacy ledger (created if missing).
    public var ledger: String
    /// Refuse a release that would push ε past this budget.
    public var budget: PrivacyBudget?
    /// δ at which to report ε (the budget's when there is one).
    public var delta: Double?
    /// The fixed denominator; default q·N from the sum's `sample_rate` and `population`.
    public var expectedClients: Double?
    /// Adaptive clipping (Andrew et al. 2021): release the noised clipped count too, within
    /// the same z, and compute the next round's clip.
    public var adaptiveClip: AdaptiveClipSettings?
    /// With adaptive clipping: a file to write the next round's clip to (one line), durably,
    /// after the ledger line and before the noised sum appears.
    public var nextClipOutput: String?

    public init(noiseMultiplier: Double, ledger: String) {
        self.noiseMultiplier = noiseMultiplier
        self.ledger = ledger
    }
}

/// Client-level DP at the server (DP-FedAvg, McMahan et al. 2018): the sum of a round's
/// clipped, uniformly weighted, Poisson-sampled client deltas gets Gaussian noise of
/// standard deviation z·C on every coordinate of the model, and is released only after
/// the ledger records it.
public enum CentralRelease {
    /// The dense noised sum: every item's embedding and bias row and the global bias, with
    /// `row_weight` = q·N on every row and `weight` = q·N, so `fl-aggregate` divides every
    /// row by the fixed denominator whatever `--row-average` says. The true client count,
    /// the touched rows and the clipped count are not in the output (they are not noised).
    /// - Throws: `.usage` for a sum DP cannot be applied to (not SGD, not uniform, not
    ///   clipped, not sampled, already noised); `.shape` for missing tensors.
    public static func noisedSum(
        _ sum: ModelUpdate, noiseMultiplier z: Double, expectedClients: Double, source: any NoiseSource
    ) throws -> (update: ModelUpdate, granularity: Double) {
        let h = sum.header
        guard h.extra[DPMetadata.mechanism] == nil else { throw FedRecError(.usage, "the sum is already noised") }
        guard h.algorithm == .sgd else {
            throw FedRecError(.usage, "DP needs SGD deltas (--algorithm sgd); \(h.algorithm) statistics are not clipped")
        }
        guard h.weighting == .uniform else {
            throw FedRecError(.usage, "DP needs --weighting uniform (example weights are unbounded), got \(h.weighting)")
        }
        guard h.clip > 0 else { throw FedRecError(.usage, "DP needs clipped updates (fl-train-local --clip C with C > 0)") }
        guard h.sampleRate != nil else {
            throw FedRecError(.usage, "the sum records no sampling rate; train with fl-train-local --sample-rate q")
        }
        guard z > 0, z.isFinite, expectedClients > 0, expectedClients.isFinite else {
            throw FedRecError(.usage, "need a positive noise multiplier and expected client count, got \(z) and \(expectedClients)")
        }
        // One vector of every coordinate: n·d embedding values, n biases, the global bias;
        // or, for a tensor family (ncf, text-lora), every item's row of each row tensor
        // and every value of each dense tensor.
        let tensors = ReleaseVector.isTensorRelease(sum)
        var values = tensors ? try ReleaseVector.packTensors(sum) : try ReleaseVector.packSGD(sum)
        let g = try DPNoise.addNoise(to: &values, clip: h.clip, noiseMultiplier: z, source: source)
        var update = tensors
            ? ReleaseVector.unpackTensors(values, like: sum, clients: expectedClients)
            : ReleaseVector.unpackSGD(values, header: h, clients: expectedClients)
        update.header.extra.merge(DPMetadata.release(
            mechanism: LedgerEntry.subsampledGaussian, noiseMultiplier: z, sampleRate: h.sampleRate ?? 1, granularity: g,
            isPrivate: source.isCryptographicallySecure && !h.hasPublicSample)) { _, new in new }
        update.header.extra[DPMetadata.expectedClients] = "\(expectedClients)"
        return (update, g)
    }

    /// Reads a round's sum, checks the budget, noises it, writes it to a temporary file,
    /// appends the ledger line (fsync), then renames the output into place.
    ///
    /// A refused release (`.budgetExhausted`, exit 87) writes nothing and leaves the ledger
    /// untouched. If the rename fails after the ledger line was written, the ledger counts
    /// a release that did not happen: the safe direction.
    ///
    /// Idempotent across crashes: the noise is the ChaCha20 stream of a 256-bit key drawn
    /// from `source` (the system CSPRNG), recorded in the ledger's private side
    /// (`ReleaseKeys`, mode 600) before the ledger line and forgotten once the output is in
    /// place. A rerun of the same round on the same sum (same file identity) whose line is
    /// already in the ledger, with the same settings, replays that key: it writes the very
    /// same noised output (and next clip) and charges nothing more. Any other rerun is a new
    /// release with a new key, charged.
    /// - Parameters:
    ///   - output: a file path (not stdout: nothing may be seen before the ledger line).
    ///   - beforeRelease: called after the ledger append, before the rename (tests).
    @discardableResult
    public static func release(
        sumPath: String, output: String, options: DPReleaseOptions, source: any NoiseSource,
        beforeRelease: () throws -> Void = {}
    ) throws -> DPReleaseReport {
        guard output != "-" else {
            throw FedRecError(.usage, "the noised sum must go to a file (it is released only after the ledger line)")
        }
        let (sum, identity) = try ModelUpdate.open(sumPath)
        let h = sum.header
        // Private ALS: every client takes part unless the round was sampled.
        let isALS = h.algorithm == .als
        guard let q = h.sampleRate ?? (isALS ? 1 : nil) else {
            throw FedRecError(.usage, file: sumPath, "the sum records no sampling rate; train with fl-train-local --sample-rate q")
        }
        if isALS && options.adaptiveClip != nil {
            throw FedRecError(.usage, file: sumPath, "adaptive clipping applies to SGD deltas, not to private ALS statistics")
        }
        let alsBounds = try isALS ? inFile(sumPath) { try PrivateALSRelease.bounds(of: h) } : nil
        let expected = options.expectedClients ?? (isALS && h.sampleRate == nil ? Double(max(h.population, h.clients)) : q * Double(h.population))
        guard expected > 0 else {
            throw FedRecError(.usage, file: sumPath, "the expected number of clients q·N is 0 (q=\(q), population \(h.population))")
        }
        let z = options.noiseMultiplier
        // Adaptive clipping: the sum gets z_Δ, the count σ_b, the ledger charges z for both.
        let plan = try options.adaptiveClip.map { settings in
            try inFile(sumPath) { try settings.plan(totalNoiseMultiplier: z, expectedClients: expected) }
        }
        if options.nextClipOutput != nil && plan == nil {
            throw FedRecError(.usage, "a next-clip output needs adaptive clipping")
        }
        if options.nextClipOutput == "-" { throw FedRecError(.usage, "the next clip must go to a file") }
        let ledger = access(options.ledger, F_OK) == 0
            ? try PrivacyLedger.read(path: options.ledger) : LedgerContents(entries: [], head: PrivacyLedger.genesis)
        let entry = LedgerEntry(
            round: h.round, noiseMultiplier: z, sampleRate: q, clip: alsBounds?.sensitivity(h.config) ?? h.clip, clients: h.clients,
            isPrivate: source.isCryptographicallySecure && !h.hasPublicSample,
            mechanism: isALS ? LedgerEntry.alsGaussian : plan == nil ? LedgerEntry.subsampledGaussian : LedgerEntry.adaptiveClipGaussian,
            updateNoiseMultiplier: plan?.updateNoiseMultiplier, countNoiseStddev: plan?.countNoiseStddev)
        var report = DPReleaseReport(
            round: h.round, clients: h.clients, sampleRate: q, expectedClients: expected,
            coordinates: alsBounds.map { PrivateALSRelease.coordinates(h.config, sharesItemGram: $0.sharesItemGram(h.config)) }
                ?? (ReleaseVector.isTensorRelease(sum) ? ReleaseVector.tensorLength(sum) : h.config.items * (h.config.dim + 1) + 1),
            granularity: 0, isPrivate: entry.isPrivate)

        // A release of this sum whose line is already charged, with these settings: replay it.
        let keysPath = ReleaseKeys.path(ledger: options.ledger)
        let replayed = try ReleaseKeys.read(path: keysPath).last { pending in
            guard pending.round == h.round, pending.sum == identity,
                let i = ledger.lineHashes.firstIndex(of: pending.line)
            else { return false }
            return ledger.entries[i] == entry
        }
        let key: [UInt8]
        let charged: [LedgerEntry]  // the ledger up to and including this release's line
        let newHead: String
        if let replayed, let i = ledger.lineHashes.firstIndex(of: replayed.line) {
            key = replayed.key
            charged = Array(ledger.entries[...i])
            newHead = replayed.line
        } else {
            if let budget = options.budget {
                do {
                    try budget.checkRelease(after: ledger.entries, sampleRate: q, noiseMultiplier: z)
                } catch let error as FedRecError where error.failure == .budgetExhausted {
                    let spent = try budget.spent(ledger.entries)
                    throw FedRecError(.budgetExhausted, file: options.ledger,
                        "privacy budget exhausted: 0 rounds left at q=\(q), z=\(z); \(ledger.entries.count) releases spent epsilon \(spent) of \(budget.epsilon) at delta \(budget.delta), and round \(h.round) would bring it past the budget; nothing was written")
                }
            }
            var words = [UInt64](repeating: 0, count: 4)
            words.withUnsafeMutableBufferPointer { source.fill($0) }
            key = words.withUnsafeBytes { Array($0) }
            charged = ledger.entries + [entry]
            newHead = sha256Hex(Array(entry.line(prev: ledger.head).utf8))
        }
        let noise = SystemNoiseSource(key: key, isCryptographicallySecure: source.isCryptographicallySecure)
        let (noised, g) = try inFile(sumPath) {
            if isALS {
                let release = try PrivateALSRelease.noisedSum(sum, noiseMultiplier: z, source: noise)
                return (release.update, release.granularity)
            }
            return try noisedSum(sum, noiseMultiplier: plan?.updateNoiseMultiplier ?? z, expectedClients: expected, source: noise)
        }
        report.granularity = g
        var update = noised
        if let plan {
            let step = try inFile(sumPath) {
                try plan.step(clip: h.clip, unclipped: h.clients - h.clipped, participants: h.clients,
                              expectedClients: expected, source: noise)
            }
            update.header.extra.merge(adaptiveMetadata(plan, step)) { _, new in new }
            report.adaptiveClip = (plan, step)
        }
        if let delta = options.budget?.delta ?? options.delta {
            let eps = try RDPAccountant().epsilon(ledger: charged, delta: delta).epsilon
            report.epsilon = eps
            update.header.extra[DPMetadata.epsilon] = "\(eps)"
            update.header.extra[DPMetadata.delta] = "\(delta)"
        }
        if let budget = options.budget {
            let all = replayed == nil ? ledger.entries + [entry] : ledger.entries
            report.remainingRounds = try budget.remainingRounds(after: all, sampleRate: q, noiseMultiplier: z)
        }
        update.header.extra[DPMetadata.ledgerHead] = newHead
        let file = try AtomicOutput(path: output, durable: true)
        do {
            try update.writer(kind: .sum).write(into: file)
            if replayed == nil {
                try ReleaseKeys.record(PendingRelease(round: h.round, sum: identity, key: key, line: newHead), to: keysPath)
                try PrivacyLedger.append(entry, to: options.ledger, expectedHead: ledger.head)
            }
            if let path = options.nextClipOutput, let step = report.adaptiveClip?.step {
                let clipFile = try AtomicOutput(path: path, durable: true)
                try clipFile.write("\(step.nextClip)\n")
                try clipFile.commit()
            }
            try beforeRelease()
        } catch {
            file.abandon()
            throw error
        }
        try file.commit()
        // The key is needed no more: forget it, so the noise cannot be recomputed later.
        try ReleaseKeys.remove(round: h.round, sum: identity, from: keysPath)
        return report
    }

    /// The noised sum's metadata of an adaptive-clipping release (docs/FORMATS.md).
    static func adaptiveMetadata(_ plan: AdaptiveClipPlan, _ step: AdaptiveClipStep) -> [String: String] {
        [
            DPMetadata.mechanism: LedgerEntry.adaptiveClipGaussian,
            DPMetadata.noiseMultiplier: "\(plan.updateNoiseMultiplier)",
            DPMetadata.totalNoiseMultiplier: "\(plan.totalNoiseMultiplier)",
            DPMetadata.countNoiseStddev: "\(plan.countNoiseStddev)",
            DPMetadata.targetQuantile: "\(plan.settings.targetQuantile)",
            DPMetadata.clipLearningRate: "\(plan.settings.learningRate)",
            DPMetadata.clipFraction: "\(step.noisedFraction)",
            DPMetadata.nextClip: "\(step.nextClip)",
        ]
    }
}

extension UpdateHeader {
    /// Whether the clients were sampled with a known test seed (`sampling_key=test`): the
    /// sample is then public, subsampling amplifies nothing, and a release of the sum is
    /// marked `private=false` like one noised from a test seed.
    var hasPublicSample: Bool { extra[DPMetadata.samplingKey] == SamplingKeySource.test.rawValue }
}

extension DPReleaseReport {
    /// What `fl-dp-noise --json` reports of a release written at `path` with noise
    /// multiplier z (with adaptive clipping, `noise_multiplier` is the sum's own z_Δ).
    public func json(output path: String, noiseMultiplier z: Double) -> JSONValue {
        var object: [String: JSONValue] = [
            "output": .string(path), "round": .number(Double(round)), "sample_rate": .number(sampleRate),
            "expected_clients": .number(expectedClients), "coordinates": .number(Double(coordinates)),
            "noise_multiplier": .number(z), "private": .bool(isPrivate),
        ]
        if let epsilon { object["epsilon"] = .number(epsilon) }
        if let remainingRounds { object["rounds_left"] = .number(Double(remainingRounds)) }
        if let (plan, step) = adaptiveClip {
            object["noise_multiplier"] = .number(plan.updateNoiseMultiplier)
            object["total_noise_multiplier"] = .number(plan.totalNoiseMultiplier)
            object["count_noise_stddev"] = .number(plan.countNoiseStddev)
            object["clip"] = .number(step.clip)
            object["clip_fraction"] = .number(step.noisedFraction)
            object["next_clip"] = .number(step.nextClip)
        }
        return .object(object)
    }

    /// The one line a person reads on stderr: the round, what was noised, ε and what is left.
    public var summaryLine: String {
        let eps = epsilon.map { ", epsilon \(sixDecimals($0))" } ?? ""
        let left = remainingRounds.map { ", \($0) rounds left in the budget" } ?? ""
        let clip = adaptiveClip.map { ", clip \(sixDecimals($0.step.clip)) -> \(sixDecimals($0.step.nextClip))" } ?? ""
        return "round \(round) released (\(coordinates) coordinates, q·N = \(sixDecimals(expectedClients))\(eps)\(left)\(clip))"
    }
}
