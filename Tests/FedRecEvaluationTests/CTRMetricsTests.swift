import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecEvaluation

@Suite("CTR metrics: AUC, log loss, calibration")
struct CTRMetricsTests {
    @Test("AUC by hand: of the 2 × 2 click/non-click pairs, 3 are ordered right")
    func aucByHand() {
        // Clicks score 0.35 and 0.8, non-clicks 0.1 and 0.4: (0.35 > 0.1), (0.8 > 0.1),
        // (0.8 > 0.4) right, (0.35 < 0.4) wrong: 3/4.
        let m = CTRMetrics(scores: [0.1, 0.4, 0.35, 0.8], labels: [0, 0, 1, 1])
        #expect(m.auc == 0.75)
        #expect(m.examples == 4 && m.clicks == 2)
    }

    @Test("a tie between a click and a non-click counts one half")
    func aucTies() {
        // Pairs: (c 0.5, n 0.5) ½, (c 0.5, n 0.2) 1, (c 0.9, n 0.5) 1, (c 0.9, n 0.2) 1: 3.5/4.
        let m = CTRMetrics(scores: [0.5, 0.5, 0.9, 0.2], labels: [1, 0, 1, 0])
        #expect(m.auc == 0.875)
        #expect(CTRMetrics(scores: [0.3, 0.3, 0.3], labels: [1, 0, 0]).auc == 0.5)
    }

    @Test("AUC is undefined with one class; log loss and calibration by hand")
    func lossAndCalibration() {
        #expect(CTRMetrics(scores: [0.2, 0.7], labels: [1, 1]).auc.isNaN)
        let m = CTRMetrics(scores: [0.8, 0.4], labels: [1, 0])
        // −(ln 0.8 + ln 0.6) / 2
        #expect(abs(m.logLoss - 0.366_985_1) < 1e-6)
        // mean predicted 0.6 over observed 0.5
        #expect(abs(m.calibration - 1.2) < 1e-6)
    }
}
