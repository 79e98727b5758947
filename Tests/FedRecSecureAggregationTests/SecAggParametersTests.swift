import Foundation
import FedRecSupport
import Testing

@testable import FedRecSecureAggregation

@Suite struct HypergeometricTests {
    typealias Vectors = StreamKnownAnswers

    static func close(_ a: Double, _ b: Double, relative: Double = 1e-11) -> Bool {
        abs(a - b) <= relative * max(abs(a), abs(b)) + 1e-300
    }

    /// P(X = x), P(X <= x) and P(X > x) against exact rational arithmetic (which scipy's
    /// hypergeom matches) to 1e-11 relative, down to tails of 1e-60; the quantiles exactly.
    @Test(arguments: Vectors.hypergeometric.indices)
    func matchesIndependentDistribution(_ index: Int) throws {
        let vector = Vectors.hypergeometric[index]
        let distribution = try Hypergeometric(population: vector.population, successes: vector.successes, draws: vector.draws)
        for (x, pmf, cdf, survival) in vector.points {
            #expect(Self.close(distribution.pmf(x), pmf), "pmf(\(x)) = \(distribution.pmf(x)), not \(pmf)")
            #expect(Self.close(distribution.cdf(x), cdf), "cdf(\(x)) = \(distribution.cdf(x)), not \(cdf)")
            #expect(Self.close(distribution.survival(x), survival), "survival(\(x)) = \(distribution.survival(x)), not \(survival)")
            // The closed form, whose lgamma rounding grows with the population.
            #expect(Self.close(exp(distribution.logPMF(x)), pmf, relative: 1e-7))
        }
        for (p, lower, upper) in vector.quantiles {
            #expect(distribution.lowerQuantile(p) == lower, "lowerQuantile(\(p))")
            #expect(distribution.upperQuantile(p) == upper, "upperQuantile(\(p))")
        }
        let total = (0...vector.draws).reduce(0.0) { $0 + distribution.pmf($1) }
        #expect(abs(total - 1) < 1e-12)
    }

    @Test func refusesImpossibleDistributions() {
        for (population, successes, draws) in [(-1, 0, 0), (10, 11, 2), (10, 2, 11), (10, -1, 2), (10, 2, -1)] {
            #expect(throws: FedRecError(.usage, "a hypergeometric distribution needs 0 <= successes, draws <= population; got population \(population), successes \(successes), draws \(draws)")) {
                try Hypergeometric(population: population, successes: successes, draws: draws)
            }
        }
    }
}

@Suite struct SecAggParametersTests {
    typealias Vectors = StreamKnownAnswers

    /// The whole rule against Python's re-implementation on scipy.stats.hypergeom, over
    /// n ∈ {2 … 100,000} × δ ∈ {0, 0.1, 0.3} × γ ∈ {0, 0.05, 0.2}; degree 0 marks no parameters.
    @Test func choiceMatchesIndependentRule() throws {
        for (n, delta, gamma, degree, threshold) in Vectors.parameters {
            if degree == 0 {
                #expect(throws: FedRecError.self, "n = \(n), δ = \(delta), γ = \(gamma)") {
                    try SecAggParameters.choose(partyCount: n, dropoutRate: delta, corruptFraction: gamma)
                }
                continue
            }
            let chosen = try SecAggParameters.choose(partyCount: n, dropoutRate: delta, corruptFraction: gamma)
            #expect(
                chosen.degree == degree && chosen.threshold == threshold,
                "n = \(n), δ = \(delta), γ = \(gamma): (k, t) = (\(chosen.degree), \(chosen.threshold)), not (\(degree), \(threshold))")
            #expect(chosen.partyCount == n && chosen.dropoutRate == delta && chosen.corruptFraction == gamma)
        }
    }

    /// 2 <= t <= k, k even or the complete graph, and the bounds the rule promises, rechecked
    /// from the distributions: P(corrupt neighbours >= t) <= 2^-41/n, P(survivors < t) < 2^-20/n.
    @Test func choicesKeepTheirPromises() throws {
        for (n, delta, gamma, degree, _) in Vectors.parameters where degree > 0 {
            let chosen = try SecAggParameters.choose(partyCount: n, dropoutRate: delta, corruptFraction: gamma)
            let k = chosen.degree
            let t = chosen.threshold
            #expect(chosen.isCompleteGraph == (k == n - 1))
            #expect(chosen.isCompleteGraph || (k % 2 == 0 && k < n - 1))
            let corrupt = Int((Double(n) * (gamma + 1e-14)).rounded(.down))
            let survivors = Int((Double(n) * (1 - delta - 1e-14)).rounded(.up))
            #expect((2 <= t || (t == 1 && chosen.isCompleteGraph && corrupt == 0)) && t <= k)
            if chosen.isCompleteGraph {
                #expect(corrupt < t && t <= survivors - 1)
            } else {
                let adversary = try Hypergeometric(population: n, successes: corrupt, draws: k)
                let surviving = try Hypergeometric(population: n, successes: survivors, draws: k)
                #expect(adversary.survival(t - 1) <= pow(2, -41) / Double(n))
                #expect(surviving.cdf(t - 1) < pow(2, -20) / Double(n))
                #expect(
                    SecAggParameters.logDisconnectionBound(partyCount: n, degree: k, badParties: corrupt + Int((Double(n) * (delta + 1e-14)).rounded(.down)))
                        < -41 * log(2.0))
            }
        }
    }

    /// The disconnection bound against the product it stands for, n(n-k-1)/2 · B!/(B-k)! · (n-k)!/n!.
    @Test func disconnectionBoundMatchesProduct() {
        for (n, k, b) in [(100, 10, 30), (1000, 36, 150), (50, 8, 5)] {
            var product = Double(n) * Double(n - k - 1) / 2
            for i in 0..<k { product *= Double(max(b - i, 0)) / Double(n - i) }
            let bound = SecAggParameters.logDisconnectionBound(partyCount: n, degree: k, badParties: b)
            if k > b {
                #expect(bound == -.infinity)
            } else {
                #expect(abs(bound - log(product)) < 1e-9 * abs(log(product)))
            }
        }
    }

    /// k grows like log n: non-decreasing from a thousand to a million parties, and small.
    @Test func degreeGrowsLogarithmically() throws {
        let counts = [1000, 3000, 10_000, 30_000, 100_000, 300_000, 1_000_000]
        let degrees = try counts.map { try SecAggParameters.choose(partyCount: $0, dropoutRate: 0.1, corruptFraction: 0.05).degree }
        #expect(zip(degrees, degrees.dropFirst()).allSatisfy { $0 <= $1 }, "\(degrees)")
        #expect(zip(counts, degrees).allSatisfy { Double($1) <= 4 * log2(Double($0)) }, "\(degrees)")
        #expect(degrees[degrees.count - 1] - degrees[0] <= 24, "\(degrees)")
    }

    @Test func guaranteeSentences() throws {
        let chosen = try SecAggParameters.choose(partyCount: 1000, dropoutRate: 0.1, corruptFraction: 0.05)
        #expect(
            chosen.guarantee
                == "each party shares with k = 36 neighbours, any t = 19 reconstruct: with up to 5 % corrupt parties and 10 % dropouts, the server learns nothing beyond the sum except with probability 2^-40, and a round fails with probability below 2^-20"
        )
        let small = try SecAggParameters.choose(partyCount: 5, dropoutRate: 0.3, corruptFraction: 0.2)
        #expect(small.isCompleteGraph)
        #expect(
            small.guarantee
                == "each party shares with all k = 4 other parties, any t = 2 reconstruct: with up to 20 % corrupt parties and 30 % dropouts, the server learns nothing beyond the sum and no round fails"
        )
    }

    @Test func codableRoundTrip() throws {
        let chosen = try SecAggParameters.choose(partyCount: 943, dropoutRate: 0.3, corruptFraction: 0.2)
        let decoded = try JSONDecoder().decode(SecAggParameters.self, from: JSONEncoder().encode(chosen))
        #expect(decoded == chosen)
    }

    @Test func refusesBadArguments() {
        for (n, delta, gamma) in [
            (1, 0.1, 0.05), (0, 0.1, 0.05), (1_000_001, 0.1, 0.05), (100, -0.1, 0.05), (100, 1.0, 0), (100, .nan, 0.05),
            (100, 0.1, -0.01), (100, 0.1, 1.0), (100, 0.1, .infinity), (100, 0.5, 0.45), (100, 0.0, 0.95),
        ] {
            do {
                _ = try SecAggParameters.choose(partyCount: n, dropoutRate: delta, corruptFraction: gamma)
                Issue.record("n = \(n), δ = \(delta), γ = \(gamma) was accepted")
            } catch let error as FedRecError {
                #expect(error.failure == .usage)
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        // n = 2: the one other party holds the one share (t = 1) unless a party may be corrupt.
        let pair = try? SecAggParameters.choose(partyCount: 2, dropoutRate: 0.1, corruptFraction: 0.05)
        #expect(pair?.degree == 1 && pair?.threshold == 1)
        #expect(throws: FedRecError.self) { try SecAggParameters.choose(partyCount: 2, dropoutRate: 0, corruptFraction: 0.5) }
    }
}
