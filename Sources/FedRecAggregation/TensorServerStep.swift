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
        try step(sum, model: &model, options: options, file: sumFile)
        model.notes[UserSettingsMetadata.key] = sum.header.extra[UserSettingsMetadata.key]
        model.round += 1
        return model
    }

    static func step(_ sum: ModelUpdate, model: inout TensorModel, options: ServerOptions, file: String) throws {
        let rowNames = model.rowTensorNames
        let denseNames = Set(model.tensors.keys).subtracting(rowNames)
        guard Set(sum.rowTensors.keys) == rowNames, Set(sum.dense.keys) == denseNames else {
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
}
