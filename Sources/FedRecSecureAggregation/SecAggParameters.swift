import Foundation
import FedRecSupport

/// The SecAgg+ parameters of a round: each party's number of neighbours k (the degree of the
/// Harary graph its masks and shares follow) and the Shamir threshold t (how many of a party's
/// k neighbours' shares reconstruct its secrets), chosen from the number of parties n, the
/// expected dropout rate δ and the assumed fraction γ of corrupt parties colluding with an
/// honest-but-curious server (Bell, Bonawitz, Gascón, Lepoint, Raykova, "Secure Single-Server
/// Aggregation with (Poly)Logarithmic Overhead", CCS 2020, §3–4).
///
/// The rule is the one Google's production SecAgg uses (federated-compute,
/// fcp/secagg/server/graph_parameter_finder.cc), restated: for k = 2, 4, … < n - 1, accept
/// the first k for which
/// 1. the graph stays connected once the corrupt and dropped parties are removed, except with
///    probability below 2^-41: a Harary graph is only cut by removing k/2 consecutive parties
///    on the ring at two places, so with B = ⌊γn⌋ + ⌊δn⌋ bad parties a union bound over the
///    n(n - k - 1)/2 pairs of gaps gives
///    P ≤ n(n - k - 1)/2 · B!/(B - k)! · (n - k)!/n! (0 when k > B);
/// 2. a threshold separates the adversary from the survivors: with A ~ Hypergeometric(n, ⌊γn⌋,
///    k) the corrupt neighbours of a party and S ~ Hypergeometric(n, ⌈(1 - δ)n⌉, k) its
///    surviving ones, t1 is the smallest count with P(A > t1) ≤ 2^-41/n and t2 the smallest
///    with P(S ≤ t2) ≥ 2^-20/n (so P(S < t2) < 2^-20/n); the threshold t = max(t1 + 1, 2)
///    must be at most t2. A union bound over the n parties then gives: the server reaches t
///    shares of some honest party's secret with probability at most 2^-41, and some party
///    keeps fewer than t surviving neighbours with probability below 2^-20.
///
/// The two 2^-41 events together give statistical security 2^-40 (`securityBits`), the
/// survivors' event the failure probability 2^-20 (`correctnessBits`). Google's finder accepts
/// k when t2 > t1 and raises t to 2 afterwards; here the raised t itself must be at most t2, so
/// that the failure bound holds for the threshold actually used (the two differ only when
/// t1 = 0 and t2 = 1). As in Google's finder, γ and δ are nudged by 10^-14 before the floors
/// and the ceiling, so that a product such as 0.1 · 30 = 3.0000000000000004 rounds the safe way.
///
/// When no k < n - 1 passes (small n), every other party is a neighbour: the complete graph of
/// classic SecAgg (Bonawitz et al., CCS 2017). The counts are then deterministic: at most ⌊γn⌋
/// corrupt parties, and at least ⌈(1 - δ)n⌉ - 1 survivors among a party's n - 1 others, so
/// t = max(⌊γn⌋ + 1, 2) works whenever it is at most the latter, with no probability of
/// failure beyond the assumption on γ and δ itself; where only one other party survives and
/// none is assumed corrupt (n = 2), t = 1.
public struct SecAggParameters: Sendable, Equatable, Codable {
    /// n: the parties that start the round.
    public let partyCount: Int
    /// k: each party's neighbours (n - 1 for the complete graph).
    public let degree: Int
    /// t: the shares of a party's secrets that reconstruct them.
    public let threshold: Int
    /// δ: the fraction of parties expected to drop out during the round.
    public let dropoutRate: Double
    /// γ: the fraction of parties assumed corrupt and colluding with the server.
    public let corruptFraction: Double

    /// The server learns nothing beyond the sum except with probability 2^-securityBits.
    public static let securityBits = 40
    /// A round fails (some party's secrets cannot be reconstructed) with probability below
    /// 2^-correctnessBits.
    public static let correctnessBits = 20
    /// The most parties accepted, as in Google's finder (no fundamental limit; the bound is
    /// where the rule has been exercised).
    public static let maximumPartyCount = 1_000_000
    /// The most γ + δ accepted: beyond it the honest survivors are too few for the graph to
    /// stay connected at any small degree (Google's finder's bound for an honest-but-curious server).
    public static let maximumBadFraction = 0.9

    /// The nudge applied to γ and δ before rounding their counts (see above).
    static let roundingSlack = 1e-14

    /// Parameters as a roster file states them, not checked: each party rechecks them against
    /// `choose` before it shares anything (`SecAggParty.shareKeys`).
    public init(partyCount: Int, degree: Int, threshold: Int, dropoutRate: Double, corruptFraction: Double) {
        self.partyCount = partyCount
        self.degree = degree
        self.threshold = threshold
        self.dropoutRate = dropoutRate
        self.corruptFraction = corruptFraction
    }

    /// Whether every other party is a neighbour (classic SecAgg).
    public var isCompleteGraph: Bool { degree == partyCount - 1 }

    /// The parameters of a round of `partyCount` parties (2 ... 1,000,000) with dropout rate
    /// `dropoutRate` and corrupt fraction `corruptFraction` (each in [0, 1), their sum at most
    /// 0.9): the smallest even degree the rule accepts, else the complete graph. Throws `.usage`
    /// for arguments out of range, or when not even the complete graph has a threshold above
    /// the corrupt parties and within the survivors (n = 2, or tiny n with many dropouts).
    public static func choose(partyCount: Int, dropoutRate: Double, corruptFraction: Double) throws -> SecAggParameters {
        let n = partyCount
        guard (2...maximumPartyCount).contains(n) else {
            throw FedRecError(.usage, "secure aggregation needs 2 to \(maximumPartyCount) parties, not \(n)")
        }
        guard dropoutRate.isFinite, dropoutRate >= 0, dropoutRate < 1 else {
            throw FedRecError(.usage, "the dropout rate must be in [0, 1), not \(dropoutRate)")
        }
        guard corruptFraction.isFinite, corruptFraction >= 0, corruptFraction < 1 else {
            throw FedRecError(.usage, "the corrupt fraction must be in [0, 1), not \(corruptFraction)")
        }
        guard corruptFraction + dropoutRate <= maximumBadFraction else {
            throw FedRecError(
                .usage,
                "the corrupt fraction plus the dropout rate must be at most \(maximumBadFraction), not \(corruptFraction + dropoutRate)")
        }
        let corrupt = Int((Double(n) * (corruptFraction + roundingSlack)).rounded(.down))
        let dropped = Int((Double(n) * (dropoutRate + roundingSlack)).rounded(.down))
        let survivors = Int((Double(n) * (1 - dropoutRate - roundingSlack)).rounded(.up))
        let perEventBound = -Double(securityBits + 1) * log(2.0)
        let adversaryTail = pow(2.0, -Double(securityBits + 1)) / Double(n)
        let survivorTail = pow(2.0, -Double(correctnessBits)) / Double(n)

        var k = 2
        while k < n - 1 {
            if logDisconnectionBound(partyCount: n, degree: k, badParties: corrupt + dropped) < perEventBound {
                let corruptNeighbours = try Hypergeometric(population: n, successes: corrupt, draws: k)
                let survivingNeighbours = try Hypergeometric(population: n, successes: survivors, draws: k)
                let t1 = corruptNeighbours.upperQuantile(adversaryTail)
                let t2 = survivingNeighbours.lowerQuantile(survivorTail)
                let threshold = max(t1 + 1, 2)
                if threshold <= t2 {
                    return SecAggParameters(
                        partyCount: n, degree: k, threshold: threshold, dropoutRate: dropoutRate,
                        corruptFraction: corruptFraction)
                }
            }
            k += 2
        }

        // t = 1 only where t = 2 is impossible and no party is assumed corrupt (n = 2: one
        // neighbour holds one share): that share is then the secret itself, but it travels
        // only encrypted to that neighbour, and the server receives it only when the protocol
        // calls for it.
        var threshold = max(corrupt + 1, 2)
        if threshold > survivors - 1, corrupt == 0 { threshold = 1 }
        guard threshold <= survivors - 1 else {
            throw FedRecError(
                .usage,
                "no Shamir threshold exists for \(n) parties with dropout rate \(dropoutRate) and corrupt fraction \(corruptFraction): it must exceed the \(corrupt) corrupt parties, and be at most the \(survivors - 1) surviving others, even when every party neighbours every other"
            )
        }
        return SecAggParameters(
            partyCount: n, degree: n - 1, threshold: threshold, dropoutRate: dropoutRate, corruptFraction: corruptFraction)
    }

    /// log of the union bound on the probability that removing `badParties` uniformly chosen
    /// parties disconnects a Harary graph of `degree` (even, < n - 1) on `partyCount` parties:
    /// log(n(n - k - 1)/2) + lgamma(B + 1) + lgamma(n - k + 1) - lgamma(n + 1) - lgamma(B - k + 1),
    /// -infinity when k > B (k/2 consecutive parties twice need k bad ones).
    static func logDisconnectionBound(partyCount n: Int, degree k: Int, badParties b: Int) -> Double {
        guard k <= b else { return -.infinity }
        let pairs = log(Double(n)) + log(Double(n - k - 1)) - log(2.0)
        return pairs + lgamma(Double(b) + 1) + lgamma(Double(n - k) + 1) - lgamma(Double(n) + 1) - lgamma(Double(b - k) + 1)
    }

    /// One sentence for a person: what k and t are, and what they guarantee under γ and δ.
    public var guarantee: String {
        let assumption =
            "with up to \(Self.percent(corruptFraction)) corrupt parties and \(Self.percent(dropoutRate)) dropouts"
        if isCompleteGraph {
            return "each party shares with all k = \(degree) other parties, any t = \(threshold) reconstruct: "
                + assumption + ", the server learns nothing beyond the sum and no round fails"
        }
        return "each party shares with k = \(degree) neighbours, any t = \(threshold) reconstruct: " + assumption
            + ", the server learns nothing beyond the sum except with probability 2^-\(Self.securityBits), "
            + "and a round fails with probability below 2^-\(Self.correctnessBits)"
    }

    /// A fraction as a percentage, "5 %", "12.5 %".
    static func percent(_ fraction: Double) -> String {
        String(format: "%g %%", fraction * 100)
    }
}

/// The hypergeometric distribution: the number of marked items among `draws` drawn without
/// replacement from `population` items of which `successes` are marked. In SecAgg+ it counts
/// the corrupt (or the surviving) parties among one party's k neighbours, the neighbours being
/// a uniformly random k-set of the others (Bell et al., CCS 2020, §3.2).
///
/// `logPMF` is the closed form log C(K, x) + log C(N - K, n - x) - log C(N, n) by `lgamma`.
/// Its rounding grows with N (lgamma(10^6) ≈ 1.3·10^7 carries an absolute error near 10^-9),
/// so the distribution itself is tabulated over its support instead: from the mode, each
/// probability is its neighbour's times the exact ratio
/// P(x + 1)/P(x) = (K - x)(n - x) / ((x + 1)(N - K - n + x + 1)), and the table is divided by its
/// sum, which leaves a relative error of a few ulps per step. Each tail is then summed on its
/// own, smallest terms first (the CDF below the mean, the survival function above it), so that
/// tail probabilities such as 2^-60 keep their relative precision instead of drowning in
/// 1 - (1 - p). Probabilities below about 10^-308 of the mode's underflow to 0.
struct Hypergeometric: Sendable, Equatable {
    let population: Int
    let successes: Int
    let draws: Int
    /// The values of positive probability: max(0, draws - (population - successes)) ...
    /// min(draws, successes).
    let support: ClosedRange<Int>
    /// probabilities[i] = P(X = support.lowerBound + i).
    private let probabilities: [Double]
    /// lowerTail[i] = P(X <= support.lowerBound + i), summed from the bottom.
    private let lowerTail: [Double]
    /// upperTail[i] = P(X >= support.lowerBound + i), summed from the top.
    private let upperTail: [Double]

    /// Throws `.usage` unless 0 <= successes <= population and 0 <= draws <= population.
    init(population: Int, successes: Int, draws: Int) throws {
        guard population >= 0, (0...population).contains(successes), (0...population).contains(draws) else {
            throw FedRecError(
                .usage,
                "a hypergeometric distribution needs 0 <= successes, draws <= population; got population \(population), successes \(successes), draws \(draws)"
            )
        }
        self.population = population
        self.successes = successes
        self.draws = draws
        let low = max(0, draws - (population - successes))
        let high = min(draws, successes)
        support = low...high

        // The mode, ⌊(n + 1)(K + 1)/(N + 2)⌋, kept within the support.
        let mode = min(max((draws + 1) * (successes + 1) / (population + 2), low), high)
        var weights = [Double](repeating: 0, count: high - low + 1)
        weights[mode - low] = 1
        let others = Double(population - successes - draws)
        if mode < high {
            for x in mode..<high {
                weights[x + 1 - low] = weights[x - low] * (Double(successes - x) * Double(draws - x))
                    / (Double(x + 1) * (others + Double(x + 1)))
            }
        }
        if mode > low {
            for x in stride(from: mode, to: low, by: -1) {
                weights[x - 1 - low] = weights[x - low] * (Double(x) * (others + Double(x)))
                    / (Double(successes - x + 1) * Double(draws - x + 1))
            }
        }
        let total = weights.reduce(0, +)
        probabilities = weights.map { $0 / total }
        var running = 0.0
        lowerTail = probabilities.map { running += $0; return min(running, 1) }
        running = 0
        upperTail = probabilities.reversed().map { running += $0; return min(running, 1) }.reversed()
    }

    var mean: Double { Double(draws) * Double(successes) / Double(population) }

    /// log P(X = x) by the closed form in `lgamma`; -infinity off the support.
    func logPMF(_ x: Int) -> Double {
        guard support.contains(x) else { return -.infinity }
        return Self.logChoose(successes, x) + Self.logChoose(population - successes, draws - x)
            - Self.logChoose(population, draws)
    }

    /// P(X = x), from the table.
    func pmf(_ x: Int) -> Double {
        support.contains(x) ? probabilities[x - support.lowerBound] : 0
    }

    /// P(X <= x): the lower tail when x is below the mean, else 1 - P(X > x).
    func cdf(_ x: Int) -> Double {
        if x < support.lowerBound { return 0 }
        if x >= support.upperBound { return 1 }
        let i = x - support.lowerBound
        return Double(x) <= mean ? lowerTail[i] : 1 - upperTail[i + 1]
    }

    /// P(X > x): the upper tail when x is at or above the mean, else 1 - P(X <= x).
    func survival(_ x: Int) -> Double {
        if x < support.lowerBound { return 1 }
        if x >= support.upperBound { return 0 }
        let i = x - support.lowerBound
        return Double(x) >= mean ? upperTail[i + 1] : 1 - lowerTail[i]
    }

    /// The smallest x with P(X <= x) >= p (p in (0, 1]): fewer than x marked items occur with
    /// probability below p. (scipy's `ppf`.)
    func lowerQuantile(_ p: Double) -> Int {
        smallest { cdf($0) >= p }
    }

    /// The smallest x with P(X > x) <= p (p in [0, 1)): more than x marked items occur with
    /// probability at most p.
    func upperQuantile(_ p: Double) -> Int {
        smallest { survival($0) <= p }
    }

    /// The smallest value of the support satisfying a predicate that is monotone on it (false,
    /// then true) and true at its upper end; bisection.
    private func smallest(where holds: (Int) -> Bool) -> Int {
        var low = support.lowerBound
        var high = support.upperBound
        while low < high {
            let middle = low + (high - low) / 2
            if holds(middle) { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// log C(n, k) by lgamma.
    static func logChoose(_ n: Int, _ k: Int) -> Double {
        lgamma(Double(n) + 1) - lgamma(Double(k) + 1) - lgamma(Double(n - k) + 1)
    }
}
