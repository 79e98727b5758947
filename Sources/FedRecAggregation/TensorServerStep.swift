import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecWire

/// Applies one round's sum to a `TensorModel` (every family but matrix factorisation).
///
/// The sum holds, for each row tensor, the weighted deltas of the rows some client
/// touched, and for each dense tensor the weighted delta of all of it (`ModelUpdate`).
/// A touched row moves by its summed delta over the weight of the clients that touched it
/// (`--row-average touched`, as MF's item rows), over the round's total weight (`all`) or
/// not divided (`sum`); a dense tensor by its summed delta over the total weight (FedAvg,
/// McMahan et al. 2017, weights n_k / n), or not divided under `sum`. `--fixed-denominator`
/// (client-level DP) divides every tensor by that. The server optimiser then moves each
/// parameter (`ServerOptions.move`: FedAvg, FedAvgM, FedAdam, FedYogi), its moments kept
/// in the checkpoint for every parameter of the model.
public enum TensorServerStep {
    /// - Returns: the next model (round + 1).
    /// - Throws: `.mismatch` when the sum was computed from another model or round;
    ///   `.shape` when it does not hold exactly the model's tensors.
    public static func apply(_ sum: ModelUpdate, sumFile: String, to modelPath: String, options: ServerOptions) throws -> TensorModel {
        let (start, identity) = try TensorModel.open(modelPath)
        try sum.header.requireComputed(from: start.config, identity: identity, round: start.round, modelPath: modelPath, sumFile: sumFile)
        guard sum.header.algorithm == .sgd else {
            throw FedRecError(.shape, file: sumFile, "holds \(sum.header.algorithm.rawValue) statistics; a \(start.config.modelType) model takes parameter deltas (sgd)")
        }
        var model = start
        if options.calibrateBias {
            let bias = try newtonIntercept(sum, model: model, file: sumFile)
            model.tensors[CTRModel.biasName]?.values = [bias]
        } else {
            try step(sum, model: &model, options: options, file: sumFile)
        }
        model.notes[UserSettingsMetadata.key] = sum.header.extra[UserSettingsMetadata.key]
        model.round += 1
        return model
    }

    static func step(_ sum: ModelUpdate, model: inout TensorModel, options: ServerOptions, file: String) throws {
        let rowNames = model.rowTensorNames
        let denseNames = Set(model.tensors.keys).subtracting(rowNames)
        // Statistics the clients sent beside their deltas (`stat.` names) are not parameters.
        let parameterNames = Set(sum.dense.keys.filter { !$0.hasPrefix(ModelUpdate.statisticsPrefix) })
        guard Set(sum.rowTensors.keys) == rowNames, parameterNames == denseNames else {
            let held = (sum.rowTensors.keys.map { "rows." + $0 } + sum.dense.keys.map { "dense." + $0 }).sorted()
            let expected = (rowNames.map { "rows." + $0 } + denseNames.map { "dense." + $0 }).sorted()
            throw FedRecError(.shape, file: file, "holds tensors \(held), the model takes \(expected)")
        }
        for name in rowNames {
            guard let tensor = model.tensors[name], let rows = sum.rowTensors[name], rows.width == tensor.rowWidth,
                rows.values.count == sum.rows.count * rows.width
            else { throw FedRecError(.shape, file: file, "tensor rows.\(name) does not have the model's row width") }
        }
        for name in denseNames {
            guard let tensor = model.tensors[name], let delta = sum.dense[name], delta.count == tensor.values.count else {
                throw FedRecError(.shape, file: file, "tensor dense.\(name) does not have the model's \(model.tensors[name]?.values.count ?? 0) values")
            }
        }
        guard sum.rows.allSatisfy({ $0 >= 0 && Int($0) < model.config.items }) else {
            throw FedRecError(.shape, file: file, "holds rows outside the model's \(model.config.items)")
        }
        let totalWeight = try options.begin(notes: &model.notes, weight: sum.header.weight, file: file)
        let needsM = options.usesFirstMoment, needsV = options.usesSecondMoment

        // Each tensor in one pass: its values and moments taken out of the model, moved,
        // and put back (no copy per row).
        func update(_ name: String, _ body: (_ move: (_ i: Int, _ delta: Float) -> Void) -> Void) {
            guard var values = model.tensors[name]?.values else { return }
            var m = needsM ? model.serverState["m." + name] ?? [Float](repeating: 0, count: values.count) : []
            var v = needsV ? model.serverState["v." + name] ?? [Float](repeating: options.tau * options.tau, count: values.count) : []
            var unusedM: Float = 0, unusedV: Float = 0
            body { i, delta in
                switch (needsM, needsV) {
                case (true, true): values[i] += options.move(delta, &m[i], &v[i])
                case (true, false): values[i] += options.move(delta, &m[i], &unusedV)
                default: values[i] += options.move(delta, &unusedM, &unusedV)
                }
            }
            model.tensors[name]?.values = values
            if needsM { model.serverState["m." + name] = m }
            if needsV { model.serverState["v." + name] = v }
        }

        for name in rowNames.sorted() {
            guard let rows = sum.rowTensors[name] else { continue }
            let w = rows.width
            update(name) { move in
                for (r, row) in sum.rows.enumerated() {
                    let denominator = options.rowDenominator(rowWeight: sum.rowWeight[r], totalWeight: totalWeight)
                    guard denominator > 0 else { continue }
                    let scale = Float(1 / denominator)
                    for k in 0..<w { move(Int(row) * w + k, rows.values[r * w + k] * scale) }
                }
            }
        }
        let denseScale = Float(1 / (options.rowAverage == .sum && options.fixedDenominator == nil ? 1 : totalWeight))
        for name in denseNames.sorted() {
            guard let delta = sum.dense[name] else { continue }
            update(name) { move in
                for i in delta.indices { move(i, delta[i] * denseScale) }
            }
        }
    }

    /// The intercept after one Newton step from the sum's statistics (`calibrateBias`).
    /// - Throws: `.usage` for a model other than lr or fm, or a sum whose clients trained
    ///   (a calibration round's clients send statistics only, `--epochs 0`); `.shape` when
    ///   the sum holds no statistics of the intercept (updates of an earlier
    ///   fl-train-local) or a curvature that is not positive.
    static func newtonIntercept(_ sum: ModelUpdate, model: TensorModel, file: String) throws -> Float {
        guard ["lr", "fm"].contains(model.config.modelType), let bias = model.tensors[CTRModel.biasName]?.values, bias.count == 1 else {
            throw FedRecError(.usage, "--calibrate-bias is for CTR models (lr, fm), not \(model.config.modelType)")
        }
        guard let statistics = sum.dense[CTRModel.biasResidualName], statistics.count == 2 else {
            throw FedRecError(.shape, file: file, "holds no dense.\(CTRModel.biasResidualName): --calibrate-bias needs updates that carry the intercept's statistics (fl-train-local of this version)")
        }
        let trained = sum.rowTensors.values.contains { $0.values.contains { $0 != 0 } }
            || sum.dense.contains { !$0.key.hasPrefix(ModelUpdate.statisticsPrefix) && $0.value.contains { $0 != 0 } }
        guard !trained else {
            throw FedRecError(.usage, file: file, "holds parameter changes: a calibration round's clients train no epochs (fl-train-local --epochs 0), and --calibrate-bias would discard them")
        }
        let (gradient, curvature) = (Double(statistics[0]), Double(statistics[1]))
        guard curvature > 0, gradient.isFinite, curvature.isFinite else {
            throw FedRecError(.shape, file: file, "dense.\(CTRModel.biasResidualName) has curvature \(curvature): no Newton step")
        }
        return Float(Double(bias[0]) - gradient / curvature)
    }
}
