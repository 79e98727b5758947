import Testing
import FedRecFormats
import FedRecModel
import FedRecSupport
@testable import FedRecWire

/// A shard's clients compressed as fl-train-local does (each of weight 1), and their plain sum.
enum CompressionFixture {
    static func builder(_ compression: UpdateCompression, layout: ClientVectorLayout, clients: [ModelUpdate], seed: UInt64) throws -> CompressedUpdateBuilder {
        var builder = CompressedUpdateBuilder(compression: compression, layout: layout)
        var generator = SeededGenerator(seed: seed)
        for update in clients {
            switch compression {
            case .float32: try builder.addPlain(update, weight: 1)
            case .qsgd: try builder.addQuantized(update, weight: 1, using: &generator)
            case .topK(let ratio):
                let step = TopK.errorFeedback(update: try layout.flatten(update), residual: SparseVector(), ratio: ratio)
                try builder.addSparse(step.sent, weight: 1)
            }
        }
        return builder
    }

    /// `builder`'s file under `header`, changed by `change` (checksums recomputed), written at `path`.
    static func written(_ builder: CompressedUpdateBuilder, header: UpdateHeader, to path: String, _ change: (inout SafeTensorsWriter) -> Void) throws -> String {
        var writer = builder.writer(header: header)
        change(&writer)
        _ = try writer.write(to: path)
        return path
    }

    /// The clients added up as plain updates (`ModelUpdate.add`).
    static func plainSum(_ clients: [ModelUpdate]) throws -> ModelUpdate {
        var total = clients[0]
        for (k, update) in clients.enumerated().dropFirst() { try total.add(update, file: "client \(k)") }
        return total
    }
}

/// Expects reading the update at `path` to fail with `failure`, naming the file and saying `says`.
func expectRefused(_ path: String, _ failure: FailureClass, says: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(sourceLocation: sourceLocation) { try ModelUpdate.load(path) } throws: { error in
        guard let error = error as? FedRecError else { return false }
        return error.failure == failure && error.file == path && error.description.contains(says)
    }
}
