import FedRecData
import FedRecMechanisms
import FedRecModel
import FedRecSupport
import FedRecWire

/// Local differential privacy for clients that trust no server (`fl-train-local
/// --local-dp`): each client clips its whole delta to L2 norm C and adds Gaussian noise of
/// standard deviation z·(C + g·√D) to **every** coordinate of the model — all D = n·(d+1)+1
/// item embedding, item bias and global bias values, touched or not — before anything
/// leaves the client. The noise is the exact discrete Gaussian on a grid (`DPNoise`) from
/// the system CSPRNG.
///
/// Each client's release in a round is then (ε, δ)-DP with respect to that client's whole
/// data, ε from `RDPAccountant` with q = 1 and one step, whatever the server does. Over T
/// rounds in which the client takes part the releases compose:
/// `fl-dp-noise account --sample-rate 1 --noise-multiplier z --rounds T --delta δ`.
/// The cost: noise of the same size as the central mechanism's, per client rather than
/// per sum, so utility is far lower for the same ε.
final class LocalDP {
    let clip: Double
    let noiseMultiplier: Double
    let delta: Double
    let epsilon: Double
    let items: Int
    let width: Int
    let source: any NoiseSource
    private var granularity = 0.0

    /// nil when local DP is off.
    init?(options: TrainingOptions, config: ModelConfig) throws {
        guard options.localNoiseMultiplier > 0 else { return nil }
        guard options.algorithm == .sgd, options.clip > 0, options.weighting == .uniform else {
            throw FedRecError(.usage, "--local-dp needs --algorithm sgd, --clip C > 0 and --weighting uniform")
        }
        guard options.localNoiseMultiplier.isFinite, options.localDelta > 0, options.localDelta < 1 else {
            throw FedRecError(.usage, "--local-dp needs a finite --noise-multiplier and 0 < --delta < 1")
        }
        clip = options.clip
        noiseMultiplier = options.localNoiseMultiplier
        delta = options.localDelta
        epsilon = try DPNoise.singleReleaseEpsilon(noiseMultiplier: noiseMultiplier, delta: delta)
        items = config.items
        width = config.dim + 1
        source = options.localNoiseSeed.map { SeededNoiseSource(seed: $0) } ?? SystemNoiseSource()
    }

    /// What the update records about the clients' local releases.
    var metadata: [String: String] {
        [
            DPMetadata.localNoiseMultiplier: "\(noiseMultiplier)", DPMetadata.localEpsilon: "\(epsilon)",
            DPMetadata.localDelta: "\(delta)", DPMetadata.granularity: "\(granularity)",
            DPMetadata.isPrivate: source.isCryptographicallySecure ? "true" : "false",
        ]
    }

    /// Trains one client, noises its dense clipped delta and adds it to every row of `rows`.
    /// - Returns: the trainer's result with the *noised* global-bias change.
    /// - Complexity: O(items · (dim + 1)) noise draws per client.
    func train(
        _ trainer: SGDClientTrainer, users: [UserRecord], start: ClientUsers, generator: inout SeededGenerator,
        rows: RowAccumulator
    ) throws -> (users: ClientUsers, globalBiasDelta: Float, clipped: Bool) {
        var values = [Float](repeating: 0, count: items * width + 1)
        var result = trainer.train(users: users, start: start, generator: &generator) { touched, deltas in
            for (i, item) in touched.enumerated() {
                let base = Int(item) * width
                for k in 0..<width { values[base + k] = deltas[i * width + k] }
            }
        }
        values[items * width] = result.globalBiasDelta
        granularity = try DPNoise.addNoise(to: &values, clip: clip, noiseMultiplier: noiseMultiplier, source: source)
        values.withUnsafeBufferPointer { all in
            for item in 0..<items {
                let slot = rows.slot(Int32(item))
                rows.countClient(slot: slot, weight: 1)
                rows.add(slot: slot, UnsafeBufferPointer(rebasing: all[(item * width)..<((item + 1) * width)]), scale: 1)
            }
        }
        result.globalBiasDelta = values[items * width]
        return result
    }
}
