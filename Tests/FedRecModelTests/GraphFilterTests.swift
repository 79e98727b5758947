import Testing
import FedRecModel
import FedRecSupport

@Suite("graph filter: eigen solvers and scoring")
struct GraphFilterTests {
    @Test("Jacobi: a 3 × 3 matrix with eigenvalues 5, 3 and 1 worked by hand")
    func jacobi() {
        // [[2, 1, 0], [1, 2, 0], [0, 0, 5]]: the 2 × 2 block has eigenvalues 2 ± 1 on (1, ±1)/√2.
        let a: [Double] = [2, 1, 0, 1, 2, 0, 0, 0, 5]
        let (values, vectors) = SymmetricEigen.decompose(a, n: 3)
        #expect(zip(values, [5.0, 3, 1]).allSatisfy { abs($0 - $1) < 1e-12 })
        #expect(abs(abs(vectors[2 * 3 + 0]) - 1) < 1e-12)
        #expect(abs(abs(vectors[0 * 3 + 1]) - 0.5.squareRoot()) < 1e-12 && abs(vectors[0 * 3 + 1] - vectors[1 * 3 + 1]) < 1e-12)
        #expect(abs(vectors[0 * 3 + 2] + vectors[1 * 3 + 2]) < 1e-12)
    }

    /// 100 blocks [[a, b], [b, a]] on items (2m, 2m + 1): eigenvalues a ± b exactly.
    func blockMatrix() -> (matrix: SparseSymmetricMatrix, spectrum: [Double]) {
        var offsets = [0], columns: [Int32] = [], values: [Float] = [], spectrum: [Double] = []
        for m in 0..<100 {
            let a = Float(1 + m % 17) / 20, b = Float(m % 5) / 25
            for row in 0..<2 {
                columns += [Int32(2 * m), Int32(2 * m + 1)]
                values += row == 0 ? [a, b] : [b, a]
                offsets.append(columns.count)
            }
            spectrum += [Double(a + b), Double(a - b)]
        }
        return (SparseSymmetricMatrix(size: 200, offsets: offsets, columns: columns, values: values), spectrum.sorted(by: >))
    }

    @Test("subspace iteration finds the top eigenvalues of a block matrix known exactly, with small residuals")
    func subspace() {
        let (matrix, spectrum) = blockMatrix()
        let k = 12
        let (values, vectors) = TopEigenpairs.compute(matrix, count: k, oversampling: 40, iterations: 30, seed: 7, threads: 2)
        #expect(values.count == k)
        for j in 0..<k { #expect(abs(values[j] - spectrum[j]) < 1e-4, "λ\(j) \(values[j]) against \(spectrum[j])") }
        // ‖M v − λ v‖ for each vector, through a product computed here.
        let product = matrix.multiply(vectors, width: k, threads: 1)
        for j in 0..<k {
            var residual = 0.0, norm = 0.0
            for i in 0..<200 {
                let r = Double(product[i * k + j]) - values[j] * Double(vectors[i * k + j])
                residual += r * r
                norm += Double(vectors[i * k + j] * vectors[i * k + j])
            }
            #expect(abs(norm - 1) < 1e-4 && residual.squareRoot() < 1e-2, "vector \(j): norm² \(norm), residual \(residual.squareRoot())")
        }
        // Same inputs, same vectors, whatever the thread count.
        #expect(TopEigenpairs.compute(matrix, count: k, oversampling: 40, iterations: 30, seed: 7, threads: 1).vectors == vectors)
    }

    @Test("scores: r P̃ plus α times the projection, against dense arithmetic done here")
    func scoring() {
        // 4 users over 5 items; item 4 is never seen.
        let users: [[Int32]] = [[0, 1], [1, 2, 3], [0], [0, 2]]
        let n = 5
        var degree = [Double](repeating: 0, count: n)
        var c = [Double](repeating: 0, count: n * n)
        for items in users {
            for i in items {
                degree[Int(i)] += 1
                for j in items { c[Int(i) * n + Int(j)] += 1 / Double(items.count) }
            }
        }
        var p = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n where degree[i] > 0 && degree[j] > 0 { p[i * n + j] = c[i * n + j] / (degree[i] * degree[j]).squareRoot() } }
        var offsets = [0], columns: [Int32] = [], values: [Float] = []
        for i in 0..<n {
            for j in 0..<n where p[i * n + j] != 0 { columns.append(Int32(j)); values.append(Float(p[i * n + j])) }
            offsets.append(columns.count)
        }
        let k = 2
        let (eigenvalues, full) = SymmetricEigen.decompose(p, n: n)
        var vectors = [Float](repeating: 0, count: n * k)
        for i in 0..<n { for j in 0..<k { vectors[i * k + j] = Float(full[i * n + j]) } }
        var settings = GraphFilterSettings()
        settings.filterWeight = 0.5
        let model = GraphFilterModel(
            config: ModelConfig(family: .gfcf, objective: .filter, dim: k, items: n, datasetId: "d"), round: 1,
            itemDegree: degree.map { Float($0) }, filter: SparseSymmetricMatrix(size: n, offsets: offsets, columns: columns, values: values),
            eigenvectors: vectors, eigenvalues: eigenvalues.prefix(k).map { Float($0) }, settings: settings)
        #expect(abs(eigenvalues[0] - 1) < 1e-12, "a normalised co-occurrence has top eigenvalue 1")
        var scores: [Float] = []
        GraphFilterScorer(model: model).score(users: users, into: &scores)
        for (b, items) in users.enumerated() {
            var t = [Double](repeating: 0, count: k)
            for i in items { for f in 0..<k { t[f] += full[Int(i) * n + f] / degree[Int(i)].squareRoot() } }
            for j in 0..<n {
                var expected = 0.0
                for i in items { expected += p[Int(i) * n + j] }
                var projected = 0.0
                for f in 0..<k { projected += t[f] * full[j * n + f] }
                expected += 0.5 * projected * degree[j].squareRoot()
                #expect(abs(Double(scores[b * n + j]) - expected) < 1e-5, "user \(b) item \(j): \(scores[b * n + j]) against \(expected)")
            }
        }
        // α = 0 is the linear filter alone.
        var linear: [Float] = []
        GraphFilterScorer(model: model, filterWeight: 0).score(users: [[0, 1]], into: &linear)
        #expect(abs(Double(linear[2]) - (p[0 * n + 2] + p[1 * n + 2])) < 1e-6 && linear[4] == 0)
    }
}
