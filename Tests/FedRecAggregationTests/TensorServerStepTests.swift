import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecAggregation
import FedRecSupport
import FedRecModel
import FedRecWire

@Suite("tensor server step: row and dense tensors of a non-MF model")
struct TensorServerStepTests {
    /// An NCF-shaped model: a row tensor `item` [3, 2] and a dense tensor `tower` [2],
    /// and a sum from 4 clients (total weight 4) touching items 0 (weight 2) and 2 (weight 1).
    func fixture() throws -> (TemporaryDirectory, String, ModelUpdate) {
        let dir = try TemporaryDirectory()
        let config = ModelConfig(family: .ncf, objective: .bce, dim: 2, items: 3, datasetId: "d")
        let model = TensorModel(config: config, tensors: ["item": Tensor(shape: [3, 2], values: [1, 2, 3, 4, 5, 6]), "tower": Tensor(shape: [2], values: [10, 20])],
                                rowTensorNames: ["item"], settings: ["layers": "8,4"])
        let path = dir.path + "/m"
        let identity = try model.write(to: path)
        let header = UpdateHeader(config: config, baseModel: identity, round: 0, algorithm: .sgd, weighting: .examples, clients: 4, weight: 4)
        let sum = ModelUpdate(header: header, rows: [0, 2], rowClients: [2, 1], rowWeight: [2, 1],
                              rowTensors: ["item": RowTensor(width: 2, values: [0.4, -0.2, 0.3, 0.1])], dense: ["tower": [0.8, -0.4]])
        return (dir, path, sum)
    }

    func close(_ a: [Float], _ b: [Double], _ tolerance: Double = 1e-6) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs(Double($0) - $1) < tolerance }
    }

    @Test("FedAvg: touched rows over their clients' weight, dense tensors over the total, untouched rows stay")
    func fedavg() throws {
        let (dir, path, sum) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        let next = try TensorServerStep.apply(sum, sumFile: "s", to: path, options: ServerOptions())
        #expect(next.round == 1)
        let item: [Double] = [1.2, 1.9, 3, 4, 5.3, 6.1]  // 0.4 and −0.2 over weight 2; 0.3 and 0.1 over 1
        let tower: [Double] = [10.2, 19.9]  // 0.8 and −0.4 over the total weight 4
        #expect(close(next.tensors["item"]!.values, item))
        #expect(close(next.tensors["tower"]!.values, tower))
        #expect(next.serverState.isEmpty)
        #expect(next.settings == ["layers": "8,4"])
    }

    @Test("--row-average all and a fixed denominator divide row tensors by the total")
    func allAndFixed() throws {
        let (dir, path, sum) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        var options = ServerOptions()
        options.rowAverage = .all
        let all = try TensorServerStep.apply(sum, sumFile: "s", to: path, options: options)
        #expect(close(all.tensors["item"]!.values, [1.1, 1.95, 3, 4, 5.075, 6.025]))
        options = ServerOptions()
        options.fixedDenominator = 8
        let fixed = try TensorServerStep.apply(sum, sumFile: "s", to: path, options: options)
        #expect(close(fixed.tensors["item"]!.values, [1.05, 1.975, 3, 4, 5.0375, 6.0125]))
        #expect(close(fixed.tensors["tower"]!.values, [10.1, 19.95]))
    }

    @Test("FedAdam: one step from zero moments, its state written and read back")
    func fedadam() throws {
        let (dir, path, sum) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        var options = ServerOptions()
        options.optimizer = .fedadam
        options.learningRate = 0.1
        let next = try TensorServerStep.apply(sum, sumFile: "s", to: path, options: options)
        // Reddi et al. 2021: m = (1 − β1) Δ, v = β2 τ² + (1 − β2) Δ², x += η m / (√v + τ).
        let b1 = 0.9, b2 = 0.99, tau = 1e-3
        func step(_ delta: Double) -> Double {
            let m = (1 - b1) * delta, v = b2 * tau * tau + (1 - b2) * delta * delta
            return 0.1 * m / (v.squareRoot() + tau)
        }
        let tower: [Double] = [10 + step(0.2), 20 + step(-0.1)]
        let item: [Double] = [1 + step(0.2), 2 + step(-0.1), 3, 4, 5 + step(0.3), 6 + step(0.1)]
        #expect(close(next.tensors["tower"]!.values, tower, 1e-5))
        #expect(close(next.tensors["item"]!.values, item, 1e-5))
        #expect(close(next.serverState["m.tower"]!, [0.02, -0.01]))
        let written = dir.path + "/next"
        try next.write(to: written)
        let (read, _) = try TensorModel.open(written, family: .ncf)
        #expect(read.serverState == next.serverState)
        #expect(read.tensors == next.tensors)
        #expect(read.round == 1 && read.notes["server_optimizer"] == "fedadam")
        // Another optimiser over that state is refused.
        let header = UpdateHeader(config: read.config, baseModel: try TensorModel.open(written).identity, round: 1, algorithm: .sgd, weighting: .examples, clients: 4, weight: 4)
        var later = sum
        later.header = header
        #expect(throws: FedRecError.self) { try TensorServerStep.apply(later, sumFile: "s", to: written, options: ServerOptions()) }
    }

    @Test("a sum of another model or round, or with other tensors, is refused")
    func refusals() throws {
        let (dir, path, sum) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        var wrongBase = sum
        wrongBase.header.baseModel = String(repeating: "0", count: 64)
        #expect { try TensorServerStep.apply(wrongBase, sumFile: "s", to: path, options: ServerOptions()) } throws: { ($0 as? FedRecError)?.failure == .mismatch }
        var wrongRound = sum
        wrongRound.header.round = 3
        #expect { try TensorServerStep.apply(wrongRound, sumFile: "s", to: path, options: ServerOptions()) } throws: { ($0 as? FedRecError)?.failure == .mismatch }
        var missing = sum
        missing.dense = [:]
        #expect { try TensorServerStep.apply(missing, sumFile: "s", to: path, options: ServerOptions()) } throws: { ($0 as? FedRecError)?.failure == .shape }
        var calibrate = ServerOptions()
        calibrate.calibrateBias = true
        #expect { try TensorServerStep.apply(sum, sumFile: "s", to: path, options: calibrate) } throws: { ($0 as? FedRecError)?.failure == .usage }
        var als = sum
        als.header.algorithm = .als
        #expect { try TensorServerStep.apply(als, sumFile: "s", to: path, options: ServerOptions()) } throws: { ($0 as? FedRecError)?.failure == .shape }
    }
}
