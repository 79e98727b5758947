import FedRecSupport

/// Who shares masks and secrets with whom in a SecAgg+ round: the Harary graph H(k, n) on a
/// keyed random permutation of the parties (Bell et al., CCS 2020, §3.2; Google's SecAgg+
/// builds it the same way). The parties sit on a ring in the order of a permutation π, and
/// each is adjacent to the k/2 parties on either side of it along the ring; a degree of n - 1
/// or more is the complete graph of classic SecAgg (Bonawitz et al., CCS 2017).
///
/// π is drawn by Fisher–Yates from `ChaCha20Generator(seed: seed, label: "neighbour-graph")`:
/// starting from the identity (ring position p holds party p), for i = n - 1 down to 1 the
/// entries at positions i and `nextIndex(below: i + 1)` are swapped. Every party that knows the
/// round's seed builds the same graph; the permutation is what keeps the corrupt parties from
/// choosing to sit next to one party (the seed must not be known to them before they commit to
/// taking part).
///
/// Parties are numbered 0..<partyCount. The graph is held as the permutation and its inverse
/// (8 bytes a party), so `neighbours(of:)` costs O(k) and `areNeighbours` O(1).
public struct NeighbourGraph: Sendable {
    /// n: the parties, numbered 0..<partyCount.
    public let partyCount: Int
    /// Each party's number of neighbours: the even degree asked for, or n - 1 when the graph
    /// is complete (a degree of n - 1 or more asked for).
    public let degree: Int
    /// The label of the stream the permutation is drawn from.
    static let streamLabel = "neighbour-graph"

    /// ring[p]: the party at ring position p.
    let ring: [Int32]
    /// position[u]: the ring position of party u (the inverse of `ring`).
    let position: [Int32]

    /// The Harary graph of `degree` on `partyCount` parties (2 ... Int32.max) placed on the ring
    /// by the permutation `seed` (32 bytes) draws. Throws `.usage` for fewer than 2 parties, a
    /// seed of another length, or a degree below n - 1 that is not even and at least 2.
    public init(partyCount: Int, degree: Int, seed: [UInt8]) throws {
        guard partyCount >= 2, partyCount <= Int(Int32.max) else {
            throw FedRecError(.usage, "a neighbour graph needs 2 to \(Int32.max) parties, not \(partyCount)")
        }
        guard seed.count == ChaCha20Generator.seedByteCount else {
            throw FedRecError(
                .usage, "a neighbour graph's seed is \(ChaCha20Generator.seedByteCount) bytes, not \(seed.count)")
        }
        guard degree >= partyCount - 1 || (degree >= 2 && degree % 2 == 0) else {
            throw FedRecError(
                .usage,
                "a neighbour graph's degree must be even and at least 2, or at least n - 1 = \(partyCount - 1) for the complete graph, not \(degree)"
            )
        }
        self.partyCount = partyCount
        self.degree = min(degree, partyCount - 1)

        var generator = ChaCha20Generator(seed: seed, label: Self.streamLabel)
        var ring = (0..<partyCount).map { Int32($0) }
        for i in stride(from: partyCount - 1, to: 0, by: -1) {
            ring.swapAt(i, generator.nextIndex(below: i + 1))
        }
        var position = [Int32](repeating: 0, count: partyCount)
        for (p, party) in ring.enumerated() { position[Int(party)] = Int32(p) }
        self.ring = ring
        self.position = position
    }

    /// Whether every other party is a neighbour.
    var isComplete: Bool { degree == partyCount - 1 }

    /// The ring position of `party` (0..<partyCount).
    func ringPosition(of party: Int) -> Int {
        precondition((0..<partyCount).contains(party), "party \(party) is not in 0..<\(partyCount)")
        return Int(position[party])
    }

    /// The neighbours of `party` (0..<partyCount, else a programming error that stops the
    /// process), ascending, without the party itself: the k/2 parties on either side of it on
    /// the ring, or every other party when the graph is complete.
    public func neighbours(of party: Int) -> [Int] {
        let here = ringPosition(of: party)
        if isComplete {
            return (0..<partyCount).filter { $0 != party }
        }
        var result = [Int]()
        result.reserveCapacity(degree)
        for offset in 1...(degree / 2) {
            result.append(Int(ring[(here + offset) % partyCount]))
            result.append(Int(ring[(here - offset + partyCount) % partyCount]))
        }
        result.sort()
        return result
    }

    /// Whether `a` and `b` (each in 0..<partyCount) are distinct and adjacent: their ring
    /// positions at most k/2 apart either way round.
    public func areNeighbours(_ a: Int, _ b: Int) -> Bool {
        let distance = abs(ringPosition(of: a) - ringPosition(of: b))
        guard distance != 0 else { return false }
        return min(distance, partyCount - distance) <= degree / 2 || isComplete
    }
}
