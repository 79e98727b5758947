import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecAggregation
import FedRecSupport
import FedRecModel
import FedRecWire

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

    /// Two rounds with `options`: the fixture's sum (averaged Δ: 0.2 for both touched
    /// embeddings, 0.1 for their biases and the global bias), then the same sum scaled by
    /// 0.1 against the first round's model. Returns both next models.
    func twoRounds(_ options: ServerOptions) throws -> (first: ModelRevision, second: ModelRevision) {
        let (dir, path, sum) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        let first = try ServerStep.apply(sum, sumFile: "s", to: path, options: options)
        let firstPath = dir.path + "/m1"
        let identity = try first.standalone().write(to: firstPath)
        var second = sum
        second.header.baseModel = identity
        second.header.round = 1
        for name in second.rowTensors.keys { second.rowTensors[name]!.values = second.rowTensors[name]!.values.map { $0 * 0.1 } }
        second.dense["global_bias"] = second.dense["global_bias"]!.map { $0 * 0.1 }
        return (first, try ServerStep.apply(second, sumFile: "s", to: firstPath, options: options))
    }

    func close(_ a: Float, _ b: Double, _ what: String) {
        #expect(abs(Double(a) - b) < 1e-6, "\(what): \(a), expected \(b)")
    }

    /// FedAvgM (Hsu et al. 2019, as Reddi et al. 2021 list it): m ← β₁ m + Δ, θ ← θ + η m,
    /// with β₁ = 0.9, η = 0.5, by hand: round 1 m = 0.2 → θ = 1 + 0.5·0.2 = 1.1; round 2
    /// (Δ = 0.02) m = 0.9·0.2 + 0.02 = 0.2 → θ = 1.1 + 0.5·0.2 = 1.2 (plain FedAvg: 1.11).
    /// Biases (Δ = 0.1, then 0.01): 0.05, then 0.05 + 0.5·(0.09 + 0.01) = 0.1.
    @Test("FedAvgM follows m ← β₁m + Δ, θ ← θ + ηm over two rounds, by hand")
    func fedAvgM() throws {
        var options = ServerOptions()
        options.optimizer = .fedavgm
        options.learningRate = 0.5
        let (first, second) = try twoRounds(options)
        let a = try first.standalone(), b = try second.standalone()
        for (item, value) in [(0, 1.0), (1, 1.1), (2, 1.0), (3, 1.1)] { close(a.itemEmbedding[item], value, "round 1 item \(item)") }
        for (item, value) in [(0, 1.0), (1, 1.2), (2, 1.0), (3, 1.2)] { close(b.itemEmbedding[item], value, "round 2 item \(item)") }
        for (item, value) in [(0, 0.0), (1, 0.1), (2, 0.0), (3, 0.1)] { close(b.itemBias[item], value, "round 2 bias \(item)") }
        close(a.globalBias, 3.05, "round 1 global bias")
        close(b.globalBias, 3.1, "round 2 global bias")
        // State: momentum per trained row (embedding, bias), no second moment.
        #expect(second.serverState?.rows == [1, 3] && second.serverState?.v == [])
        for (i, value) in [0.2, 0.1, 0.2, 0.1].enumerated() { close(second.serverState?.m[i] ?? .nan, value, "m[\(i)]") }
        close(second.serverState?.global[0] ?? .nan, 0.1, "global m")
        #expect(b.notes["server_optimizer"] == "fedavgm")
    }

    /// FedYogi, Algorithm 2 of Reddi et al. 2021 ("Adaptive Federated Optimization"), with
    /// v₋₁ = τ²: m ← β₁m + (1−β₁)Δ; v ← v − (1−β₂)Δ² sign(v − Δ²); θ ← θ + η m/(√v + τ).
    /// Round 1 has v < Δ² (v grows), round 2 v > Δ² (v shrinks by (1−β₂)Δ², where Adam's
    /// would shrink by (1−β₂)v: 0.1902532 for the embedding). Expected values (float64):
    ///
    ///     python3 -c "
    ///     def yogi(ds, eta=0.1, b1=0.9, b2=0.99, tau=1e-3):
    ///       x=m=0; v=tau*tau; out=[]
    ///       for d in ds: m=b1*m+(1-b1)*d; s=(v>d*d)-(v<d*d); v=v-(1-b2)*d*d*s; x+=eta*m/(v**.5+tau); out.append(x)
    ///       return out
    ///     print(yogi([0.2,0.02]), yogi([0.1,0.01]))"
    ///
    /// prints [0.09512492197250386, 0.1907050171501365] [0.09049875621120884, 0.18140784712029967]:
    /// the changes of an embedding (start 1) and of a bias or the global bias (start 0, 3).
    @Test("FedYogi follows Reddi et al.'s Algorithm 2 over two rounds, against a Python computation")
    func fedYogi() throws {
        var options = ServerOptions()
        options.optimizer = .fedyogi
        options.learningRate = 0.1
        let (first, second) = try twoRounds(options)
        let a = try first.standalone(), b = try second.standalone()
        for item in [1, 3] {
            close(a.itemEmbedding[item], 1 + 0.09512492197250386, "round 1 item \(item)")
            close(b.itemEmbedding[item], 1 + 0.1907050171501365, "round 2 item \(item)")
            close(a.itemBias[item], 0.09049875621120884, "round 1 bias \(item)")
            close(b.itemBias[item], 0.18140784712029967, "round 2 bias \(item)")
        }
        #expect(b.itemEmbedding[0] == 1 && b.itemEmbedding[2] == 1 && b.itemBias[0] == 0 && b.itemBias[2] == 0)
        close(a.globalBias, 3 + 0.09049875621120884, "round 1 global bias")
        close(b.globalBias, 3 + 0.18140784712029967, "round 2 global bias")
        // v by hand: round 1 τ² + 0.01·0.04 = 0.000401; round 2 0.000401 − 0.01·0.0004 = 0.000397.
        close(second.serverState?.v[0] ?? .nan, 0.000397, "v of item 1's embedding")
        // m: 0.1·0.2 = 0.02, then 0.9·0.02 + 0.1·0.02 = 0.02.
        close(second.serverState?.m[0] ?? .nan, 0.02, "m of item 1's embedding")
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
