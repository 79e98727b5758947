import Foundation
import Testing

@testable import FedRecText

@Suite struct BertEncoderTests {
    @Test("fastErf agrees with libm's erf to 5e-7 over [-6, 6]")
    func erfAccuracy() {
        var worst: Double = 0
        for i in -60000...60000 {
            let x = Float(i) / 10000
            worst = max(worst, abs(Double(fastErf(x)) - erf(Double(x))))
        }
        #expect(worst < 5e-7, "largest error \(worst)")
    }
}
