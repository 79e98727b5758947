import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
import FedRecSupport
import FedRecFormats
@testable import FedRecModel

@Suite("tensor model checkpoints")
struct TensorModelTests {
    func model() -> TensorModel {
        let config = ModelConfig(family: .fm, objective: .bce, dim: 2, items: 4, datasetId: "d")
        var model = TensorModel(config: config, round: 5, tensors: ["v": Tensor(shape: [4, 2], values: (0..<8).map(Float.init)), "w": Tensor(shape: [4, 1], values: [1, 2, 3, 4]), "bias": Tensor(shape: [1], values: [-0.5])],
                                rowTensorNames: ["v", "w"], settings: ["buckets": "4", "features": "age,genre"])
        model.notes["seed"] = "7"
        model.serverState = ["m.bias": [0.25]]
        return model
    }

    @Test("a checkpoint reads back as written: tensors, row tensors, settings, notes, optimiser state")
    func roundTrip() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/m"
        let written = model()
        let identity = try written.write(to: path)
        let (read, readIdentity) = try TensorModel.open(path, family: .fm)
        #expect(readIdentity == identity)
        #expect(read.config == written.config && read.round == 5)
        #expect(read.tensors == written.tensors && read.rowTensorNames == ["v", "w"])
        #expect(read.settings == written.settings && read.notes["seed"] == "7")
        #expect(read.serverState == ["m.bias": [0.25]])
        let file = try SafeTensorsFile(path: path)
        #expect(file.metadata["model_type"] == "fm" && file.metadata["setting.buckets"] == "4" && file.metadata["row_tensors"] == "v,w")
    }

    @Test("each reader refuses the other kind of model")
    func familiesRefused() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/m"
        try model().write(to: path)
        #expect(try ModelFamily.of(model: path) == .fm)
        #expect { try TensorModel.open(path, family: .ncf) } throws: { ($0 as? FedRecError)?.failure == .shape }
        #expect { try ModelView(path: path) } throws: { ($0 as? FedRecError)?.failure == .shape }
        let mfPath = dir.path + "/mf"
        try MFModel(config: ModelConfig(objective: .mse, dim: 1, items: 2, datasetId: "d"), round: 0, itemEmbedding: [0, 0], itemBias: [0, 0], globalBias: 0).write(to: mfPath)
        #expect(try ModelFamily.of(model: mfPath) == .mf)
        #expect { try TensorModel.open(mfPath) } throws: { ($0 as? FedRecError)?.failure == .shape }
    }

    @Test("a flipped byte in a tensor model is caught")
    func corruption() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/m"
        try model().write(to: path)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 3] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: FedRecError.self) { try TensorModel.open(path) }
    }
}
