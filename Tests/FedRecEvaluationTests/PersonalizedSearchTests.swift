import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecEvaluation
import FedRecSupport
import FedRecFormats

@Suite("personalized search: cosine to the item text plus β times the standardised preference")
struct PersonalizedSearchTests {
    /// Three items; item 0 matches the query best, item 1 a little less, item 2 not at all.
    /// The user prefers item 1 strongly.
    static let table = TextEmbeddingTable(vectors: [2, 0, 0.8, 0.6, 0, 3], items: 3, dim: 2, encoder: "test")
    static let preference: [Float] = [0, 3, 0]

    @Test("a hand example: text-only order 0, 1, 2; a small β keeps it, a larger β puts the preferred item first")
    func handExample() throws {
        let search = PersonalizedSearch(table: Self.table)
        let cosine = try search.similarities(to: [5, 0])  // rows and query normalised: [1, 0.8, 0]
        #expect(zip(cosine, [1, 0.8, 0] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 })
        // z = ([0, 3, 0] − 1) / √2 = [−0.7071, 1.4142, −0.7071]
        let z = PersonalizedSearch.standardised(Self.preference)
        #expect(zip(z, [-0.70710678, 1.41421356, -0.70710678] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 })

        #expect(Recommender.search(similarity: cosine, k: 3).map(\.item) == [0, 1, 2])
        let small = PersonalizedSearch.combine(similarity: cosine, preference: Self.preference, beta: 0.05)  // 0.9646, 0.8707, −0.0354
        #expect(Recommender.topK(small, k: 3) == [0, 1, 2])
        let large = PersonalizedSearch.combine(similarity: cosine, preference: Self.preference, beta: 0.2)  // 0.8586, 1.0828, −0.1414
        #expect(Recommender.topK(large, k: 3) == [1, 0, 2])
        #expect(abs(large[1] - (0.8 + 0.2 * 1.41421356)) < 1e-6)
        // β = 0 or no user: the similarity itself.
        #expect(PersonalizedSearch.combine(similarity: cosine, preference: Self.preference, beta: 0) == cosine)
        #expect(PersonalizedSearch.combine(similarity: cosine, preference: nil, beta: 1) == cosine)
    }

    @Test("the preference's scale does not matter; a constant preference leaves the text order")
    func scaleFree() throws {
        let cosine = try PersonalizedSearch(table: Self.table).similarities(to: [1, 0])
        let a = PersonalizedSearch.combine(similarity: cosine, preference: Self.preference, beta: 0.2)
        let b = PersonalizedSearch.combine(similarity: cosine, preference: Self.preference.map { 100 * $0 - 7 }, beta: 0.2)
        #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(PersonalizedSearch.standardised([4, 4, 4]) == [0, 0, 0])
        #expect(PersonalizedSearch.combine(similarity: cosine, preference: [4, 4, 4], beta: 3) == cosine)
    }

    @Test("a query of another dimension is a shape error; a zero query is bad data")
    func badQueries() throws {
        let search = PersonalizedSearch(table: Self.table)
        #expect(throws: FedRecError.self) { try search.similarities(to: [1, 0, 0]) }
        #expect(failure { _ = try search.similarities(to: [1, 0, 0], file: "q.json") } == .shape)
        #expect(failure { _ = try search.similarities(to: [0, 0]) } == .badData)
    }

    @Test("query vectors: the fl-encode --json line, its TSV line, a JSON array, bare numbers")
    func queryVectors() throws {
        #expect(try QueryVector.parse("{\"embedding\":[0.5,-0.25,1e-3],\"input_ids\":[101,102],\"text\":\"a, b\"}\n", file: "-") == [0.5, -0.25, 0.001])
        #expect(try QueryVector.parse("space adventure\t0.5\t-0.25\n", file: "-") == [0.5, -0.25])
        #expect(try QueryVector.parse("\t0.5\t-0.25\n", file: "-") == [0.5, -0.25])  // the empty text
        #expect(try QueryVector.parse("[1, 2]", file: "-") == [1, 2])
        #expect(try QueryVector.parse("\n1 2 3\n\n", file: "-") == [1, 2, 3])
        for (text, failure) in [("", FailureClass.emptyInput), ("1 2\n3 4\n", .badData), ("{\"text\":\"x\"}", .badData),
                                ("{\"embedding\":[1,\"a\"]}", .badData), ("1 x 3", .badData), ("{oops", .badData)] {
            #expect(self.failure { _ = try QueryVector.parse(text, file: "q") } == failure, "\(text)")
        }
    }

    @Test("a table is checked against the dataset: rows (83) and dataset id (86)")
    func tableChecks() throws {
        let table = TextEmbeddingTable(vectors: [1, 0, 0, 1], items: 2, dim: 2, encoder: "test", datasetId: "abc")
        try table.requireAligned(items: 2, datasetId: "abc")
        #expect(failure { try table.requireAligned(items: 3, datasetId: "abc") } == .shape)
        #expect(failure { try table.requireAligned(items: 2, datasetId: "xyz") } == .mismatch)
        var anonymous = table
        anonymous.datasetId = nil
        try anonymous.requireAligned(items: 2, datasetId: "xyz")
    }

    /// The failure class `body` throws, or nil when it does not throw a `FedRecError`.
    func failure(_ body: () throws -> Void) -> FailureClass? {
        do { try body() } catch let e as FedRecError { return e.failure } catch {}
        return nil
    }
}
