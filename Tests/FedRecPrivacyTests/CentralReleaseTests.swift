import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecPrivacy
import FedRecSupport
import FedRecFormats
import FedRecMechanisms
import FedRecModel
import FedRecWire
import FedRecAggregation

@Suite("Central DP release (fl-dp-noise)")
struct CentralReleaseTests {
    /// A clipped, uniform, sampled delta sum over `items` items that touches rows 3 and 7.
    func sum(items: Int = 2000, dim: Int = 9, clip: Double = 1, q: Double = 0.1, population: Int = 500) -> ModelUpdate {
        let config = ModelConfig(objective: .bpr, dim: dim, items: items, datasetId: "test")
        var header = UpdateHeader(config: config, baseModel: "base", round: 4, algorithm: .sgd, weighting: .uniform, clients: 48, weight: 48)
        header.clip = clip
        header.sampleRate = q
        header.population = population
        return ModelUpdate(
            header: header, rows: [3, 7], rowClients: [5, 2], rowWeight: [5, 2],
            rowTensors: ["item_embedding": RowTensor(width: dim, values: (0..<(2 * dim)).map { Float($0) / 100 }),
                         "item_bias": RowTensor(width: 1, values: [0.5, -0.5])],
            dense: ["global_bias": [0.25]])
    }

    /// The noise on D = 20,001 coordinates: the sample variance's relative standard error is
    /// √(2/(D-1)) ≈ 1 %, so its square root (the std) has ≈ 0.5 %. The bound is 5 standard
    /// errors (2.5 %) for the std and 5 σ/√D for the mean: a false-failure rate below 1.2e-6
    /// for a correct sampler (the seed is fixed, so the outcome is deterministic).
    @Test("the noise's empirical standard deviation is z·C (on the grid sensitivity) within sampling error")
    func noiseStd() throws {
        let z = 1.5
        let s = sum()
        let zero = ModelUpdate(header: s.header, rowTensors: ["item_embedding": RowTensor(width: 9, values: []), "item_bias": RowTensor(width: 1, values: [])],
                               dense: ["global_bias": [0]])
        let (noised, g) = try CentralRelease.noisedSum(zero, noiseMultiplier: z, expectedClients: 50, source: SeededNoiseSource(seed: 11))
        let values = noised.rowTensors["item_embedding"]!.values + noised.rowTensors["item_bias"]!.values + noised.dense["global_bias"]!
        let d = 2000 * 10 + 1
        #expect(values.count == d)
        let sigma = DPNoise.sigma(clip: 1, noiseMultiplier: z, granularity: g, coordinates: d)
        #expect(sigma >= z * 1 && sigma <= z * 1.001)  // grid costs at most 0.1 % of C
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(d)
        let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(d - 1)
        #expect(abs(mean) <= 5 * sigma / Double(d).squareRoot())
        #expect(abs(variance.squareRoot() / sigma - 1) <= 5 * (0.5 / Double(d)).squareRoot())
        #expect(noised.header.extra[DPMetadata.isPrivate] == "false")
    }

    @Test("a sum of dense tensors only (a text-lora adapter): every value noised at z·C, the layout kept, divided by q·N")
    func denseOnly() throws {
        let config = ModelConfig(family: .textLoRA, objective: .bce, dim: 8, items: 30, datasetId: "test")
        var header = UpdateHeader(config: config, baseModel: "base", round: 2, algorithm: .sgd, weighting: .uniform, clients: 7, weight: 7)
        header.clip = 0.5
        header.sampleRate = 1
        header.population = 40
        let a: [Float] = (0..<6000).map { (i: Int) -> Float in Float(i % 7) / 100 }
        let b: [Float] = (0..<4001).map { (i: Int) -> Float in -Float(i % 5) / 100 }
        let sum = ModelUpdate(header: header, dense: ["layer.0.query.lora_B": a, "layer.0.value.lora_B": b])
        let z = 2.0
        let (noised, g) = try CentralRelease.noisedSum(sum, noiseMultiplier: z, expectedClients: 40, source: SeededNoiseSource(seed: 5))
        #expect(noised.rows.isEmpty && noised.rowTensors.isEmpty && noised.header.weight == 40)
        let na = try #require(noised.dense["layer.0.query.lora_B"]), nb = try #require(noised.dense["layer.0.value.lora_B"])
        #expect(na.count == a.count && nb.count == b.count)
        let released: [Float] = na + nb, original: [Float] = a + b
        let noise: [Double] = zip(released, original).map { (x: Float, y: Float) -> Double in Double(x) - Double(y) }
        let d = noise.count
        let sigma = DPNoise.sigma(clip: 0.5, noiseMultiplier: z, granularity: g, coordinates: d)
        let mean = noise.reduce(0, +) / Double(d)
        let variance = noise.reduce(0.0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d - 1)
        #expect(abs(mean) <= 5 * sigma / Double(d).squareRoot())
        #expect(abs(variance.squareRoot() / sigma - 1) <= 5 * (0.5 / Double(d)).squareRoot(), "std \(variance.squareRoot()) against \(sigma)")
    }

    /// An ncf sum (NeuMF: rows gmf_item [n, 3], mlp_item [n, 2] for two touched items, and
    /// the tower's dense tensors) over 2,000 items: 10,000 row values and the tower's.
    @Test("an ncf sum (two row tensors and the tower): every item's rows and every dense value noised at z·C, divided by q·N in the server step")
    func ncfSum() throws {
        let dir = try TemporaryDirectory()
        let network = try NCFNetwork(variant: .neumf, gmfDim: 3, mlpDim: 2, layers: [4, 2])
        let config = ModelConfig(family: .ncf, objective: .bce, dim: network.userWidth, items: 2000, datasetId: "test")
        let model = NCFModel.initial(config: config, network: network, scale: 0.1, seed: 3, outputBias: 0)
        let identity = try model.write(to: dir.path + "/m")
        var header = UpdateHeader(config: config, baseModel: identity, round: 0, algorithm: .sgd, weighting: .uniform, clients: 6, weight: 6)
        header.clip = 0.5
        header.sampleRate = 0.2
        header.population = 30
        var dense: [String: [Float]] = [:]
        for entry in network.denseLayout { dense[entry.name] = (0..<entry.shape.reduce(1, *)).map { Float($0 % 3) / 10 } }
        let sum = ModelUpdate(
            header: header, rows: [4, 1500], rowClients: [2, 1], rowWeight: [2, 1],
            rowTensors: ["gmf_item": RowTensor(width: 3, values: [0.1, 0.2, 0.3, -0.1, -0.2, -0.3]),
                         "mlp_item": RowTensor(width: 2, values: [1, 2, -1, -2])],
            dense: dense)
        let z = 2.0, expected = 6.0
        let (noised, g) = try CentralRelease.noisedSum(sum, noiseMultiplier: z, expectedClients: expected, source: SeededNoiseSource(seed: 9))
        #expect(noised.rows == (0..<2000).map { Int32($0) })
        #expect(noised.rowWeight.allSatisfy { $0 == 6 } && noised.rowClients.allSatisfy { $0 == 6 } && noised.header.weight == 6)
        #expect(Set(noised.dense.keys) == Set(dense.keys) && noised.rowTensors["gmf_item"]?.width == 3 && noised.rowTensors["mlp_item"]?.width == 2)
        // The noise: released minus the sum, untouched rows' zeros included (built here from the rows).
        var noise: [Double] = []
        for (name, w) in [("gmf_item", 3), ("mlp_item", 2)] {
            let released = try #require(noised.rowTensors[name]?.values)
            #expect(released.count == 2000 * w)
            var original = [Float](repeating: 0, count: 2000 * w)
            for (r, row) in sum.rows.enumerated() { for k in 0..<w { original[Int(row) * w + k] = sum.rowTensors[name]!.values[r * w + k] } }
            noise += zip(released, original).map { Double($0) - Double($1) }
        }
        for (name, values) in dense.sorted(by: { $0.key < $1.key }) {
            let released = try #require(noised.dense[name])
            #expect(released.count == values.count)
            noise += zip(released, values).map { Double($0) - Double($1) }
        }
        let d = noise.count
        #expect(d == 2000 * 5 + network.denseCount)
        let sigma = DPNoise.sigma(clip: 0.5, noiseMultiplier: z, granularity: g, coordinates: d)
        let mean = noise.reduce(0, +) / Double(d)
        let variance = noise.reduce(0.0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d - 1)
        #expect(abs(mean) <= 5 * sigma / Double(d).squareRoot())
        #expect(abs(variance.squareRoot() / sigma - 1) <= 5 * (0.5 / Double(d)).squareRoot(), "std \(variance.squareRoot()) against \(sigma)")
        // fl-aggregate --fixed-denominator: every parameter moves by its noised sum over q·N.
        var options = ServerOptions()
        options.fixedDenominator = expected
        let next = try NCFModel(TensorServerStep.apply(noised, sumFile: "noised", to: dir.path + "/m", options: options), file: "next")
        let gmf = try #require(noised.rowTensors["gmf_item"]?.values), mlp = try #require(noised.rowTensors["mlp_item"]?.values)
        for item in 0..<2000 {
            let moved = (0..<3).map { gmf[item * 3 + $0] } + (0..<2).map { mlp[item * 2 + $0] }
            for k in 0..<5 {
                #expect(abs(Double(next.itemRows[item * 5 + k]) - (Double(model.itemRows[item * 5 + k]) + Double(moved[k]) / expected)) <= 1e-5)
            }
        }
        for entry in network.denseLayout {
            let released = try #require(noised.dense[entry.name])
            for k in released.indices {
                #expect(abs(Double(next.dense[entry.offset + k]) - (Double(model.dense[entry.offset + k]) + Double(released[k]) / expected)) <= 1e-5)
            }
        }
    }

    @Test("a sum of clients sampled with a known test seed is released as not private, even with CSPRNG noise")
    func publicSample() throws {
        var s = sum()
        for key in SamplingKeySource.allCases {
            s.header.extra[DPMetadata.samplingKey] = key.rawValue
            let (noised, _) = try CentralRelease.noisedSum(s, noiseMultiplier: 1, expectedClients: 50, source: SystemNoiseSource())
            #expect(noised.header.extra[DPMetadata.isPrivate] == (key == .test ? "false" : "true"), "sampling_key=\(key.rawValue)")
        }
    }

    @Test("every coordinate of the model is noised, touched or not, and every row is divided by q·N")
    func dense() throws {
        let s = sum()
        let (noised, _) = try CentralRelease.noisedSum(s, noiseMultiplier: 1, expectedClients: 50, source: SystemNoiseSource())
        #expect(noised.rows == (0..<2000).map { Int32($0) })
        #expect(noised.rowWeight.allSatisfy { $0 == 50 } && noised.header.weight == 50 && noised.header.clients == 50)
        #expect(noised.header.extra[DPMetadata.isPrivate] == "true" && noised.header.extra[DPMetadata.mechanism] == "subsampled_gaussian")
        let embedding = noised.rowTensors["item_embedding"]!.values
        // σ/g > 10⁵ grid units: a draw of exactly 0 has probability < 4e-6 per coordinate,
        // so a handful of unchanged coordinates out of 20,001 would already be suspicious.
        var unchanged = embedding.filter { $0 == 0 }.count + noised.rowTensors["item_bias"]!.values.filter { $0 == 0 }.count
        if noised.dense["global_bias"]![0] == 0.25 { unchanged += 1 }
        #expect(unchanged <= 3)
        // Refusals: not uniform, not clipped, not sampled, already noised.
        var bad = s
        bad.header.weighting = .examples
        #expect(throws: FedRecError.self) { try CentralRelease.noisedSum(bad, noiseMultiplier: 1, expectedClients: 50, source: SystemNoiseSource()) }
        bad = s; bad.header.clip = 0
        #expect(throws: FedRecError.self) { try CentralRelease.noisedSum(bad, noiseMultiplier: 1, expectedClients: 50, source: SystemNoiseSource()) }
        bad = s; bad.header.sampleRate = nil
        #expect(throws: FedRecError.self) { try CentralRelease.noisedSum(bad, noiseMultiplier: 1, expectedClients: 50, source: SystemNoiseSource()) }
        #expect(throws: FedRecError.self) { try CentralRelease.noisedSum(noised, noiseMultiplier: 1, expectedClients: 50, source: SystemNoiseSource()) }
    }

    @Test("the ledger line is on disk before the output exists; the output records the ledger head")
    func ledgerFirst() throws {
        let dir = try TemporaryDirectory()
        let input = dir.path + "/sum", output = dir.path + "/noised", ledger = dir.path + "/ledger.jsonl"
        try sum().write(to: input, kind: .sum)
        var options = DPReleaseOptions(noiseMultiplier: 1.2, ledger: ledger)
        options.delta = 1e-5
        var sawLedger = false
        let report = try CentralRelease.release(sumPath: input, output: output, options: options, source: SystemNoiseSource()) {
            let contents = try PrivacyLedger.read(path: ledger)
            sawLedger = contents.entries.count == 1 && !FileManager.default.fileExists(atPath: output)
        }
        #expect(sawLedger)
        let contents = try PrivacyLedger.read(path: ledger)
        #expect(contents.entries == [LedgerEntry(round: 4, noiseMultiplier: 1.2, sampleRate: 0.1, clip: 1, clients: 48, isPrivate: true)])
        let released = try ModelUpdate.load(output)
        #expect(released.header.extra[DPMetadata.ledgerHead] == contents.head)
        #expect(released.header.extra[DPMetadata.expectedClients] == "50.0")
        let eps = try RDPAccountant().epsilon(sampleRate: 0.1, noiseMultiplier: 1.2, steps: 1, delta: 1e-5).epsilon
        #expect(report.epsilon == eps)
    }

    @Test("a release past the budget is refused: budgetExhausted, no output, ledger unchanged")
    func budget() throws {
        let dir = try TemporaryDirectory()
        let input = dir.path + "/sum", output = dir.path + "/noised", ledger = dir.path + "/ledger.jsonl"
        try sum(q: 0.5).write(to: input, kind: .sum)
        var options = DPReleaseOptions(noiseMultiplier: 2, ledger: ledger)
        options.budget = try PrivacyBudget(epsilon: 2, delta: 1e-5)
        var released = 0
        while true {
            do {
                let report = try CentralRelease.release(sumPath: input, output: output + "\(released)", options: options, source: SystemNoiseSource())
                released += 1
                #expect(report.remainingRounds != nil && report.epsilon! <= 2)
            } catch let error as FedRecError {
                #expect(error.failure == .budgetExhausted)
                #expect(error.message.contains("0 rounds left"))
                break
            }
        }
        let expected = try PrivacyBudget(epsilon: 2, delta: 1e-5).remainingRounds(after: [], sampleRate: 0.5, noiseMultiplier: 2)
        #expect(released == expected && released > 0)
        let before = try readBytes(ledger)
        #expect(throws: FedRecError.self) { try CentralRelease.release(sumPath: input, output: output, options: options, source: SystemNoiseSource()) }
        #expect(try readBytes(ledger) == before)
        #expect(!FileManager.default.fileExists(atPath: output + "\(released)"))
        #expect(try dir.listing().filter { $0.hasPrefix(".") }.isEmpty)  // no temporary left
    }

    @Test("the server step divides every row of a noised sum by the fixed denominator")
    func fixedDenominator() throws {
        let data = try SyntheticDataset()
        let modelPath = try data.initialModel(.mse)
        let model = try MFModel.load(modelPath)
        let config = model.config
        var header = UpdateHeader(config: config, baseModel: try ModelView(path: modelPath).identity, round: 0, algorithm: .sgd, weighting: .uniform, clients: 3, weight: 3)
        header.clip = 1
        header.sampleRate = 0.5
        header.population = 10
        let n = config.items, d = config.dim
        let s = ModelUpdate(header: header, rows: [0], rowClients: [1], rowWeight: [1],
                            rowTensors: ["item_embedding": RowTensor(width: d, values: [Float](repeating: 1, count: d)), "item_bias": RowTensor(width: 1, values: [1])],
                            dense: ["global_bias": [1]])
        let (noised, _) = try CentralRelease.noisedSum(s, noiseMultiplier: 1, expectedClients: 5, source: SeededNoiseSource(seed: 1))
        var options = ServerOptions()
        options.fixedDenominator = 5
        let next = try ServerStep.apply(noised, sumFile: "noised", to: modelPath, options: options).standalone()
        let emb = noised.rowTensors["item_embedding"]!.values, bias = noised.rowTensors["item_bias"]!.values
        for item in 0..<n {
            for k in 0..<d {
                #expect(abs(next.itemEmbedding[item * d + k] - (model.itemEmbedding[item * d + k] + emb[item * d + k] / 5)) <= 1e-5)
            }
            #expect(abs(next.itemBias[item] - (model.itemBias[item] + bias[item] / 5)) <= 1e-5)
        }
        #expect(abs(next.globalBias - (model.globalBias + noised.dense["global_bias"]![0] / 5)) <= 1e-5)
    }

    /// Five adaptive releases of a sum with 36 of 48 clients under C = 1, q·N = 50 (σ_b = 2.5),
    /// z = 2: z_Δ = (1/4 − 1/25)^(−1/2) = 2.182, 9 % above z. The sum's zero rows are noised
    /// at z_Δ: over 20,001 coordinates the std is within 2.5 % (5 standard errors) of it.
    @Test("adaptive clipping: the sum gets z_Δ, the ledger charges z (ε as fixed clipping), the next clip is written")
    func adaptiveRelease() throws {
        let dir = try TemporaryDirectory()
        let input = dir.path + "/sum", ledger = dir.path + "/ledger.jsonl", clipFile = dir.path + "/clip"
        var s = sum()
        s.header.clipped = 12
        s.rows = []; s.rowClients = []; s.rowWeight = []
        s.rowTensors = ["item_embedding": RowTensor(width: 9, values: []), "item_bias": RowTensor(width: 1, values: [])]
        s.dense = ["global_bias": [0]]
        try s.write(to: input, kind: .sum)
        var options = DPReleaseOptions(noiseMultiplier: 2, ledger: ledger)
        options.delta = 1e-5
        options.adaptiveClip = try AdaptiveClipSettings(targetQuantile: 0.9, learningRate: 0.2)
        options.nextClipOutput = clipFile
        let source = SeededNoiseSource(seed: 3)
        let zDelta = 1 / (1 / 4.0 - 1 / 25.0).squareRoot()
        for t in 1...5 {
            let output = dir.path + "/noised\(t)"
            let report = try CentralRelease.release(sumPath: input, output: output, options: options, source: source)
            let (plan, step) = try #require(report.adaptiveClip)
            #expect(plan.countNoiseStddev == 2.5 && abs(plan.updateNoiseMultiplier - zDelta) < 1e-14)
            // 36/48 fit where 90 % should: the clip grows, by exactly C·exp(−η(b̃ − γ)).
            #expect(step.nextClip == exp(-0.2 * (step.noisedFraction - 0.9)))
            #expect(abs(step.noisedFraction - 36.0 / 50 - 0.02) < 0.25)  // (36 − 24 + noise)/50 + ½, noise std 2.5
            let released = try ModelUpdate.load(output)
            let meta = released.header.extra
            #expect(meta[DPMetadata.mechanism] == LedgerEntry.adaptiveClipGaussian)
            #expect(meta[DPMetadata.noiseMultiplier] == "\(plan.updateNoiseMultiplier)" && meta[DPMetadata.totalNoiseMultiplier] == "2.0")
            #expect(meta[DPMetadata.nextClip] == "\(step.nextClip)" && meta[DPMetadata.clipFraction] == "\(step.noisedFraction)")
            #expect(meta[DPMetadata.targetQuantile] == "0.9" && meta[DPMetadata.countNoiseStddev] == "2.5")
            #expect(try String(contentsOfFile: clipFile, encoding: .utf8) == "\(step.nextClip)\n")
            #expect(released.header.clipped == 0)
            let fixed = try RDPAccountant().epsilon(sampleRate: 0.1, noiseMultiplier: 2, steps: t, delta: 1e-5).epsilon
            #expect(abs(try #require(report.epsilon) - fixed) <= 1e-12 * fixed)
            if t == 1 {
                let values = released.rowTensors["item_embedding"]!.values + released.rowTensors["item_bias"]!.values + released.dense["global_bias"]!
                let d = values.count
                let sigma = DPNoise.sigma(clip: 1, noiseMultiplier: zDelta, granularity: report.granularity, coordinates: d)
                let std = (values.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(d)).squareRoot()
                #expect(abs(std / sigma - 1) <= 5 * (0.5 / Double(d)).squareRoot(), "std \(std), z_Δ·C \(sigma)")
            }
        }
        let entries = try PrivacyLedger.read(path: ledger).entries
        #expect(entries.count == 5 && entries.allSatisfy {
            $0.mechanism == LedgerEntry.adaptiveClipGaussian && $0.noiseMultiplier == 2 && $0.countNoiseStddev == 2.5
                && $0.updateNoiseMultiplier == zDelta && $0.clip == 1 && $0.clients == 48
        })
    }

    @Test("adaptive clipping that cannot pay for its count, or a clip file without it, is refused before anything is written")
    func adaptiveRefusals() throws {
        let dir = try TemporaryDirectory()
        let input = dir.path + "/sum", ledger = dir.path + "/ledger.jsonl"
        try sum().write(to: input, kind: .sum)
        var options = DPReleaseOptions(noiseMultiplier: 6, ledger: ledger)  // 2σ_b = q·N/10 = 5 < 6
        options.adaptiveClip = try AdaptiveClipSettings()
        options.nextClipOutput = dir.path + "/clip"
        let error = try #require(throws: FedRecError.self) {
            try CentralRelease.release(sumPath: input, output: dir.path + "/out", options: options, source: SystemNoiseSource())
        }
        #expect(error.failure == .usage && error.file == input && error.message.contains("--clip-noise-std"), "\(error)")
        options.noiseMultiplier = 1
        options.adaptiveClip = nil
        #expect(throws: FedRecError.self) {
            try CentralRelease.release(sumPath: input, output: dir.path + "/out", options: options, source: SystemNoiseSource())
        }
        #expect(try dir.listing() == ["sum"])
    }

    struct Crash: Error {}

    /// A kill between the ledger line and the rename, simulated by `beforeRelease` throwing
    /// after copying the noised temporary file (the bytes that were about to appear).
    @Test("a crash after the ledger line: the rerun releases the very same bytes and next clip and charges nothing more; the key is then forgotten")
    func idempotentAfterCrash() throws {
        let dir = try TemporaryDirectory()
        let input = dir.path + "/sum", output = dir.path + "/noised", ledger = dir.path + "/ledger.jsonl"
        let keys = ReleaseKeys.path(ledger: ledger), clip = dir.path + "/clip"
        var s = sum()
        s.header.clipped = 12
        try s.write(to: input, kind: .sum)
        var options = DPReleaseOptions(noiseMultiplier: 2, ledger: ledger)
        options.budget = try PrivacyBudget(epsilon: 8, delta: 1e-5)
        options.adaptiveClip = try AdaptiveClipSettings()
        options.nextClipOutput = clip
        var pending: [UInt8] = []
        var keysMode: mode_t = 0
        #expect(throws: Crash.self) {
            try CentralRelease.release(sumPath: input, output: output, options: options, source: SystemNoiseSource()) {
                let temporary = try #require(try dir.listing().first { $0.hasPrefix(".noised.") && $0.hasSuffix(".tmp") })
                pending = try readBytes(dir.path + "/" + temporary)
                var info = stat()
                #expect(stat(keys, &info) == 0)
                keysMode = info.st_mode & 0o777
                throw Crash()
            }
        }
        let charged = try readBytes(ledger)
        #expect(try PrivacyLedger.read(path: ledger).entries.count == 1 && !fileExists(output))
        #expect(keysMode == 0o600 && !pending.isEmpty)
        let recorded = try ReleaseKeys.read(path: keys)
        #expect(recorded.count == 1 && recorded[0].round == 4 && recorded[0].key.count == 32)
        let firstClip = try String(contentsOfFile: clip, encoding: .utf8)

        let report = try CentralRelease.release(sumPath: input, output: output, options: options, source: SystemNoiseSource())
        #expect(try readBytes(output) == pending)
        #expect(try readBytes(ledger) == charged)
        #expect(try String(contentsOfFile: clip, encoding: .utf8) == firstClip)
        #expect(try ReleaseKeys.read(path: keys).isEmpty)
        let eps = try RDPAccountant().epsilon(sampleRate: 0.1, noiseMultiplier: 2, steps: 1, delta: 1e-5).epsilon
        #expect(report.epsilon == eps)

        // Once complete, the key is gone: releasing the sum again is a new release, charged, with new noise.
        try CentralRelease.release(sumPath: input, output: output + "2", options: options, source: SystemNoiseSource())
        #expect(try PrivacyLedger.read(path: ledger).entries.count == 2)
        #expect(try readBytes(output + "2") != pending)
    }

    @Test("a key recorded without its ledger line (crash before the append), another sum, or other settings: a new release, charged")
    func noReplayWithoutCharge() throws {
        let dir = try TemporaryDirectory()
        let input = dir.path + "/sum", ledger = dir.path + "/ledger.jsonl", keys = ReleaseKeys.path(ledger: ledger)
        try sum().write(to: input, kind: .sum)
        let identity = try SafeTensorsFile(file: MappedFile(path: input)).identity
        try ReleaseKeys.record(PendingRelease(round: 4, sum: identity, key: [UInt8](repeating: 7, count: 32), line: String(repeating: "0", count: 64)), to: keys)
        var options = DPReleaseOptions(noiseMultiplier: 2, ledger: ledger)
        try CentralRelease.release(sumPath: input, output: dir.path + "/a", options: options, source: SystemNoiseSource())
        #expect(try PrivacyLedger.read(path: ledger).entries.count == 1 && ReleaseKeys.read(path: keys).isEmpty)

        // Crash after the line, then a rerun with another z: that is another release.
        #expect(throws: Crash.self) {
            try CentralRelease.release(sumPath: input, output: dir.path + "/b", options: options, source: SystemNoiseSource()) { throw Crash() }
        }
        options.noiseMultiplier = 3
        try CentralRelease.release(sumPath: input, output: dir.path + "/b", options: options, source: SystemNoiseSource())
        #expect(try PrivacyLedger.read(path: ledger).entries.map(\.noiseMultiplier) == [2, 2, 3])
    }

    @Test("release keys: mode 600 even over a wider file, a torn last record is dropped, a bad line is corrupt")
    func releaseKeysFile() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/l.keys"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(), attributes: [.posixPermissions: 0o644]))
        let a = PendingRelease(round: 1, sum: "s1", key: Array(0..<32), line: "h1")
        let b = PendingRelease(round: 2, sum: "s2", key: [UInt8](repeating: 255, count: 32), line: "h2")
        try ReleaseKeys.record(a, to: path)
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data("{\"key\":\"00".utf8))  // a record cut off by a crash
        try handle.close()
        #expect(try ReleaseKeys.read(path: path) == [a])
        try ReleaseKeys.record(b, to: path)
        #expect(try ReleaseKeys.read(path: path) == [a, b])
        #expect(try String(contentsOfFile: path, encoding: .utf8).hasPrefix(#"{"key":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f","line":"h1","round":1,"sum":"s1"}"#))
        try ReleaseKeys.remove(round: 1, sum: "s1", from: path)
        #expect(try ReleaseKeys.read(path: path) == [b])
        try "{\"round\":1}\n".write(toFile: path, atomically: false, encoding: .utf8)
        let error = try #require(throws: FedRecError.self) { try ReleaseKeys.read(path: path) }
        #expect(error.failure == .corrupt && error.file == path && error.message.contains("line 1"))
        #expect(try ReleaseKeys.read(path: dir.path + "/missing").isEmpty)
    }
}
