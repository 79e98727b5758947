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
