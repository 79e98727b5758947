import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecModel
import FedRecSupport

/// A Double reference of NeuMF written from the paper's equations, apart from the
/// implementation: z = h·[p_G ⊙ q_G; a_L] + b, a_l = ReLU(W_l a_{l−1} + b_l), a_0 = [p_M; q_M].
struct ReferenceNCF {
    let network: NCFNetwork

    func z(user: [Double], item: [Double], dense: [Double]) -> Double {
        let g = network.gmfDim, m = network.mlpDim
        var top: [Double] = (0..<g).map { user[$0] * item[$0] }
        if m > 0 {
            var a = Array(user[g..<(g + m)]) + Array(item[g..<(g + m)])
            for entry in network.denseLayout where entry.name.hasPrefix("mlp.w") {
                let rows = entry.shape[0], cols = entry.shape[1]
                let bias = network.denseLayout.first { $0.name == "mlp.b" + entry.name.dropFirst(5) }!
                a = (0..<rows).map { j in
                    var s = dense[bias.offset + j]
                    for k in 0..<cols { s += dense[entry.offset + j * cols + k] * a[k] }
                    return max(s, 0)
                }
            }
            top += a
        }
        let out = network.denseLayout.first { $0.name == NCFNetwork.outWeight }!
        let b = network.denseLayout.first { $0.name == NCFNetwork.outBias }!
        return dense[b.offset] + zip(top.indices, top).reduce(0) { $0 + dense[out.offset + $1.0] * $1.1 }
    }
}

@Suite("NCF network: forward pass, gradients, checkpoints, pretraining")
struct NCFNetworkTests {
    func random(_ count: Int, _ g: inout SeededGenerator, scale: Double = 0.5) -> [Float] {
        (0..<count).map { _ in Float(g.nextGaussian() * scale) }
    }

    @Test("GMF and a one-layer NeuMF by hand")
    func byHand() throws {
        // GMF, 2 factors: z = h·(p ⊙ q) + b = 0.5·(1·3) + (−1)·(2·0.5) + 0.25 = 0.75.
        let gmf = try NCFNetwork(variant: .gmf, gmfDim: 2, mlpDim: 0, layers: [])
        var ws = NCFNetwork.Workspace(gmf)
        let z = gmf.forward(user: [1, 2], item: [3, 0.5], dense: [0.5, -1, 0.25], ws: &ws)
        #expect(z == 0.75)
        // NeuMF, 1 factor, MLP embedding 1, one hidden layer of 2:
        // a0 = [p_M, q_M] = [2, −1]; W = [[1, 1], [1, −1]], b = [0, −4] → pre [1, −1], a = [1, 0];
        // z = h·[p_G q_G, a] + b = 2·(0.5·4) + 3·1 + 5·0 + 0.1 = 7.1.
        let neumf = try NCFNetwork(variant: .neumf, gmfDim: 1, mlpDim: 1, layers: [2])
        #expect(neumf.denseLayout.map(\.name) == ["mlp.w0", "mlp.b0", "out.w", "out.b"])
        var ws2 = NCFNetwork.Workspace(neumf)
        let dense: [Float] = [1, 1, 1, -1, 0, -4, 2, 3, 5, 0.1]
        let z2 = neumf.forward(user: [0.5, 2], item: [4, -1], dense: dense, ws: &ws2)
        #expect(abs(z2 - 7.1) < 1e-6)
        // Its gradient with δ = 1, by hand: ∂z/∂h = [2, 1, 0], ∂z/∂b = 1; the error at the
        // hidden layer is [3, 0] (ReLU off for the second unit), so ∂z/∂W0 = [[6, −3], [0, 0]],
        // ∂z/∂b0 = [3, 0], ∂z/∂a0 = 3·[1, 1]; ∂z/∂p = [2·4, 3], ∂z/∂q = [2·0.5, 3].
        var gu: [Float] = [0, 0], gi: [Float] = [0, 0], gd = [Float](repeating: 0, count: dense.count)
        neumf.backward(1, user: [0.5, 2], item: [4, -1], dense: dense, gradUser: &gu, gradItem: &gi, gradDense: &gd, ws: &ws2)
        #expect(gd == [6, -3, 0, 0, 3, 0, 2, 1, 0, 1])
        #expect(gu == [8, 3])
        #expect(gi == [1, 3])
    }

    @Test("backward matches central differences of the Double reference", arguments: NCFVariant.allCases)
    func gradients(variant: NCFVariant) throws {
        let network = try NCFNetwork(variant: variant, gmfDim: 3, mlpDim: 2, layers: [5, 3])
        var g = SeededGenerator(seed: 11)
        let user = random(network.userWidth, &g), item = random(network.userWidth, &g)
        let dense = random(network.denseCount, &g)
        let reference = ReferenceNCF(network: network)
        let u = user.map(Double.init), i = item.map(Double.init), d = dense.map(Double.init)
        var ws = NCFNetwork.Workspace(network)
        let z = network.forward(user: user, item: item, dense: dense, ws: &ws)
        #expect(abs(Double(z) - reference.z(user: u, item: i, dense: d)) < 1e-5)
        let delta: Float = 0.7
        var gu = [Float](repeating: 0, count: user.count), gi = gu, gd = [Float](repeating: 0, count: dense.count)
        network.backward(delta, user: user, item: item, dense: dense, gradUser: &gu, gradItem: &gi, gradDense: &gd, ws: &ws)
        let h = 1e-6
        func numeric(_ f: (Double) -> Double) -> Double { 0.7 * (f(h) - f(-h)) / (2 * h) }
        var worst = 0.0
        for k in u.indices {
            let n = numeric { e in var x = u; x[k] += e; return reference.z(user: x, item: i, dense: d) }
            worst = max(worst, abs(n - Double(gu[k])))
        }
        for k in i.indices {
            let n = numeric { e in var x = i; x[k] += e; return reference.z(user: u, item: x, dense: d) }
            worst = max(worst, abs(n - Double(gi[k])))
        }
        for k in d.indices {
            let n = numeric { e in var x = d; x[k] += e; return reference.z(user: u, item: i, dense: x) }
            worst = max(worst, abs(n - Double(gd[k])))
        }
        #expect(worst < 1e-4, "worst gradient error \(worst)")
        // Some gradient must flow into the tower for the check to mean anything.
        if variant != .gmf { #expect(gd[0..<network.outOffset].contains { $0 != 0 }) }
    }

    @Test("a batch's outputs and gradients are its examples' one at a time, bit for bit", arguments: NCFVariant.allCases)
    func batch(variant: NCFVariant) throws {
        // Widths off the kernels' 8-wide blocks: input 10, layers 20, 12 and 9.
        let network = try NCFNetwork(variant: variant, gmfDim: 3, mlpDim: 5, layers: [20, 12, 9])
        var g = SeededGenerator(seed: 21)
        let w = network.userWidth
        let users = random(3 * w, &g), items = random(4 * w, &g), dense = random(network.denseCount, &g)
        // Seven examples, rows repeated, in no order.
        let userRows = [0, 2, 1, 0, 2, 2, 1], itemRows = [3, 0, 3, 1, 2, 0, 3]
        let deltas: [Float] = [0.3, -0.7, 0.1, 0.9, -0.2, 0.5, -1.1]
        var ws = NCFNetwork.Workspace(network, capacity: 8)
        var z = [Float](repeating: 0, count: 7)
        network.forward(count: 7, users: users, userRows: userRows, items: items, itemRows: itemRows, dense: dense, z: &z, ws: &ws)
        var gu = [Float](repeating: 0, count: users.count), gi = [Float](repeating: 0, count: items.count)
        var gd = [Float](repeating: 0, count: dense.count)
        network.backward(count: 7, deltas: deltas, users: users, userRows: userRows, items: items, itemRows: itemRows, dense: dense,
                         gradUsers: &gu, gradItems: &gi, gradDense: &gd, ws: &ws)
        let reference = ReferenceNCF(network: network)
        var one = NCFNetwork.Workspace(network)
        var su = [Float](repeating: 0, count: users.count), si = [Float](repeating: 0, count: items.count)
        var sd = [Float](repeating: 0, count: dense.count)
        for e in 0..<7 {
            let user = Array(users[(userRows[e] * w)..<((userRows[e] + 1) * w)]), item = Array(items[(itemRows[e] * w)..<((itemRows[e] + 1) * w)])
            let single = network.forward(user: user, item: item, dense: dense, ws: &one)
            #expect(single.bitPattern == z[e].bitPattern)
            #expect(abs(Double(z[e]) - reference.z(user: user.map(Double.init), item: item.map(Double.init), dense: dense.map(Double.init))) < 1e-5)
            su.withUnsafeMutableBufferPointer { su in
            si.withUnsafeMutableBufferPointer { si in
                network.backward(deltas[e], user: user, item: item, dense: dense, gradUser: su.baseAddress! + userRows[e] * w,
                                 gradItem: si.baseAddress! + itemRows[e] * w, gradDense: &sd, ws: &one)
            }}
        }
        #expect(gu.map(\.bitPattern) == su.map(\.bitPattern))
        #expect(gi.map(\.bitPattern) == si.map(\.bitPattern))
        #expect(gd.map(\.bitPattern) == sd.map(\.bitPattern))
        #expect(gu.contains { $0 != 0 } && gd.contains { $0 != 0 })
        // A frozen model: the users' gradients alone, the same.
        var fu = [Float](repeating: 0, count: users.count)
        network.forward(count: 7, users: users, userRows: userRows, items: items, itemRows: itemRows, dense: dense, z: &z, ws: &ws)
        network.backward(count: 7, deltas: deltas, users: users, userRows: userRows, items: items, itemRows: itemRows, dense: dense,
                         gradUsers: &fu, gradItems: nil, gradDense: nil, ws: &ws)
        #expect(fu.map(\.bitPattern) == su.map(\.bitPattern))
    }

    @Test("the scorer gives every item the forward pass's output")
    func scorer() throws {
        let network = try NCFNetwork(variant: .neumf, gmfDim: 2, mlpDim: 3, layers: [4, 2])
        let config = ModelConfig(family: .ncf, objective: .bce, dim: network.userWidth, items: 7, datasetId: "d")
        let model = NCFModel.initial(config: config, network: network, scale: 0.5, seed: 4, outputBias: 0.2)
        var g = SeededGenerator(seed: 5)
        let user = random(network.userWidth, &g)
        var scores = [Float](repeating: 0, count: 7)
        NCFScorer(model: model).score(user: user, into: &scores)
        var ws = NCFNetwork.Workspace(network)
        for i in 0..<7 {
            let z = network.forward(user: user, item: Array(model.itemRow(i)), dense: model.dense, ws: &ws)
            #expect(abs(z - scores[i]) < 1e-5)
        }
    }

    @Test("a checkpoint round-trips; missing tensors and bad settings are refused")
    func checkpoint() throws {
        let dir = try TemporaryDirectory()
        let network = try NCFNetwork(variant: .mlp, gmfDim: 0, mlpDim: 4, layers: [6, 3])
        let config = ModelConfig(family: .ncf, objective: .mse, dim: 4, items: 5, datasetId: "d")
        let model = NCFModel.initial(config: config, network: network, scale: 0.1, seed: 1, outputBias: 3)
        try model.write(to: dir.path + "/m")
        let back = try NCFModel.open(dir.path + "/m").model
        #expect(back.itemRows == model.itemRows && back.dense == model.dense && back.network == network)
        #expect(back.dense[network.outBiasOffset] == 3)
        // Glorot limits: every tower weight within ±√(6/(fan_in + fan_out)).
        #expect(model.dense[0..<(6 * 8)].allSatisfy { abs($0) <= (6.0 / 14.0).squareRoot() })
        var broken = model.tensorModel
        broken.tensors.removeValue(forKey: "mlp.b1")
        try broken.write(to: dir.path + "/b")
        #expect(throws: FedRecError.self) { try NCFModel.open(dir.path + "/b") }
        do { _ = try NCFModel.open(dir.path + "/b") } catch let error as FedRecError { #expect(error.failure == .shape) }
        var bad = model.tensorModel
        bad.settings["layers"] = "6,x"
        try bad.write(to: dir.path + "/c")
        do { _ = try NCFModel.open(dir.path + "/c"); Issue.record("accepted bad layers") } catch let error as FedRecError { #expect(error.failure == .corrupt) }
        #expect(throws: FedRecError.self) { try NCFNetwork(variant: .mlp, gmfDim: 0, mlpDim: 4, layers: []) }
        #expect(throws: FedRecError.self) { try NCFNetwork(variant: .gmf, gmfDim: 0, mlpDim: 0, layers: []) }
    }

    @Test("NeuMF from GMF and MLP: embeddings and tower copied, h = [α h_G, (1 − α) h_M]")
    func pretraining() throws {
        let gNet = try NCFNetwork(variant: .gmf, gmfDim: 2, mlpDim: 0, layers: [])
        let mNet = try NCFNetwork(variant: .mlp, gmfDim: 0, mlpDim: 3, layers: [4, 2])
        let gmf = NCFModel.initial(config: ModelConfig(family: .ncf, objective: .bce, dim: 2, items: 3, datasetId: "d"), network: gNet, scale: 0.3, seed: 1, outputBias: 0.4)
        let mlp = NCFModel.initial(config: ModelConfig(family: .ncf, objective: .bce, dim: 3, items: 3, datasetId: "d"), network: mNet, scale: 0.3, seed: 2, outputBias: -0.2)
        let neumf = try NCFModel.pretrained(gmf: gmf, gmfFile: "g", mlp: mlp, mlpFile: "m", alpha: 0.25)
        #expect(neumf.network.variant == .neumf && neumf.config.dim == 5)
        for i in 0..<3 { #expect(Array(neumf.itemRow(i)) == Array(gmf.itemRow(i)) + Array(mlp.itemRow(i))) }
        let n = neumf.network
        #expect(Array(neumf.dense[0..<n.outOffset]) == Array(mlp.dense[0..<mNet.outOffset]))
        let h = Array(neumf.dense[n.outOffset..<(n.outOffset + 4)])
        let expected = gmf.dense[0..<2].map { 0.25 * $0 } + mlp.dense[mNet.outOffset..<(mNet.outOffset + 2)].map { 0.75 * $0 }
        #expect(h == expected)
        #expect(abs(neumf.dense[n.outBiasOffset] - (0.25 * 0.4 + 0.75 * -0.2)) < 1e-7)
        // With α = 1 NeuMF scores as the GMF it came from, whatever the MLP says.
        let one = try NCFModel.pretrained(gmf: gmf, gmfFile: "g", mlp: mlp, mlpFile: "m", alpha: 1)
        var a = [Float](repeating: 0, count: 3), b = a
        NCFScorer(model: gmf).score(user: [0.5, -1], into: &a)
        NCFScorer(model: one).score(user: [0.5, -1, 0.2, 0.3, 0.1], into: &b)
        #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(throws: FedRecError.self) { try NCFModel.pretrained(gmf: mlp, gmfFile: "m", mlp: gmf, mlpFile: "g", alpha: 0.5) }
        #expect(throws: FedRecError.self) { try NCFModel.pretrained(gmf: gmf, gmfFile: "g", mlp: mlp, mlpFile: "m", alpha: 1.5) }
    }
}
