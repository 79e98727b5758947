import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecMechanisms
import FedRecSupport

/// One row of `../shared/dp-reference/epsilon.tsv`.
struct ReferenceRow: CustomStringConvertible {
    let accountant: String
    let q: Double
    let z: Double
    let steps: Int
    let delta: Double
    let epsilon: Double
    let detail: String

    var description: String { "\(accountant) q=\(q) z=\(z) T=\(steps) δ=\(delta) ε=\(epsilon) (\(detail))" }

    static func load() throws -> [ReferenceRow]? {
        guard let path = sharedPath("dp-reference/epsilon.tsv") else { return nil }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var rows: [ReferenceRow] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.hasPrefix("accountant\t") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 7, let q = Double(f[1]), let z = Double(f[2]), let t = Int(f[3]),
                let d = Double(f[4]), let e = Double(f[5])
            else { throw FedRecError(.badData, file: path, "bad reference line: \(line)") }
            rows.append(ReferenceRow(accountant: f[0], q: q, z: z, steps: t, delta: d, epsilon: e, detail: f[6]))
        }
        return rows
    }
}

@Suite("RDP accountant")
struct RDPAccountantTests {
    @Test("default orders are dp_accounting's 156, bit for bit")
    func defaultOrders() {
        let orders = RDPAccountant.defaultOrders
        #expect(orders.count == 156)
        #expect(orders.first == 1.1 && orders[98] == 10.9 && orders[99] == 11 && orders.last == 1024)
        // Python's repr of every `1 + x / 10.0`, x in 1..<100, is the short decimal "1.1" …
        // "10.9" (checked with CPython 3), i.e. each is the double nearest that decimal.
        for x in 1..<100 {
            let decimal = "\(1 + x / 10).\(x % 10)"
            #expect(orders[x - 1] == Double(decimal)!, "order \(decimal)")
        }
        #expect(orders[9] == 2.0 && orders[19] == 3.0)
        #expect(RDPAccountant.integerOrders.count == 67)
    }

    @Test("q = 0 costs nothing, q = 1 is the plain Gaussian α/(2z²), z = 0 is infinite")
    func specialCases() throws {
        let accountant = RDPAccountant()
        #expect(try accountant.rdp(sampleRate: 0, noiseMultiplier: 1, steps: 10).allSatisfy { $0 == 0 })
        let full = try accountant.rdp(sampleRate: 1, noiseMultiplier: 2, steps: 3)
        for (a, r) in zip(accountant.orders, full) { #expect(r == 3 * a / 8) }
        #expect(try accountant.rdp(sampleRate: 0.1, noiseMultiplier: 0).allSatisfy { $0 == .infinity })
        #expect(try accountant.epsilon(sampleRate: 0, noiseMultiplier: 1, steps: 5, delta: 1e-5).epsilon == 0)
        #expect(throws: FedRecError.self) { try accountant.rdp(sampleRate: 1.5, noiseMultiplier: 1) }
        #expect(throws: FedRecError.self) { try accountant.epsilon(rdp: [1], delta: 1e-5) }
    }

    @Test("integer and fractional series agree where they meet")
    func seriesAgree() {
        // The fractional series evaluated at an integer order must give the binomial sum.
        for (q, z) in [(0.01, 1.0), (0.1, 2.0), (0.001, 0.8)] {
            for alpha in [2, 5, 17] {
                let exact = RDPAccountant.logAInteger(q: q, sigma: z, alpha: alpha)
                let series = RDPAccountant.logAFractional(q: q, sigma: z, alpha: Double(alpha))
                #expect(abs(exact - series) <= 1e-9 * max(1, abs(exact)), "q=\(q) z=\(z) α=\(alpha)")
            }
        }
    }

    @Test("log-space helpers")
    func helpers() {
        #expect(abs(logAdd(log(2), log(3)) - log(5)) < 1e-15)
        #expect(logAdd(-.infinity, 1) == 1)
        #expect(abs(logSub(log(5), log(3)) - log(2)) < 1e-15)
        #expect(logSub(1, 1) == -.infinity)
        // erfc(30) = 2.5646562037561116e-393 (below the double range): log = -904.6...
        let x = 30.0
        let u = 1 / (2 * x * x)
        let expected = -x * x - log(x) - 0.5 * log(Double.pi) + log1p(-u + 3 * u * u - 15 * u * u * u + 105 * u * u * u * u)
        #expect(abs(logErfc(x) - expected) < 1e-12)
        // Continuity at the switch to the asymptotic series.
        #expect(abs(logErfc(25.999999) - logErfc(26)) < 1e-3)
        #expect(abs(logErfc(1) - log(erfc(1))) == 0)
    }

    @Test("matches dp_accounting on every reference row; never below it",
          .enabled(if: sharedPath("dp-reference/epsilon.tsv") != nil, "../shared/dp-reference/epsilon.tsv is absent"))
    func reference() throws {
        let rows = try #require(try ReferenceRow.load())
        let full = RDPAccountant()
        let integer = RDPAccountant(orders: RDPAccountant.integerOrders)
        // The reference prints ε to 10 significant digits ("%.10g"), so a value equal to
        // dp_accounting's can read as up to 5e-11 relative below the printed one; 1e-9
        // covers that rounding and nothing else.
        let printSlack = 1e-9
        var maxRelative = 0.0, maxIntRelative = 0.0, minSigned = Double.infinity
        var ours: [String: Double] = [:]  // key → our ε (default orders)
        func key(_ r: ReferenceRow) -> String { "\(r.q) \(r.z) \(r.steps) \(r.delta)" }
        var counts: [String: Int] = [:]
        for row in rows {
            counts[row.accountant, default: 0] += 1
            let mine = try full.epsilon(sampleRate: row.q, noiseMultiplier: row.z, steps: row.steps, delta: row.delta)
            ours[key(row)] = mine.epsilon
            switch row.accountant {
            case "rdp":
                let rel = (mine.epsilon - row.epsilon) / row.epsilon
                maxRelative = max(maxRelative, abs(rel))
                minSigned = min(minSigned, rel)
                #expect(abs(rel) <= 1e-3, "\(row): ours \(mine.epsilon)")
                #expect(rel >= -printSlack, "below the reference: \(row): ours \(mine.epsilon)")
                if let order = row.detail.split(separator: ";").first?.split(separator: "=").last.flatMap({ Double($0) }) {
                    #expect(mine.order == order, "\(row): our order \(mine.order)")
                }
            case "rdp_int":
                let mineInt = try integer.epsilon(
                    sampleRate: row.q, noiseMultiplier: row.z, steps: row.steps, delta: row.delta)
                let rel = (mineInt.epsilon - row.epsilon) / row.epsilon
                maxIntRelative = max(maxIntRelative, abs(rel))
                #expect(abs(rel) <= 1e-3, "\(row): ours \(mineInt.epsilon)")
                #expect(rel >= -printSlack, "below the reference: \(row): ours \(mineInt.epsilon)")
                // Still an upper bound on the tighter PLD value.
                if let pld = rows.first(where: { $0.accountant == "pld" && key($0) == key(row) }) {
                    #expect(mineInt.epsilon >= pld.epsilon, "\(row): below PLD \(pld.epsilon)")
                }
            case "pld", "analytic_gaussian":
                // PLD is tighter, and the analytic Gaussian is exact: RDP must bound both.
                #expect(mine.epsilon >= row.epsilon * (1 - printSlack), "\(row): ours \(mine.epsilon)")
            default:
                Issue.record("unknown accountant in reference: \(row)")
            }
        }
        #expect(counts["rdp", default: 0] > 0)
        print("dp-reference: \(counts) rows; max relative |Δε| rdp \(maxRelative) (most negative \(minSigned)), rdp_int \(maxIntRelative)")
    }

    @Test("calibration returns the smallest z within tolerance that meets the target")
    func calibration() throws {
        let accountant = RDPAccountant()
        for (target, q, steps) in [(1.0, 0.01, 1000), (8.0, 0.1, 100), (3.0, 1.0, 10)] {
            let z = try accountant.calibrateNoiseMultiplier(
                targetEpsilon: target, delta: 1e-5, sampleRate: q, steps: steps, tolerance: 1e-5)
            let at = try accountant.epsilon(sampleRate: q, noiseMultiplier: z, steps: steps, delta: 1e-5).epsilon
            let below = try accountant.epsilon(
                sampleRate: q, noiseMultiplier: z * (1 - 2e-5), steps: steps, delta: 1e-5).epsilon
            #expect(at <= target)
            #expect(below > target, "z=\(z) is not the smallest: ε(z·(1-2e-5)) = \(below)")
        }
        #expect(try accountant.calibrateNoiseMultiplier(targetEpsilon: 1, delta: 1e-5, sampleRate: 0, steps: 5) == 0)
    }

    @Test("remaining steps: the last that fits and the first that does not")
    func remaining() throws {
        let accountant = RDPAccountant()
        let spent = try accountant.rdp(sampleRate: 0.01, noiseMultiplier: 1.1, steps: 200)
        let k = try accountant.remainingSteps(
            spent: spent, sampleRate: 0.01, noiseMultiplier: 1.1, targetEpsilon: 3, delta: 1e-5)
        #expect(k > 0)
        let atK = try accountant.epsilon(sampleRate: 0.01, noiseMultiplier: 1.1, steps: 200 + k, delta: 1e-5).epsilon
        let past = try accountant.epsilon(sampleRate: 0.01, noiseMultiplier: 1.1, steps: 201 + k, delta: 1e-5).epsilon
        #expect(atK <= 3 && past > 3)
        let afterK = zip(spent, try accountant.rdp(sampleRate: 0.01, noiseMultiplier: 1.1, steps: k)).map { $0 + $1 }
        #expect(try accountant.wouldExceed(
            spent: afterK, sampleRate: 0.01, noiseMultiplier: 1.1, targetEpsilon: 3, delta: 1e-5))
        #expect(try !accountant.wouldExceed(
            spent: spent, sampleRate: 0.01, noiseMultiplier: 1.1, targetEpsilon: 3, delta: 1e-5))
        #expect(try accountant.remainingSteps(
            spent: spent, sampleRate: 0, noiseMultiplier: 1.1, targetEpsilon: 3, delta: 1e-5) == Int.max)
        #expect(try accountant.remainingSteps(
            spent: spent, sampleRate: 0.01, noiseMultiplier: 1.1, targetEpsilon: 0.1, delta: 1e-5) == 0)
    }
}
