/// Accumulates ranking metrics over users; each user counts once (means over users).
public struct RankingMetrics: Sendable, Equatable {
    public let k: Int
    public private(set) var users = 0
    private var hits = 0.0, ndcg = 0.0, recall = 0.0, reciprocalRank = 0.0
    private var sampledUsers = 0
    private var sampledHits = 0.0, sampledNDCG = 0.0

    public init(k: Int) { self.k = k }

    /// Adds another set of users' metrics (same K), e.g. from another shard.
    public mutating func merge(_ other: RankingMetrics) {
        precondition(other.k == k)
        users += other.users
        hits += other.hits
        ndcg += other.ndcg
        recall += other.recall
        reciprocalRank += other.reciprocalRank
        sampledUsers += other.sampledUsers
        sampledHits += other.sampledHits
        sampledNDCG += other.sampledNDCG
    }

    public var hitRate: Double { users > 0 ? hits / Double(users) : .nan }
    public var meanNDCG: Double { users > 0 ? ndcg / Double(users) : .nan }
    public var meanRecall: Double { users > 0 ? recall / Double(users) : .nan }
    public var mrr: Double { users > 0 ? reciprocalRank / Double(users) : .nan }
    public var sampledHitRate: Double { sampledUsers > 0 ? sampledHits / Double(sampledUsers) : .nan }
    public var sampledMeanNDCG: Double { sampledUsers > 0 ? sampledNDCG / Double(sampledUsers) : .nan }
    public var sampledUserCount: Int { sampledUsers }

    /// Full ranking: `scores` over all items; `excluded` items (the user's training
    /// items) are not ranked; `relevant` are the test items. Ties are broken toward the
    /// smaller item index, so results are deterministic.
    /// - Complexity: O(items · min(|relevant|, k)) branch-free comparisons: with the
    ///   relevant items sorted by (score descending, index ascending), the j-th has rank
    ///   at least j, so only the first k can be in the top k (and the first gives the
    ///   reciprocal rank).
    public mutating func addFullRanking(scores: UnsafeBufferPointer<Float>, excluded: UnsafeBufferPointer<Bool>, relevant: [Int32]) {
        guard !relevant.isEmpty else { return }
        // "a outranks b": a higher score, or the same score and a smaller index.
        let order: [(score: Float, index: Int)] = relevant.map { (score: scores[Int($0)], index: Int($0)) }.sorted { a, b in
            a.score > b.score || (a.score == b.score && a.index < b.index)
        }
        let count = min(scores.count, excluded.count)
        var ranks: [Int] = []
        ranks.reserveCapacity(min(order.count, k))
        for t in order.prefix(max(k, 1)) {
            var rank = 0
            for i in 0..<count {
                let above = scores[i] > t.score ? 1 : 0
                rank &+= above & (excluded[i] ? 0 : 1)
            }
            for i in 0..<min(t.index, count) {
                let tied = scores[i] == t.score ? 1 : 0
                rank &+= tied & (excluded[i] ? 0 : 1)
            }
            ranks.append(rank)
        }
        users += 1
        let inTop = ranks.filter { $0 < k }
        if !inTop.isEmpty { hits += 1 }
        recall += Double(inTop.count) / Double(relevant.count)
        var dcg = 0.0, ideal = 0.0
        for r in inTop { dcg += 1 / log2(Double(r) + 2) }
        for i in 0..<min(k, relevant.count) { ideal += 1 / log2(Double(i) + 2) }
        ndcg += dcg / ideal
        reciprocalRank += 1 / Double(ranks.min()! + 1)
    }

    /// Full ranking in a uniformly random order, as an exact expectation: `relevant` items
    /// among `candidates`. With K' = min(K, C): E[HR] = 1 − Π_{j<K'} (C − R − j)/(C − j);
    /// E[DCG] = (R/C) Σ_{r<K'} 1/log₂(r + 2) (each position holds a relevant item with
    /// probability R/C); E[Recall] = K'/C; E[RR] = Σ_j P(first relevant at j)/(j + 1).
    /// - Complexity: O(C).
    public mutating func addRandomFullRanking(candidates c: Int, relevant r: Int) {
        guard r > 0, c >= r else { return }
        let top = min(k, c)
        var miss = 1.0
        for j in 0..<top { miss *= Double(max(c - r - j, 0)) / Double(c - j) }
        var positions = 0.0
        for i in 0..<top { positions += 1 / log2(Double(i) + 2) }
        var ideal = 0.0
        for i in 0..<min(k, r) { ideal += 1 / log2(Double(i) + 2) }
        // P(first relevant at ≥ j) = Π_{t<j} (C − R − t)/(C − t).
        var atLeast = 1.0, rr = 0.0
        for j in 0...(c - r) {
            let next = atLeast * Double(c - r - j) / Double(c - j)
            rr += (atLeast - next) / Double(j + 1)
            atLeast = next
        }
        users += 1
        hits += 1 - miss
        ndcg += Double(r) / Double(c) * positions / ideal
        recall += Double(top) / Double(c)
        reciprocalRank += rr
    }

    /// The sampled protocol in a uniformly random order, as an exact expectation: each
    /// relevant item is at each of the n + 1 positions with probability 1/(n + 1).
    public mutating func addRandomSampled(negatives n: Int, relevant: Int) {
        guard relevant > 0, n > 0 else { return }
        let top = min(k, n + 1)
        var positions = 0.0
        for i in 0..<top { positions += 1 / log2(Double(i) + 2) }
        sampledUsers += 1
        sampledHits += Double(top) / Double(n + 1)
        sampledNDCG += positions / Double(n + 1)
    }

    /// Sampled protocol (He et al. 2017, NCF): each test item ranked against the user's
    /// sampled negatives only; per user, the mean over its test items.
    public mutating func addSampled(scores: UnsafeBufferPointer<Float>, relevant: [Int32], negatives: [Int32]) {
        guard !relevant.isEmpty, !negatives.isEmpty else { return }
        var userHits = 0.0, userNDCG = 0.0
        for t in relevant {
            let st = scores[Int(t)]
            var rank = 0
            for n in negatives {
                let s = scores[Int(n)]
                if s > st || (s == st && n < t) { rank += 1 }
            }
            if rank < k {
                userHits += 1
                userNDCG += 1 / log2(Double(rank) + 2)
            }
        }
        sampledUsers += 1
        sampledHits += userHits / Double(relevant.count)
        sampledNDCG += userNDCG / Double(relevant.count)
    }
}

/// Rating-prediction errors over all test ratings.
public struct RatingErrors: Sendable, Equatable {
    public private(set) var count = 0
    private var squared = 0.0, absolute = 0.0

    public init() {}

    /// Adds another set of errors, e.g. from another shard.
    public mutating func merge(_ other: RatingErrors) {
        count += other.count
        squared += other.squared
        absolute += other.absolute
    }

    public mutating func add(predicted: Float, actual: Float) {
        let e = Double(predicted) - Double(actual)
        squared += e * e
        absolute += abs(e)
        count += 1
    }

    public var rmse: Double { count > 0 ? (squared / Double(count)).squareRoot() : .nan }
    public var mae: Double { count > 0 ? absolute / Double(count) : .nan }
}

#if canImport(Glibc)
import Glibc
#endif
