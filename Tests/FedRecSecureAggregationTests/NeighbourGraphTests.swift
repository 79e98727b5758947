import FedRecSupport
import Testing

@testable import FedRecSecureAggregation

@Suite struct NeighbourGraphTests {
    typealias Vectors = StreamKnownAnswers

    static var seed: [UInt8] { KnownAnswerVectors.bytes(Vectors.graphSeed) }

    /// The ring against Python's Fisher–Yates on the same keystream and Lemire reduction.
    @Test func permutationMatchesIndependentFisherYates() throws {
        #expect(try NeighbourGraph(partyCount: 10, degree: 4, seed: Self.seed).ring.map(Int.init) == Vectors.ring10)
        let graph = try NeighbourGraph(partyCount: 1000, degree: 36, seed: Self.seed)
        #expect(graph.ring.map(Int.init) == Vectors.ring1000)
        #expect((0..<1000).allSatisfy { Int(graph.ring[Int(graph.position[$0])]) == $0 })
    }

    /// Symmetric, loop-free, sorted, every degree exactly k, `areNeighbours` agreeing with
    /// `neighbours(of:)`, and the neighbours exactly the parties 1...k/2 ring positions away.
    @Test(arguments: [(4, 2), (10, 2), (10, 4), (11, 6), (50, 48), (1000, 36), (1001, 100)])
    func hararyStructure(_ n: Int, _ k: Int) throws {
        let graph = try NeighbourGraph(partyCount: n, degree: k, seed: Self.seed)
        #expect(graph.partyCount == n && graph.degree == k)
        var adjacency = [Set<Int>]()
        for u in 0..<n {
            let neighbours = graph.neighbours(of: u)
            #expect(neighbours.count == k)
            #expect(neighbours == neighbours.sorted() && Set(neighbours).count == k && !neighbours.contains(u))
            var distances = [Int: Int]()
            for v in neighbours {
                let d = abs(graph.ringPosition(of: u) - graph.ringPosition(of: v))
                distances[min(d, n - d), default: 0] += 1
            }
            #expect(distances == Dictionary(uniqueKeysWithValues: (1...(k / 2)).map { ($0, 2) }))
            adjacency.append(Set(neighbours))
        }
        for u in 0..<n {
            for v in adjacency[u] { #expect(adjacency[v].contains(u)) }
        }
        for u in stride(from: 0, to: n, by: max(1, n / 40)) {
            for v in 0..<n { #expect(graph.areNeighbours(u, v) == adjacency[u].contains(v)) }
        }
        #expect(Self.isConnected(adjacency))
    }

    /// A degree of n - 1 or more is the complete graph: every other party, degree n - 1.
    @Test(arguments: [(2, 1), (2, 2), (3, 2), (3, 4), (4, 3), (7, 6), (7, 100)])
    func completeGraphs(_ n: Int, _ k: Int) throws {
        let graph = try NeighbourGraph(partyCount: n, degree: k, seed: Self.seed)
        #expect(graph.degree == n - 1)
        for u in 0..<n {
            #expect(graph.neighbours(of: u) == (0..<n).filter { $0 != u })
            for v in 0..<n { #expect(graph.areNeighbours(u, v) == (u != v)) }
        }
    }

    /// One seed, one graph; another seed, another permutation.
    @Test func deterministicPerSeed() throws {
        let a = try NeighbourGraph(partyCount: 500, degree: 20, seed: Self.seed)
        let b = try NeighbourGraph(partyCount: 500, degree: 20, seed: Self.seed)
        var otherSeed = Self.seed
        otherSeed[0] ^= 0x80
        let c = try NeighbourGraph(partyCount: 500, degree: 20, seed: otherSeed)
        #expect(a.ring == b.ring && a.position == b.position)
        #expect((0..<500).allSatisfy { a.neighbours(of: $0) == b.neighbours(of: $0) })
        #expect(a.ring != c.ring)
        #expect((0..<500).contains { a.neighbours(of: $0) != c.neighbours(of: $0) })
    }

    @Test func refusesBadArguments() {
        let seed = Self.seed
        for (n, k, bytes) in [(1, 2, 32), (0, 2, 32), (10, 2, 31), (10, 2, 33), (10, 3, 32), (10, 0, 32), (10, -2, 32), (10, 7, 32)] {
            #expect(throws: FedRecError.self) {
                try NeighbourGraph(partyCount: n, degree: k, seed: Array((seed + seed).prefix(bytes)))
            }
            do {
                _ = try NeighbourGraph(partyCount: n, degree: k, seed: Array((seed + seed).prefix(bytes)))
            } catch let error as FedRecError {
                #expect(error.failure == .usage)
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
    }

    /// Breadth-first search from party 0 reaches everyone.
    static func isConnected(_ adjacency: [Set<Int>]) -> Bool {
        var seen = Set([0])
        var frontier = [0]
        while let u = frontier.popLast() {
            for v in adjacency[u] where seen.insert(v).inserted { frontier.append(v) }
        }
        return seen.count == adjacency.count
    }
}
