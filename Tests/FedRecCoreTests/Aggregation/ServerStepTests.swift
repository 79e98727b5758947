import Foundation
import Testing
import FedRecCore
@testable import FedRecAggregation
@testable import FedRecData
@testable import FedRecEvaluation
@testable import FedRecFormats
@testable import FedRecMechanisms
@testable import FedRecModel
@testable import FedRecPrivacy
@testable import FedRecSupport
@testable import FedRecTraining
@testable import FedRecWire

@Suite("server step: row averaging and server optimisers")
struct ServerStepTests {
    /// A 4-item, d = 1 model and a sum touching items 1 and 3.
    func fixture(rowWeight: [Float] = [3, 1]) throws -> (TemporaryDirectory, String, ModelUpdate) {
        let dir = try TemporaryDirectory()
        let config = ModelConfig(objective: .mse, dim: 1, items: 4, datasetId: "d")
        let model = MFModel(config: config, round: 0, itemEmbedding: [1, 1, 1, 1], itemBias: [0, 0, 0, 0], globalBias: 3)
        let path = dir.path + "/m"
        let identity = try model.write(to: path)
        let header = UpdateHeader(config: config, baseModel: identity, round: 0, algorithm: .sgd, weighting: .uniform, clients: 4, weight: 4)
        let sum = ModelUpdate(header: header, rows: [1, 3], rowClients: [3, 1], rowWeight: rowWeight,
                              rowTensors: ["item_embedding": RowTensor(width: 1, values: [0.6, 0.2]), "item_bias": RowTensor(width: 1, values: [0.3, 0.1])],
                              dense: ["global_bias": [0.4]])
        return (dir, path, sum)
    }

    @Test("a row is averaged over the clients that touched it; untouched rows stay")
    func touchedAverage() throws {
        let (dir, path, sum) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        let next = try ServerStep.apply(sum, sumFile: "s", to: path, options: ServerOptions()).standalone()
        #expect(next.round == 1)
        func close(_ a: [Float], _ b: [Float]) -> Bool { zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 } }
        #expect(close(next.itemEmbedding, [1, 1.2, 1, 1.2]))  // 0.6 over 3 clients; 0.2 over 1
        #expect(close(next.itemBias, [0, 0.1, 0, 0.1]))
        #expect(abs(next.globalBias - 3.1) < 1e-6)  // 0.4 over all 4 clients
        #expect(next.itemEmbedding[0] == 1 && next.itemEmbedding[2] == 1)
        #expect(next.serverState == nil)
    }

    @Test("plain FedAvg divides by the round's total weight; a fixed denominator overrides both")
    func allAndFixed() throws {
        let (dir, path, sum) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        var options = ServerOptions()
        options.rowAverage = .all
        #expect(abs(try ServerStep.apply(sum, sumFile: "s", to: path, options: options).standalone().itemEmbedding[1] - 1.15) < 1e-6)
        options.fixedDenominator = 2
        #expect(abs(try ServerStep.apply(sum, sumFile: "s", to: path, options: options).standalone().itemEmbedding[1] - 1.3) < 1e-6)
    }

    @Test("FedAdam follows Reddi et al.'s update; state is kept for trained rows only and grows")
    func fedAdam() throws {
        let (dir, path, sum) = try fixture()
        var options = ServerOptions()
        options.optimizer = .fedadam
        options.learningRate = 0.1
        let next = try ServerStep.apply(sum, sumFile: "s", to: path, options: options).standalone()
        // Row 1: Δ = 0.2; m = 0.1·0.2; v = 0.99τ² + 0.01·0.04; step = η m / (√v + τ).
        let tau: Float = 1e-3, delta: Float = 0.2
        let m = (1 - options.beta1) * delta
        let v = options.beta2 * tau * tau + (1 - options.beta2) * delta * delta
        #expect(abs(next.itemEmbedding[1] - (1 + 0.1 * m / (v.squareRoot() + tau))) < 1e-6)
        #expect(next.itemEmbedding[0] == 1 && next.itemEmbedding[2] == 1)
        #expect(next.serverState?.rows == [1, 3])
        // A second round touching item 0 adds state for it and keeps the others'.
        let nextPath = dir.path + "/m1"
        let identity = try next.write(to: nextPath)
        var second = sum
        second.header.baseModel = identity
        second.header.round = 1
        second.rows = [0, 1]
        let after = try ServerStep.apply(second, sumFile: "s", to: nextPath, options: options)
        #expect(after.serverState?.rows == [0, 1, 3])
        #expect(after.serverState?.m.count == 3 * 2 && after.serverState?.v.count == 3 * 2)
        #expect(after.serverState?.m[4] == next.serverState?.m[2])  // item 3's state carried unchanged
    }

    @Test("a sum from another model or round is refused")
    func mismatches() throws {
        let (dir, path, sum) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        var other = sum
        other.header.baseModel = String(repeating: "0", count: 64)
        #expect((#expect(throws: FedRecError.self) { try ServerStep.apply(other, sumFile: "s", to: path, options: ServerOptions()) })?.failure == .mismatch)
        var late = sum
        late.header.round = 3
        #expect((#expect(throws: FedRecError.self) { try ServerStep.apply(late, sumFile: "s", to: path, options: ServerOptions()) })?.failure == .mismatch)
    }
}
