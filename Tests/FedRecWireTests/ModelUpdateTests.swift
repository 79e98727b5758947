import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecWire
import FedRecSupport
import FedRecModel

@Suite("updates and sums on the wire: headers as enums, sums independent of order")
struct ModelUpdateTests {
    let config = ModelConfig(objective: .mse, dim: 2, items: 5, datasetId: "ds")

    /// An update of `clients` clients that touched `rows`, every value `value`.
    func update(rows: [Int32], value: Float, clients: Int, weighting: ContributionWeighting = .uniform) -> ModelUpdate {
        let header = UpdateHeader(config: config, baseModel: "base", round: 3, algorithm: .sgd, weighting: weighting,
                                  clients: clients, weight: Double(clients))
        return ModelUpdate(
            header: header, rows: rows, rowClients: rows.map { _ in Int32(clients) }, rowWeight: rows.map { _ in Float(clients) },
            rowTensors: ["item_embedding": RowTensor(width: 2, values: rows.flatMap { _ in [value, -value] })],
            dense: ["global_bias": [value]])
    }

    @Test("a written update reads back with the same header, rows and values")
    func roundTrip() throws {
        let dir = try TemporaryDirectory()
        let original = update(rows: [1, 4], value: 0.5, clients: 3)
        try original.write(to: dir.path + "/u.safetensors", kind: .update)
        let read = try ModelUpdate.load(dir.path + "/u.safetensors")
        #expect(read.header == original.header)
        #expect(read.rows == [1, 4] && read.rowClients == [3, 3] && read.rowWeight == [3, 3])
        #expect(read.rowTensors == original.rowTensors && read.dense == original.dense)
    }

    @Test("an algorithm or weighting the wire types do not know is refused as corrupt (84)", arguments: ["algorithm", "weighting"])
    func unknownHeaderValue(field: String) throws {
        let dir = try TemporaryDirectory()
        var writer = update(rows: [0], value: 1, clients: 1).writer(kind: .update)
        writer.metadata[field] = "delta"
        _ = try writer.write(to: dir.path + "/u.safetensors")
        #expect { try ModelUpdate.load(dir.path + "/u.safetensors") } throws: { error in
            guard let error = error as? FedRecError else { return false }
            return error.failure == .corrupt && error.description.contains(field) && error.description.contains("'delta'")
        }
    }

    @Test("a sum adds rows by merging: shared rows add, others are carried; clients and weights add")
    func sumMerges() throws {
        var total = update(rows: [0, 2], value: 1, clients: 2)
        try total.add(update(rows: [2, 3], value: 0.25, clients: 1), file: "b")
        #expect(total.rows == [0, 2, 3])
        #expect(total.rowClients == [2, 3, 1])
        #expect(total.rowTensors["item_embedding"]?.values == [1, -1, 1.25, -1.25, 0.25, -0.25])
        #expect(total.dense["global_bias"] == [1.25])
        #expect(total.header.clients == 3 && total.header.weight == 3)
    }

    @Test("updates weighted differently cannot be added (86)")
    func weightingMismatch() throws {
        var total = update(rows: [0], value: 1, clients: 1)
        #expect { try total.add(update(rows: [0], value: 1, clients: 1, weighting: .examples), file: "b") } throws: { error in
            (error as? FedRecError)?.failure == .mismatch
        }
    }

    @Test("the sum of files does not depend on the order they are named in")
    func orderIndependent() throws {
        let dir = try TemporaryDirectory()
        let paths = try [(0.1, [Int32(0), 1]), (0.7, [1, 4]), (1e-3, [2])].enumerated().map { i, spec in
            let path = dir.path + "/u\(i).safetensors"
            try update(rows: spec.1, value: Float(spec.0), clients: i + 1).write(to: path, kind: .update)
            return path
        }
        let forward = try ModelUpdate.sum(paths: paths), backward = try ModelUpdate.sum(paths: paths.reversed())
        #expect(forward.rows == backward.rows && forward.rowTensors == backward.rowTensors && forward.dense == backward.dense)
        #expect(forward.header.clients == 6)
    }
}
