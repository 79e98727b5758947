import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecEvaluation

@Suite("ranking metrics and rating errors")
struct MetricsTests {
    func full(_ scores: [Float], excluded: [Int] = [], relevant: [Int32], k: Int) -> RankingMetrics {
        var metrics = RankingMetrics(k: k)
        var mask = [Bool](repeating: false, count: scores.count)
        for e in excluded { mask[e] = true }
        scores.withUnsafeBufferPointer { s in mask.withUnsafeBufferPointer { m in metrics.addFullRanking(scores: s, excluded: m, relevant: relevant) } }
        return metrics
    }

    @Test("full ranking skips training items; HR, NDCG, recall and MRR by hand")
    func fullRanking() {
        // Scores: item 0 is best but excluded (trained); test item 3 then ranks second.
        let m = full([9, 5, 1, 4, 8, 0], excluded: [0], relevant: [3], k: 2)
        // Order of the rest: 4 (8), 1 (5), 3 (4) → rank 2 (0-based) → outside top-2.
        #expect(m.hitRate == 0 && m.meanRecall == 0 && m.meanNDCG == 0)
        #expect(abs(m.mrr - 1.0 / 3) < 1e-12)
        let inTop = full([9, 5, 1, 4, 8, 0], excluded: [0], relevant: [1], k: 2)
        #expect(inTop.hitRate == 1)
        #expect(abs(inTop.meanNDCG - 1 / log2(3.0)) < 1e-12)  // rank 1 → 1/log2(1+2)
        #expect(abs(inTop.mrr - 0.5) < 1e-12)
    }

    @Test("several test items: recall is hits over |T|, NDCG over the ideal")
    func severalRelevant() {
        let m = full([0.9, 0.8, 0.1, 0.7], relevant: [0, 2], k: 2)
        #expect(m.hitRate == 1)
        #expect(m.meanRecall == 0.5)
        let ideal = 1.0 + 1 / log2(3.0)
        #expect(abs(m.meanNDCG - 1.0 / ideal) < 1e-12)
        #expect(m.mrr == 1)
    }

    @Test("ties are broken toward the smaller item index")
    func ties() {
        #expect(full([1, 1, 1], relevant: [0], k: 1).hitRate == 1)
        #expect(full([1, 1, 1], relevant: [2], k: 2).hitRate == 0)
    }

    @Test("full ranking agrees with ranks counted item by item, ties and several test items included", arguments: [1, 2, 3])
    func fullRankingAgreesWithCounting(seed: UInt64) {
        var generator = SplitMix(seed)
        for _ in 0..<50 {
            let items = 1 + Int(generator.next() % 300)
            // Scores on a coarse grid so that ties are frequent.
            let scores = (0..<items).map { _ in Float(generator.next() % 17) / 4 }
            let excluded = (0..<items).map { _ in generator.next() % 5 == 0 }
            let candidates = (0..<items).filter { !excluded[$0] }
            let relevant = candidates.filter { _ in generator.next() % 9 == 0 }.map { Int32($0) }
            let fast = full(scores, excluded: (0..<items).filter { excluded[$0] }, relevant: relevant, k: 10)
            // By hand: the rank of t counts the candidates with a higher score, or the same
            // score and a smaller index.
            var hits = 0.0, recall = 0.0, dcg = 0.0, rr = 0.0
            if !relevant.isEmpty {
                let ranks = relevant.map { t in
                    candidates.filter { scores[$0] > scores[Int(t)] || (scores[$0] == scores[Int(t)] && $0 < Int(t)) }.count
                }
                let top = ranks.filter { $0 < 10 }
                hits = top.isEmpty ? 0 : 1
                recall = Double(top.count) / Double(relevant.count)
                let ideal = (0..<min(10, relevant.count)).reduce(0.0) { $0 + 1 / log2(Double($1) + 2) }
                dcg = top.reduce(0.0) { $0 + 1 / log2(Double($1) + 2) } / ideal
                rr = 1 / Double((ranks.min() ?? 0) + 1)
            }
            if relevant.isEmpty {
                #expect(fast.hitRate.isNaN)
            } else {
                #expect(fast.hitRate == hits && abs(fast.meanRecall - recall) < 1e-12)
                #expect(abs(fast.meanNDCG - dcg) < 1e-12 && abs(fast.mrr - rr) < 1e-12)
            }
        }
    }

    @Test("sampled protocol ranks the test item against the negatives only")
    func sampled() {
        var m = RankingMetrics(k: 1)
        let scores: [Float] = [0.2, 0.9, 0.5, 0.1]
        scores.withUnsafeBufferPointer { m.addSampled(scores: $0, relevant: [2], negatives: [0, 3]) }
        #expect(m.sampledHitRate == 1 && m.sampledMeanNDCG == 1)
        scores.withUnsafeBufferPointer { m.addSampled(scores: $0, relevant: [2], negatives: [1, 3]) }
        #expect(m.sampledHitRate == 0.5)
    }

    @Test("RMSE and MAE")
    func errors() {
        var e = RatingErrors()
        e.add(predicted: 3, actual: 4)
        e.add(predicted: 5, actual: 2)
        #expect(abs(e.rmse - (5.0).squareRoot()) < 1e-12 && e.mae == 2)
    }

    @Test("top-K keeps the K best, best first, finite scores only")
    func topK() {
        #expect(Recommender.topK([0.1, 0.7, -.infinity, 0.7, 0.3], k: 3) == [1, 3, 4])
        #expect(Recommender.topK([0.5], k: 3) == [0])
    }
}


/// SplitMix64 (Steele, Lea & Flood 2014): a test's own small generator.
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
