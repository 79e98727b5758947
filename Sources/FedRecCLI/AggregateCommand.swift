import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecFormats
import FedRecModel
import FedRecWire
import FedRecAggregation

/// `fl-aggregate`: sums updates; with `--model`, applies the round's server step.
public struct AggregateCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-aggregate",
        abstract: "Sum updates, and with --model apply the server step to get the next model.",
        discussion: """
            Sums are associative: sum shards into racks and racks into a total, in any tree. \
            Masked updates (secure aggregation, fl-secagg) are summed mod 2^b into a masked sum. \
            Updates computed from another model, of another shape or from another round are \
            refused. Update paths come as arguments, or one per line on stdin when none are given.

            Each touched item row is averaged over the clients that touched it (--row-average \
            touched), so a row trained by 3 of 943 clients is not diluted by 940 zeros; then the \
            server optimiser (FedAvg, FedAvgM, FedAdam, FedYogi; Reddi et al. 2021) applies it.

            Examples:
              fl-aggregate update-0003-*.safetensors -o sum-0003.safetensors
              ls update-0003-* | fl-aggregate --model model-0003.safetensors \\
                  -o model-0004.safetensors
              fl-aggregate sum-a.safetensors sum-b.safetensors --model m3.safetensors \\
                  --server-optimizer fedadam --server-lr 0.01 -o m4.safetensors
              ls update-0003-* | fl-aggregate --model m3.safetensors --l2 5 \\
                  --item-text item-text.safetensors --text-l2 1 -o m4.safetensors

            With a large catalogue, the next model is written as an overlay when few rows changed \
            (--checkpoint auto): the changed rows since the last standalone checkpoint, which it \
            names as its base (keep the two together; fl-compact makes a standalone copy). A round \
            then costs what the clients' data costs, not what the catalogue costs.

            ALS updates into the next model are merged as they stream (the inputs' sorted \
            item rows, k ways), each item solved as its summed row arrives: memory holds one \
            row, not every item's Gram block, and the model is the one the whole sum gives.

            Content-aware implicit ALS (a model made with fl-init --item-text): after the item \
            solve, the server fits the text projection W by ridge regression of the trained item \
            vectors on their text embeddings (λ_W = --text-l2), keeps trained rows, and sets every \
            row no client trained to W·t. Clients are unchanged; no client data is used.
            """,
        version: fedrecVersion)

    @Argument(help: "Update or sum files; none: read paths from stdin.") var updates: [String] = []
    @Option(name: [.short, .long], help: "Output: the sum, or with --model the next model (- for stdout).") var output: String
    @Option(help: "Apply the sum to this model (the one the updates were computed from).") var model: String?
    @Option(help: "Server optimiser: fedavg, fedavgm, fedadam or fedyogi.") var serverOptimizer: ServerOptions.Optimizer = .fedavg
    @Option(help: "Server learning rate η.") var serverLr: Float = 1
    @Option(help: "β₁ (momentum) of FedAvgM / FedAdam / FedYogi.") var beta1: Float = 0.9
    @Option(help: "β₂ of FedAdam / FedYogi.") var beta2: Float = 0.99
    @Option(help: "Adaptivity τ of FedAdam / FedYogi.") var tau: Float = 1e-3
    @Option(help: "Divide each row's sum by the weight of the clients that touched it (touched), by the round's total weight (all), or not at all (sum).")
    var rowAverage: ServerOptions.RowAverage = .touched
    @Flag(help: "A calibration round of a CTR model (lr, fm): only the intercept moves, by one Newton step on the training examples' log loss from the clients' statistics (they ran fl-train-local --epochs 0).")
    var calibrateBias = false
    @Option(help: "Divide by this fixed expected weight (q·N) instead (client-level DP).") var fixedDenominator: Double?
    @Option(help: "λ of the ALS item step.") var l2: Float = 0.05
    @Option(help: "λ of item biases in the explicit ALS item step (default: --l2).") var l2Bias: Float?
    @Option(help: "Item text embeddings of a content-aware wals model (the table given to fl-init --item-text).") var itemText: String?
    @Option(help: "λ_W of the ridge fit of the text projection W.") var textL2: Double = 1
    @Option(help: "Private ALS: items whose noised count is below N are not solved (default: 3σ of the release's noise).") var dpMinCount: Double?
    @Option(help: "The next model as an overlay of changed rows on its base (overlay), with every row (standalone), or overlay when few rows of a large model changed (auto).")
    var checkpoint: CheckpointLayout = .auto
    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func validate() throws {
        guard serverLr > 0, tau > 0, (0..<1).contains(beta1), (0..<1).contains(beta2), l2 >= 0 else {
            throw ValidationError("--server-lr and --tau must be positive, --beta1/--beta2 in [0, 1), --l2 ≥ 0")
        }
        guard textL2 > 0 else { throw ValidationError("--text-l2 must be positive") }
        if let fixedDenominator, fixedDenominator <= 0 { throw ValidationError("--fixed-denominator must be positive") }
    }

    public func run() throws {
        try reportingErrors("fl-aggregate") {
            if itemText != nil && model == nil { throw FedRecError(.usage, "--item-text applies to the server step: give --model") }
            var paths = updates
            if paths.isEmpty {
                while let line = readLine() {
                    let path = line.trimmingCharacters(in: .whitespaces)
                    if !path.isEmpty { paths.append(path) }
                }
            }
            guard !paths.isEmpty else { throw FedRecError(.emptyInput, file: "-", "no update files given (as arguments or on stdin)") }
            let base = try model.flatMap { try ModelView.basePath(of: $0) }
            try FileRoles(inputs: paths + [model, base, itemText], outputs: [output]).check()
            if try MaskedUpdateFile.isMasked(paths[0]) {
                // Secure aggregation: a masked sum mod 2^b, to be unmasked by fl-secagg unmask.
                guard model == nil else {
                    throw FedRecError(.usage, file: paths[0], "is masked: sum the masked updates, unmask the sum (fl-secagg unmask), then apply it with --model")
                }
                let masked = try MaskedUpdateFile.sum(paths: paths)
                try masked.write(to: output, kind: .maskedSum)
                return
            }
            if calibrateBias, let model, try ![.lr, .fm].contains(ModelFamily.of(model: model)) {
                throw FedRecError(.usage, file: model, "--calibrate-bias is for CTR models (lr, fm)")
            }
            if try ItemPairSum.isPairSum(paths[0]) { return try aggregateGraphFilter(paths) }
            // ALS into the next model: merged as the updates stream, each item solved as it comes.
            if let model, try ModelFamily.of(model: model) == .mf, let stream = try ALSSumStream.open(paths: paths) {
                let options = try serverOptions()
                warnWithoutUserSettings(stream.header)
                let next = try ServerStep.apply(stream, sumFile: paths.count == 1 ? paths[0] : "the sum of \(paths.count) updates", to: model, options: options)
                let written = try next.write(to: output, layout: checkpoint)
                if format.json && output != "-" {
                    try emit(ServerStep.summary(model: output, round: next.round, written: written, clients: stream.header.clients, rows: stream.rowCount).canonicalText)
                }
                return
            }
            let sum = try ModelUpdate.sum(paths: paths)
            if let model {
                let options = try serverOptions()
                let family = try ModelFamily.of(model: model)
                // Only MF and NCF have a user side, rebuilt with the recorded settings.
                if family == .mf || family == .ncf { warnWithoutUserSettings(sum.header) }
                let sumFile = paths.count == 1 ? paths[0] : "the sum of \(paths.count) updates"
                let written: (identity: String, overlay: Bool), round: Int
                if family == .mf {
                    let next = try ServerStep.apply(sum, sumFile: sumFile, to: model, options: options)
                    written = try next.write(to: output, layout: checkpoint)
                    round = next.round
                } else {
                    guard options.itemText == nil else { throw FedRecError(.usage, file: model, "--item-text applies to mf models only") }
                    let next = try TensorServerStep.apply(sum, sumFile: sumFile, to: model, options: options)
                    written = (try next.write(to: output), false)
                    round = next.round
                }
                if format.json && output != "-" {
                    try emit(ServerStep.summary(model: output, round: round, written: written, sum: sum).canonicalText)
                }
            } else {
                try sum.write(to: output, kind: .sum)
                if format.json && output != "-" {
                    try emit(sum.summary(path: output).canonicalText)
                }
            }
        }
    }

    /// Co-occurrence statistics (gfcf): their sum, or with --model the fitted filter.
    func aggregateGraphFilter(_ paths: [String]) throws {
        if itemText != nil { throw FedRecError(.usage, "--item-text applies to mf models only") }
        let sum = try ItemPairSum.sum(paths: paths)
        guard let model else {
            try sum.write(to: output, kind: .sum)
            if format.json && output != "-" { try emit(sum.summary(path: output).canonicalText) }
            return
        }
        let next = try GraphFilterFit.apply(sum, sumFile: paths.count == 1 ? paths[0] : "the sum of \(paths.count) updates", to: model,
                                            threads: Processors.online)
        let identity = try next.write(to: output)
        if format.json && output != "-" {
            try emit(JSONValue.object([
                "model": .string(output), "identity": .string(identity), "round": .number(Double(next.round)),
                "clients": .number(Double(sum.header.clients)), "pairs": .number(Double(next.filter.nonzeros)),
                "eigenvalue_top": .number(Double(next.eigenvalues.first ?? 0)), "eigenvalue_last": .number(Double(next.eigenvalues.last ?? 0)),
            ]).canonicalText)
        }
    }

    /// The server step's settings from the options.
    func serverOptions() throws -> ServerOptions {
        var options = ServerOptions()
        options.optimizer = serverOptimizer
        options.learningRate = serverLr
        options.beta1 = beta1
        options.beta2 = beta2
        options.tau = tau
        options.rowAverage = rowAverage
        options.calibrateBias = calibrateBias
        options.fixedDenominator = fixedDenominator
        options.l2 = l2
        options.l2Bias = l2Bias
        options.dpMinCount = dpMinCount
        options.itemText = try itemText.map { try TextEmbeddingTable.load($0) }
        options.textL2 = textL2
        return options
    }

    func warnWithoutUserSettings(_ header: UpdateHeader) {
        guard header.extra[UserSettingsMetadata.key] == nil else { return }
        var stderr = StandardError()
        print("fl-aggregate: warning: the updates record no common user-side settings (\(UserSettingsMetadata.key)); fl-eval and fl-recommend of the next model need the training flags", to: &stderr)
    }
}

import Foundation
