import Foundation
import Testing
import FedRecTestSupport
@testable import FedRecTraining
import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecWire

@Suite("NCF shards compressed: each client apart, f32 the plain update bit for bit, top-k's residuals in the state file", .serialized)
struct NCFCompressionTests {
    let data: SyntheticDataset
    let model: String
    let network: NCFNetwork

    init() throws {
        data = try SyntheticDataset(users: 24, items: 20, perUser: 6, split: .leaveLastOut)
        network = try NCFNetwork(variant: .neumf, gmfDim: 3, mlpDim: 2, layers: [4, 2])
        let config = ModelConfig(family: .ncf, objective: .bce, dim: network.userWidth, items: data.manifest.items, datasetId: data.manifest.datasetId)
        model = data.directory.path + "/ncf-0000"
        try NCFModel.initial(config: config, network: network, scale: 0.1, seed: 3, outputBias: 0).write(to: model)
    }

    var options: TrainingOptions {
        var options = TrainingOptions()
        options.epochs = 1
        options.negatives = 2
        options.optimizer = .adam
        options.learningRate = 0.01
        options.userParameters = .reconstruct
        options.reconstructionEpochs = 1
        return options
    }

    @discardableResult
    func train(_ name: String, _ compression: UpdateCompression?, stateIn: String? = nil, stateOut: String? = nil) throws -> ShardTrainingSummary {
        var options = options
        options.compression = compression
        options.compressionSeed = 1
        return try NCFShardTrainer.run(modelPath: model, shardPath: data.shards[0], stateIn: stateIn, stateOut: stateOut,
                                       output: data.directory.path + "/" + name, options: options)
    }

    func load(_ name: String) throws -> ModelUpdate { try ModelUpdate.load(data.directory.path + "/" + name) }

    @Test("f32: every client's segment, decoded and summed, is the plain shard update bit for bit; q8 and q4 decode to the same rows and tensors, marked")
    func float32MatchesPlain() throws {
        try train("plain", nil)
        let summary = try train("f32", .float32)
        let plain = try load("plain"), f32 = try load("f32")
        #expect(summary.clients == plain.header.clients && summary.rows >= plain.rows.count)
        #expect(f32.rows == plain.rows && f32.rowClients == plain.rowClients && f32.rowWeight == plain.rowWeight)
        #expect(f32.rowTensors == plain.rowTensors && f32.dense == plain.dense)
        #expect(Set(f32.dense.keys) == Set(network.denseLayout.map(\.name)))
        let file = try SafeTensorsFile(path: data.directory.path + "/f32")
        #expect(file.metadata["compression"] == "f32" && file.metadata["compression_dense"]?.hasPrefix("mlp.w0:4x4,") == true)
        #expect(try file.int32s("client_offset").count == plain.header.clients + 1)
        for bits in [8, 4] {
            try train("q\(bits)", .qsgd(bits: bits))
            let q = try load("q\(bits)")
            #expect(q.rows == plain.rows && q.rowClients == plain.rowClients && q.header.extra[UpdateCompression.decodedKey] == "q\(bits)")
            #expect(Set(q.dense.keys) == Set(plain.dense.keys) && q.dense != plain.dense)
        }
    }

    /// The decoded update's values by flat index.
    func sent(_ name: String, layout: ClientVectorLayout) throws -> [Int32: Float] {
        let flat = try layout.flatten(try load(name))
        return Dictionary(zip(flat.index, flat.value), uniquingKeysWith: +)
    }

    /// The state's residuals summed over its clients, by flat index.
    func kept(_ state: String) throws -> [Int32: Float] {
        var total = [Int32: Float]()
        for vector in try UserState.load(data.directory.path + "/" + state, config: try NCFModel.open(model).model.config).state.residuals.values {
            for (i, v) in zip(vector.index, vector.value) { total[i, default: 0] += v }
        }
        return total
    }

    func adding(_ a: [Int32: Float], _ b: [Int32: Float]) -> [Int32: Float] { a.merging(b, uniquingKeysWith: +) }

    func expectClose(_ got: [Int32: Float], _ want: [Int32: Float], sourceLocation: SourceLocation = #_sourceLocation) {
        for (i, v) in want { #expect(abs((got[i] ?? 0) - v) <= 1e-5 * max(1, abs(v)), "index \(i)", sourceLocation: sourceLocation) }
        for (i, v) in got where want[i] == nil { #expect(v == 0, "index \(i)", sourceLocation: sourceLocation) }
    }

    @Test("top-k: what is sent plus what the state keeps is the plain update; round two sends and keeps it plus round one's residual")
    func errorFeedback() throws {
        let layout = try ClientVectorLayout(items: data.manifest.items, network: network)
        try train("plain", nil)
        let first = try train("t1", .topK(ratio: 0.1), stateOut: data.directory.path + "/s1")
        let names = try SafeTensorsFile(path: data.directory.path + "/s1").names
        #expect(names.contains("residual.index"))
        #expect(try UserState.load(data.directory.path + "/s1", config: try load("t1").header.config).state.residualLength == layout.length)
        let plain = try sent("plain", layout: layout)
        let kept1 = try kept("s1")
        #expect(!kept1.isEmpty)
        expectClose(adding(try sent("t1", layout: layout), kept1), plain)
        // Users are rebuilt, so round two trains the same Δ: Σ sent₂ + Σ e₂ = Σ Δ + Σ e₁.
        let second = try train("t2", .topK(ratio: 0.1), stateIn: data.directory.path + "/s1", stateOut: data.directory.path + "/s2")
        expectClose(adding(try sent("t2", layout: layout), try kept("s2")), adding(plain, kept1))
        #expect(first.rows > 0 && second.rows > 0)
        // A state whose residuals index another layout is refused: a GMF model of the same
        // dim, items and data set has 5 + 1 dense values, not 36.
        let gmf = try NCFNetwork(variant: .gmf, gmfDim: 5, mlpDim: 0, layers: [])
        let config = ModelConfig(family: .ncf, objective: .bce, dim: 5, items: data.manifest.items, datasetId: data.manifest.datasetId)
        let other = data.directory.path + "/gmf-0000"
        try NCFModel.initial(config: config, network: gmf, scale: 0.1, seed: 3, outputBias: 0).write(to: other)
        var options = options
        options.compression = .topK(ratio: 0.1)
        #expect { try NCFShardTrainer.run(modelPath: other, shardPath: data.shards[0], stateIn: data.directory.path + "/s1", stateOut: nil,
                                          output: data.directory.path + "/t3", options: options) } throws: { error in
            guard let error = error as? FedRecError else { return false }
            return error.failure == .mismatch && error.description.contains("residuals of length \(layout.length)")
        }
        #expect(!fileExists(data.directory.path + "/t3"))
    }
}
