import FedRecMechanisms
import FedRecModel
import FedRecSupport
import FedRecWire

/// Private ALS at the server (Chien et al., "Private Alternating Least Squares", ICML
/// 2021): the round's summed ALS statistics, from users whose contributions are bounded
/// (`ALSContributionBounds`), get Gaussian noise of standard deviation z·Δ on every value
/// a release shows, for every item of the catalogue (a row left out would tell that
/// nobody touched it). Symmetric Grams are noised on their upper triangle and mirrored;
/// each item's count (`row_weight`) is noised with the same σ and is what the server step
/// reads to skip items drowned by the noise. One release is one Gaussian mechanism of
/// sensitivity Δ, charged like a sampled Gaussian at the round's sampling rate (1 when
/// every client takes part).
public enum PrivateALSRelease {
    /// Values one release noises for a model: per item the Gram's upper triangle, the
    /// right-hand side and the count; then the dense part (its triangle for WALS).
    public static func coordinates(_ config: ModelConfig, sharesItemGram: Bool = true) -> Int {
        let sizes = ReleasedValues(config, sharesItemGram: sharesItemGram)
        return config.items * sizes.perItem + sizes.dense
    }

    /// How many values a release holds per item and for the dense part.
    struct ReleasedValues {
        /// n: the width of an item's system (d for WALS, d + 1 explicit).
        let n: Int
        /// The item Gram's upper triangle (0 when the Grams are not shared).
        let triangle: Int
        let perItem: Int
        let dense: Int

        init(_ config: ModelConfig, sharesItemGram: Bool) {
            let wals = config.objective == .wals
            n = wals ? config.dim : config.dim + 1
            triangle = sharesItemGram ? n * (n + 1) / 2 : 0
            perItem = triangle + n + 1
            dense = wals ? config.dim * (config.dim + 1) / 2 : 2
        }
    }

    /// The per-user bounds a sum of ALS statistics records.
    /// - Throws: `.usage` for statistics that record none (trained without them).
    public static func bounds(of header: UpdateHeader) throws -> ALSContributionBounds {
        guard let bounds = try ALSContributionBounds(metadata: header.extra) else {
            throw FedRecError(.usage, "the ALS statistics are not bounded per user; train with fl-train-local --dp-max-items K --dp-user-clip G")
        }
        return bounds
    }

    /// The noised statistics of every item and the noised dense part.
    /// - Returns: the noised sum, the grid spacing and σ.
    /// - Throws: `.usage` for a sum that is not bounded ALS statistics or already noised;
    ///   `.shape` for tensors that do not fit the model.
    public static func noisedSum(
        _ sum: ModelUpdate, noiseMultiplier z: Double, source: any NoiseSource
    ) throws -> (update: ModelUpdate, granularity: Double, sigma: Double) {
        let h = sum.header
        guard h.extra[DPMetadata.mechanism] == nil else { throw FedRecError(.usage, "the sum is already noised") }
        guard h.algorithm == .als else { throw FedRecError(.usage, "private ALS releases ALS statistics, not \(h.algorithm) deltas") }
        let bounds = try bounds(of: h)
        guard h.weighting == .uniform else { throw FedRecError(.usage, "private ALS needs --weighting uniform, got \(h.weighting)") }
        guard z > 0, z.isFinite else { throw FedRecError(.usage, "need a positive noise multiplier, got \(z)") }
        let config = h.config
        let wals = config.objective == .wals
        let d = config.dim, items = config.items
        let layout = ALSStatistics.rowLayout(config)
        let denseName = ALSStatistics.denseName(config)
        // With the mean-field item Gram nothing of the item Grams is released (they are
        // zero in the clients' statistics and stay zero).
        let sharesGram = bounds.sharesItemGram(config)
        let sizes = ReleasedValues(config, sharesItemGram: sharesGram)
        let n = sizes.n, perItem = sizes.perItem
        guard let gram = sum.rowTensors[layout[0].name], gram.width == n * n,
            let rhs = sum.rowTensors[layout[1].name], rhs.width == n,
            let dense = sum.dense[denseName], dense.count == ALSStatistics.denseCount(config),
            sum.rowWeight.count == sum.rows.count
        else { throw FedRecError(.shape, "ALS statistics do not fit a \(config.objective.rawValue) model of d=\(d)") }
        // One vector of every released value, untouched items' zeros included.
        var values = [Float](repeating: 0, count: items * perItem + sizes.dense)
        for (r, row) in sum.rows.enumerated() {
            let item = Int(row)
            guard item >= 0, item < items else { throw FedRecError(.shape, "row \(item) is outside the catalogue of \(items) items") }
            let at = item * perItem
            if sharesGram { packUpper(gram.values, from: r * n * n, n: n, into: &values, at: at) }
            for i in 0..<n { values[at + sizes.triangle + i] = rhs.values[r * n + i] }
            values[at + sizes.triangle + n] = sum.rowWeight[r]
        }
        // The dense part goes out scaled by w (`denseWeight`): its noise is σ/w.
        let w = Float(bounds.denseWeight(config))
        let denseAt = items * perItem
        if wals {
            packUpper(dense, from: 0, n: d, into: &values, at: denseAt, scale: w)
        } else {
            values[denseAt] = dense[0] * w
            values[denseAt + 1] = dense[1] * w
        }
        let delta = bounds.sensitivity(config)
        let g = try DPNoise.addNoise(to: &values, clip: delta, noiseMultiplier: z, source: source)
        let sigma = DPNoise.sigma(clip: delta, noiseMultiplier: z, granularity: g, coordinates: values.count)

        // Back to the update's layout: full symmetric Grams, every item a row.
        var gramOut = [Float](repeating: 0, count: items * n * n)
        var rhsOut = [Float](repeating: 0, count: items * n)
        var counts = [Float](repeating: 0, count: items)
        for item in 0..<items {
            let at = item * perItem
            if sharesGram { unpackUpper(values, at: at, n: n, into: &gramOut, from: item * n * n) }
            for i in 0..<n { rhsOut[item * n + i] = values[at + sizes.triangle + i] }
            counts[item] = values[at + sizes.triangle + n]
        }
        var denseOut = [Float](repeating: 0, count: dense.count)
        if wals {
            unpackUpper(values, at: denseAt, n: d, into: &denseOut, from: 0, dividedBy: w)
        } else {
            denseOut[0] = values[denseAt] / w
            denseOut[1] = values[denseAt + 1] / w
        }
        var header = h
        header.clients = max(h.population, h.clients)
        // A noised count can exceed the population or fall below 0; the file's row_clients
        // must lie in 0…clients (the count itself stays noised in row_weight).
        let most = Float(header.clients)
        header.extra[DPMetadata.mechanism] = LedgerEntry.alsGaussian
        header.extra[DPMetadata.noiseMultiplier] = "\(z)"
        header.extra[DPMetadata.sampleRate] = "\(h.sampleRate ?? 1)"
        header.extra[DPMetadata.granularity] = "\(g)"
        header.extra[DPMetadata.noiseStddev] = "\(sigma)"
        header.extra[DPMetadata.isPrivate] = source.isCryptographicallySecure && !h.hasPublicSample ? "true" : "false"
        let update = ModelUpdate(
            header: header, rows: (0..<Int32(items)).map { $0 },
            rowClients: counts.map { Int32(max(0, min($0.rounded(), most))) }, rowWeight: counts,
            rowTensors: [layout[0].name: RowTensor(width: n * n, values: gramOut), layout[1].name: RowTensor(width: n, values: rhsOut)],
            dense: [denseName: denseOut])
        return (update, g, sigma)
    }

    /// Copies the upper triangle (diagonal included, row by row) of the n × n matrix at
    /// `matrix[from...]`, times `scale`, to `values[at...]`.
    static func packUpper(_ matrix: [Float], from: Int, n: Int, into values: inout [Float], at: Int, scale: Float = 1) {
        var k = at
        for i in 0..<n {
            for j in i..<n {
                values[k] = matrix[from + i * n + j] * scale
                k += 1
            }
        }
    }

    /// The inverse of `packUpper`: the symmetric n × n matrix whose upper triangle is at
    /// `values[at...]`, divided by `divisor`, written to `matrix[from...]`.
    static func unpackUpper(_ values: [Float], at: Int, n: Int, into matrix: inout [Float], from: Int, dividedBy divisor: Float = 1) {
        var k = at
        for i in 0..<n {
            for j in i..<n {
                matrix[from + i * n + j] = values[k] / divisor
                matrix[from + j * n + i] = values[k] / divisor
                k += 1
            }
        }
    }
}
