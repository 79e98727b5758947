import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecModel
import FedRecSupport
import FedRecFormats
import FedRecWire
import FedRecTraining
import FedRecAggregation

@Suite("overlay checkpoints: changed rows on a standalone base")
struct OverlayCheckpointTests {
    func sgd() -> TrainingOptions {
        var options = TrainingOptions()
        options.algorithm = .sgd
        options.userParameters = .reconstruct
        options.epochs = 2
        return options
    }

    func expectSame(_ a: MFModel, _ b: MFModel) {
        #expect(a.itemEmbedding == b.itemEmbedding)
        #expect(a.itemBias == b.itemBias)
        #expect(a.globalBias == b.globalBias && a.round == b.round)
        #expect(a.serverState == b.serverState)
        #expect(a.notes == b.notes)
    }

    @Test("an overlay holds only the changed rows and reads as the standalone model; training from it gives the same model")
    func overlayEqualsStandalone() throws {
        let data = try SyntheticDataset(users: 60, items: 400, perUser: 10)
        let p = data.directory.path
        let m0 = try data.initialModel(.mse)
        var server = ServerOptions()
        server.optimizer = .fedadam
        server.learningRate = 0.05
        let updates = try data.round(model: m0, next: p + "/s1", training: sgd(), server: server, layout: .standalone)
        try data.round(model: m0, next: p + "/o1", training: sgd(), server: server, layout: .overlay)
        let touched = try ModelUpdate.sum(paths: updates).rows

        let overlay = try ModelView(path: p + "/o1")
        #expect(overlay.isOverlay && overlay.file.metadata["base"] == "model-0000.safetensors")
        #expect(overlay.file.metadata["base_identity"] == (try ModelView(path: m0).identity))
        #expect(Array(overlay.items.overlayRows) == touched.sorted())
        expectSame(try MFModel.load(p + "/o1"), try MFModel.load(p + "/s1"))
        let standalone = try ModelView(path: p + "/s1")
        for item in 0..<standalone.config.items {
            #expect(Array(overlay.items.embeddingRow(item)) == Array(standalone.items.embeddingRow(item)))
            #expect(overlay.items.bias(item) == standalone.items.bias(item))
        }

        // Round 2 from each: the second overlay keeps the first base and merges the rows.
        try data.round(model: p + "/s1", next: p + "/s2", training: sgd(), server: server, layout: .standalone)
        try data.round(model: p + "/o1", next: p + "/o2", training: sgd(), server: server, layout: .overlay)
        let second = try ModelView(path: p + "/o2")
        #expect(second.file.metadata["base"] == "model-0000.safetensors")
        #expect(Set(second.items.overlayRows).isSuperset(of: Set(overlay.items.overlayRows)))
        expectSame(try MFModel.load(p + "/o2"), try MFModel.load(p + "/s2"))

        // Compaction writes exactly the standalone file.
        try ModelRevision(start: second).write(to: p + "/c2", layout: .standalone)
        #expect(try readBytes(p + "/c2") == (try readBytes(p + "/s2")))
    }

    @Test("an overlay names its base relative to itself, so the pair can move together")
    func relativeBase() throws {
        let data = try SyntheticDataset(users: 30, items: 50, perUser: 8)
        let p = data.directory.path
        let m0 = try data.initialModel(.mse)
        try FileManager.default.createDirectory(atPath: p + "/run/later", withIntermediateDirectories: true)
        try data.round(model: m0, next: p + "/run/later/o1", training: sgd(), layout: .overlay)
        let view = try ModelView(path: p + "/run/later/o1")
        #expect(view.file.metadata["base"] == "../../model-0000.safetensors")
        try FileManager.default.moveItem(atPath: p + "/run", toPath: p + "/moved")
        try FileManager.default.createDirectory(atPath: p + "/elsewhere", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: p + "/moved", toPath: p + "/elsewhere/run")
        try FileManager.default.moveItem(atPath: m0, toPath: p + "/elsewhere/model-0000.safetensors")
        expectSame(try MFModel.load(p + "/elsewhere/run/later/o1"), try MFModel.load(view))
    }

    @Test("a missing base is a no-input error naming the overlay; another file in its place is a mismatch")
    func missingOrReplacedBase() throws {
        let data = try SyntheticDataset(users: 30, items: 50, perUser: 8)
        let p = data.directory.path
        let m0 = try data.initialModel(.mse)
        try data.round(model: m0, next: p + "/o1", training: sgd(), layout: .overlay)
        try FileManager.default.moveItem(atPath: m0, toPath: p + "/kept")
        let missing = #expect(throws: FedRecError.self) { try ModelView(path: p + "/o1") }
        #expect(missing?.failure == .noInput && missing?.file == p + "/o1" && missing?.message.contains("fl-compact") == true)
        // Another model (another seed) under the base's name.
        let config = try ModelView(path: p + "/kept").config
        try MFModel.initial(config: config, scale: 0.1, seed: 99, globalBias: 3).write(to: m0)
        #expect((#expect(throws: FedRecError.self) { try ModelView(path: p + "/o1") })?.failure == .mismatch)
        // An overlay cannot be the base of an overlay: forced, it names the standalone base.
        try FileManager.default.removeItem(atPath: m0)
        try FileManager.default.moveItem(atPath: p + "/kept", toPath: m0)
        let revision = try ModelRevision(start: try ModelView(path: p + "/o1"))
        try revision.write(to: p + "/o1b", layout: .overlay)
        #expect(try ModelView(path: p + "/o1b").file.metadata["base"] == "model-0000.safetensors")
        #expect((#expect(throws: FedRecError.self) { try revision.write(to: "-", layout: .overlay) })?.failure == .usage)
    }

    /// A model of `items` × 32 and a sum from it that touches `touched` rows.
    func bigModel(items: Int, touched: Int, in dir: TemporaryDirectory) throws -> (String, ModelUpdate) {
        let config = ModelConfig(objective: .mse, dim: 32, items: items, datasetId: "big")
        let path = dir.path + "/m0"
        try MFModel.initial(config: config, scale: 0.1, seed: 1, globalBias: 3).write(to: path)
        let header = UpdateHeader(config: config, baseModel: try ModelView(path: path).identity, round: 0, algorithm: .sgd,
                                  weighting: .uniform, clients: 2, weight: 2)
        let rows = (0..<Int32(touched)).map { $0 * Int32(items / touched) }
        let sum = ModelUpdate(header: header, rows: rows, rowClients: rows.map { _ in 1 }, rowWeight: rows.map { _ in 1 },
                              rowTensors: [TensorName.itemEmbedding: RowTensor(width: 32, values: [Float](repeating: 0.5, count: touched * 32)),
                                           TensorName.itemBias: RowTensor(width: 1, values: [Float](repeating: 0.5, count: touched))],
                              dense: [TensorName.globalBias: [0]])
        return (path, sum)
    }

    @Test("auto: an overlay for a few changed rows of a large model, standalone for many rows or a small model")
    func autoLayout() throws {
        let dir = try TemporaryDirectory()
        let (path, few) = try bigModel(items: 100_000, touched: 100, in: dir)
        let next = try ServerStep.apply(few, sumFile: "few", to: path, options: ServerOptions())
        #expect(try next.write(to: dir.path + "/a").overlay)
        let size = try FileManager.default.attributesOfItem(atPath: dir.path + "/a")[.size] as? Int ?? 0
        #expect(size < 64 << 10)  // 100 rows, not 13 MB
        var many = few
        many.rows = (0..<Int32(20_000)).map { $0 * 5 }
        many.rowClients = many.rows.map { _ in 1 }
        many.rowWeight = many.rows.map { _ in 1 }
        many.rowTensors = [TensorName.itemEmbedding: RowTensor(width: 32, values: [Float](repeating: 0.5, count: 20_000 * 32)),
                           TensorName.itemBias: RowTensor(width: 1, values: [Float](repeating: 0.5, count: 20_000))]
        #expect(try !ServerStep.apply(many, sumFile: "many", to: path, options: ServerOptions()).write(to: dir.path + "/b").overlay)
        let data = try SyntheticDataset(users: 30, items: 50, perUser: 8)
        let m0 = try data.initialModel(.mse)
        try data.round(model: m0, next: data.directory.path + "/small", training: sgd())
        #expect(try !ModelView(path: data.directory.path + "/small").isOverlay)
    }

    @Test("a row read from a corrupt base fails the command's integrity check; unread rows cost nothing")
    func corruptBaseRow() throws {
        let dir = try TemporaryDirectory()
        let (path, sum) = try bigModel(items: 100_000, touched: 100, in: dir)
        try ServerStep.apply(sum, sumFile: "s", to: path, options: ServerOptions()).write(to: dir.path + "/o1", layout: .overlay)
        // Flip a byte of item 1's embedding (not in the overlay: rows are multiples of 1000).
        let file = try SafeTensorsFile(path: path)
        let offset = 8 + file.headerBytes.count + (try file.info(TensorName.itemEmbedding)).byteRange.lowerBound + 4 * 32 + 5
        var bytes = try readBytes(path)
        bytes[offset] ^= 0x10
        try writeAtomically(bytes, to: path)
        let view = try ModelView(path: dir.path + "/o1")  // opening reads no base row
        _ = view.items.embedding(1000)  // an overlay row
        _ = view.items.embedding(50_000)
        try view.checkIntegrity()
        _ = view.items.embedding(1)
        #expect((#expect(throws: FedRecError.self) { try view.checkIntegrity() })?.failure == .checksum)
        #expect((#expect(throws: FedRecError.self) { try MFModel.load(dir.path + "/o1") })?.failure == .checksum)
    }
}
