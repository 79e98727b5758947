import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecModel
import FedRecSupport
import FedRecData
import FedRecWire
import FedRecTraining
import FedRecAggregation

@Suite("implicit ALS checkpoints keep the item Gram matrix and the support of their rows")
struct ItemGramTests {
    func als() -> TrainingOptions {
        var options = TrainingOptions()
        options.algorithm = .als
        options.userParameters = .reconstruct
        options.alpha = 5
        options.l2 = 1
        return options
    }

    /// The server's ALS item step with λ = 1, as `als()` trains.
    func alsServer() -> ServerOptions {
        var server = ServerOptions()
        server.l2 = 1
        return server
    }

    /// Σ_i q_i q_iᵀ summed from the rows of a checkpoint.
    func summedGram(_ path: String) throws -> [Double] {
        let view = try ModelView(path: path)
        let dense = try view.items.dense()
        return ItemGram.compute(dense.embedding, rows: view.config.items, dim: view.config.dim)
    }

    func expectClose(_ a: [Double], _ b: [Double]) {
        #expect(a.count == b.count)
        let scale = b.map(abs).max() ?? 1
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-9 * max(scale, 1), "largest difference \(worst) against entries up to \(scale)")
    }

    @Test("the stored Gram matrix, updated from changed rows only, equals the one summed over every row, round after round and in either layout")
    func gramFollowsRows() throws {
        let data = try SyntheticDataset(users: 40, items: 300, perUser: 8)
        let p = data.directory.path
        let m0 = try data.initialModel(.wals, dim: 4)
        let server = alsServer()
        let start = try ModelView(path: m0)
        #expect(start.itemGram == (try summedGram(m0)))
        #expect(start.itemSupport == nil)

        let updates = try data.round(model: m0, next: p + "/s1", training: als(), server: server, layout: .standalone)
        let touched = try ModelUpdate.sum(paths: updates).rows.sorted()
        try data.round(model: m0, next: p + "/o1", training: als(), server: server, layout: .overlay)
        let s1 = try ModelView(path: p + "/s1"), o1 = try ModelView(path: p + "/o1")
        #expect(o1.isOverlay && !s1.isOverlay)
        #expect(s1.itemGram == o1.itemGram)
        expectClose(try #require(s1.itemGram), try summedGram(p + "/s1"))
        #expect(s1.itemSupport == touched && o1.itemSupport == touched)
        let items = s1.config.items
        #expect(touched.count < items)
        // Rows outside the support are zero, as centralised implicit ALS leaves them.
        let support = Set(touched)
        for item in 0..<items where !support.contains(Int32(item)) {
            #expect(s1.items.embeddingRow(item).allSatisfy { $0 == 0 })
        }

        for r in 2...3 {
            try data.round(model: p + "/o\(r - 1)", next: p + "/o\(r)", training: als(), server: server, layout: .overlay)
            let view = try ModelView(path: p + "/o\(r)")
            #expect(view.isOverlay)
            expectClose(try #require(view.itemGram), try summedGram(p + "/o\(r)"))
            #expect(view.itemSupport != nil)
        }
        // Compaction carries the Gram matrix and support unchanged.
        try ModelRevision(start: try ModelView(path: p + "/o3")).write(to: p + "/c3", layout: .standalone)
        let compacted = try ModelView(path: p + "/c3"), o3 = try ModelView(path: p + "/o3")
        #expect(compacted.itemGram == o3.itemGram && compacted.itemSupport == o3.itemSupport)
    }

    @Test("user solves with the stored Gram matrix equal those with the Gram summed from the rows")
    func solverUsesStoredGram() throws {
        let data = try SyntheticDataset(users: 30, items: 120, perUser: 8)
        let p = data.directory.path
        let m0 = try data.initialModel(.wals, dim: 4)
        try data.round(model: m0, next: p + "/m1", training: als())
        let view = try ModelView(path: p + "/m1")
        let stored = try UserSolver(model: view, l2: 1, alpha: 5)
        let train = Interactions(items: [1, 5, 9, 40], ratings: [1, 1, 1, 1], times: [0, 0, 0, 0])
        let solved = try stored.solve(train).embedding
        // The same solve by hand, with the Gram summed over the rows.
        let d = 4
        var a = try summedGram(p + "/m1"), b = [Double](repeating: 0, count: d)
        for item in train.items {
            let q = view.items.embeddingRow(Int(item))
            for x in 0..<d {
                b[x] += 6 * Double(q[x])
                for y in 0..<d { a[x * d + y] += 5 * Double(q[x]) * Double(q[y]) }
            }
        }
        for x in 0..<d { a[x * d + x] += 1 }
        a.withUnsafeMutableBufferPointer { a in b.withUnsafeMutableBufferPointer { b in _ = Cholesky.solve(a, b, n: d) } }
        for x in 0..<d { #expect(abs(Double(solved[x]) - b[x]) <= 1e-5 * max(1, abs(b[x]))) }
    }

    @Test("changing a loaded model's rows drops its stored Gram matrix and support, so the file written describes the new rows")
    func editedRowsDropGram() throws {
        let data = try SyntheticDataset(users: 30, items: 120, perUser: 8)
        let p = data.directory.path
        try data.round(model: try data.initialModel(.wals, dim: 4), next: p + "/m1", training: als(), server: alsServer())
        var model = try MFModel.load(p + "/m1")
        #expect(model.itemGram != nil && model.itemSupport != nil)
        model.itemEmbedding[0] += 1
        #expect(model.itemGram == nil && model.itemSupport == nil)
        try model.write(to: p + "/edited")
        let edited = try ModelView(path: p + "/edited")
        #expect(edited.itemGram == (try summedGram(p + "/edited")))
        #expect(edited.itemSupport == nil)
    }

    @Test("a support that is not ascending item indices is a corrupt checkpoint")
    func badSupport() throws {
        let data = try SyntheticDataset(users: 10, items: 20, perUser: 4)
        let m0 = try data.initialModel(.wals, dim: 4)
        var model = try MFModel.load(m0)
        model.itemSupport = [3, 1]
        let path = data.directory.path + "/bad.safetensors"
        try model.write(to: path)
        #expect(throws: FedRecError.self) { try ModelView(path: path) }
        do { _ = try ModelView(path: path) } catch let error as FedRecError {
            #expect(error.failure == .corrupt && error.description.contains("item_support"))
        }
    }
}
