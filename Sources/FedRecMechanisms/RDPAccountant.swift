#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecSupport

/// Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism, the mechanism of
/// DP-FedAvg: each client joins a round with probability `q`, its clipped delta (L2 norm at
/// most C) is summed, and Gaussian noise of standard deviation `z · C` is added once.
///
/// The RDP curve is that of Mironov, Talwar and Zhang 2019, "Rényi Differential Privacy of
/// the Sampled Gaussian Mechanism" (arXiv:1908.10530): for integer orders α the binomial
/// expansion of A_α (Sec. 3.2), for fractional orders the two-sided series with erfc terms
/// (Sec. 3.3). Both are evaluated in log space the way Google's dp_accounting
/// (`rdp/rdp_privacy_accountant.py`, 0.6.0) does, so that this accountant reproduces its
/// numbers: same orders, same series, same stopping rule, same exclusion of orders whose
/// series does not converge within 1000 terms (an excluded order can only raise ε).
///
/// Composition is additive per order (Mironov 2017, Prop. 1): T identical steps multiply the
/// curve by T; a ledger of heterogeneous rounds sums the curves. The conversion to (ε, δ)
/// is the tighter bound of Canonne, Kamath and Steinke 2020 (arXiv:2004.00010, Prop. 12) /
/// Asoodeh et al. 2020 (arXiv:2001.05990, Eq. 20), minimised over the orders.
///
/// Neighbouring relation: add or remove one client. Sensitivity: the clip norm C.
public struct RDPAccountant: Sendable, Equatable {
    /// dp_accounting's `DEFAULT_RDP_ORDERS`: `[1 + x / 10.0 for x in range(1, 100)] +
    /// list(range(11, 64)) + [128, 256, 512, 1024]` — 156 orders. The fractional ones are built
    /// by the same IEEE operations (`1 + Double(x) / 10`), so they are bit-identical to
    /// Python's, and 2.0, 3.0 … 10.0 take the integer path as there.
    public static let defaultOrders: [Double] = {
        let fractional: [Double] = (1..<100).map { (x: Int) -> Double in 1 + Double(x) / 10.0 }
        let integral: [Double] = (11..<64).map { (n: Int) -> Double in Double(n) }
        return fractional + integral + [128, 256, 512, 1024]
    }()

    /// Integer orders only: 2…64, 128, 256, 512, 1024 (the reference's `rdp_int` set; the
    /// integer series is exact and needs no convergence test).
    public static let integerOrders: [Double] = {
        let small: [Double] = (2...64).map { (n: Int) -> Double in Double(n) }
        return small + [128, 256, 512, 1024]
    }()

    /// The Rényi orders α (> 1) at which the curve is tracked.
    public let orders: [Double]

    /// - Parameter orders: Rényi orders, each ≥ 1; the default is dp_accounting's.
    public init(orders: [Double] = RDPAccountant.defaultOrders) {
        precondition(!orders.isEmpty && orders.allSatisfy { $0 >= 1 }, "RDP orders must be >= 1")
        self.orders = orders
    }

    // MARK: RDP of the subsampled Gaussian

    /// The RDP curve of `steps` compositions of the Poisson-subsampled Gaussian mechanism.
    /// - Parameters:
    ///   - sampleRate: probability q ∈ [0, 1] that a client takes part in a step.
    ///   - noiseMultiplier: z = noise standard deviation / L2 sensitivity, ≥ 0.
    ///   - steps: number of identical steps composed (≥ 0).
    /// - Returns: one RDP value per order (may be `+infinity`, e.g. z = 0 or an order whose
    ///   series did not converge).
    /// - Complexity: O(Σ α) for integer orders plus ≤ 1000 terms per fractional order.
    public func rdp(sampleRate q: Double, noiseMultiplier z: Double, steps: Int = 1) throws -> [Double] {
        guard q >= 0, q <= 1 else { throw FedRecError(.usage, "sampling rate must be in [0, 1], got \(q)") }
        guard z >= 0, !z.isNaN else { throw FedRecError(.usage, "noise multiplier must be >= 0, got \(z)") }
        guard steps >= 0 else { throw FedRecError(.usage, "steps must be >= 0, got \(steps)") }
        return orders.map { alpha in
            let one = RDPAccountant.rdpOneStep(q: q, sigma: z, alpha: alpha)
            return steps == 0 ? 0 : one * Double(steps)
        }
    }

    /// RDP of one step at one order (dp_accounting's `compute_one_order`).
    static func rdpOneStep(q: Double, sigma: Double, alpha: Double) -> Double {
        if q == 0 { return 0 }
        if alpha.isInfinite || sigma == 0 { return .infinity }
        // Without subsampling the mechanism is the Gaussian: α / (2 z²) (Mironov 2017, Prop. 7).
        if q == 1 { return alpha / (2 * sigma * sigma) }
        let logA = alpha.rounded(.towardZero) == alpha
            ? logAInteger(q: q, sigma: sigma, alpha: Int(alpha))
            : logAFractional(q: q, sigma: sigma, alpha: alpha)
        return logA / (alpha - 1)
    }

    /// log A_α for integer α (Mironov-Talwar-Zhang 2019, Sec. 3.2):
    /// A_α = Σ_{i=0}^{α} C(α,i) (1-q)^{α-i} q^i exp((i² - i) / (2σ²)).
    static func logAInteger(q: Double, sigma: Double, alpha: Int) -> Double {
        var logA = -Double.infinity
        let log1mq = log1p(-q), logq = log(q)
        let twoSigma2 = 2 * (sigma * sigma)
        for i in 0...alpha {
            let fi = Double(i)
            let logCoef = logBinomial(Double(alpha), fi) + fi * logq + Double(alpha - i) * log1mq
            logA = logAdd(logA, logCoef + (fi * fi - fi) / twoSigma2)
        }
        return logA
    }

    /// The most terms the fractional series may take before its order is excluded (+∞),
    /// dp_accounting's `_MAX_STEPS_LOG_A_FRAC`.
    static let maxFractionalTerms = 1000

    /// log A_α for fractional α (Mironov-Talwar-Zhang 2019, Sec. 3.3): the integrals over
    /// (-∞, z₀] and [z₀, ∞) with z₀ = σ² log(1/q - 1) + 1/2, each expanded as a binomial
    /// series with erfc factors. Stops once both terms decrease and are 30 nats below the
    /// total; returns +∞ (order unusable) if that does not happen within 1000 terms.
    static func logAFractional(q: Double, sigma: Double, alpha: Double) -> Double {
        var logA0 = -Double.infinity, logA1 = -Double.infinity
        let sigma2 = sigma * sigma
        let z0 = sigma2 * log(1 / q - 1) + 0.5
        let log1mq = log1p(-q), logq = log(q), logHalf = log(0.5)
        let sqrt2Sigma = 2.0.squareRoot() * sigma
        var lastS0 = -Double.infinity, lastS1 = -Double.infinity
        for i in 0..<maxFractionalTerms {
            let fi = Double(i)
            let logCoef = logBinomial(alpha, fi)
            let j = alpha - fi
            let logT0 = logCoef + fi * logq + j * log1mq
            let logT1 = logCoef + j * logq + fi * log1mq
            let logE0 = logHalf + logErfc((fi - z0) / sqrt2Sigma)
            let logE1 = logHalf + logErfc((z0 - j) / sqrt2Sigma)
            let logS0 = logT0 + (fi * fi - fi) / (2 * sigma2) + logE0
            let logS1 = logT1 + (j * j - j) / (2 * sigma2) + logE1
            logA0 = logAdd(logA0, logS0)
            logA1 = logAdd(logA1, logS1)
            let total = logAdd(logA0, logA1)
            if logS0 < lastS0 && logS1 < lastS1 && max(logS0, logS1) < total - 30 {
                return total
            }
            lastS0 = logS0
            lastS1 = logS1
        }
        return .infinity
    }

    // MARK: Conversion to (ε, δ)

    /// The smallest ε over the orders such that the mechanism with this RDP curve is
    /// (ε, δ)-DP, and the order that gives it (dp_accounting's `compute_epsilon`).
    ///
    /// Per order α with RDP r (Canonne-Kamath-Steinke 2020, Prop. 12; Asoodeh et al. 2020):
    /// ε(α) = r + log((α-1)/α) - (log δ + log α)/(α - 1), used for α > 1.01 (unstable nearer
    /// 1). If δ² + expm1(-r) > 0 the KL bound δ ≤ √(1 - e^{-r}) already gives ε = 0. A
    /// negative r (numerical noise of extreme inputs) gives 0, as in dp_accounting. Orders
    /// ≤ 1.01 otherwise give +∞. The result is clamped at 0.
    /// - Parameters:
    ///   - rdp: one value per order of this accountant.
    ///   - delta: δ ∈ [0, 1].
    /// - Returns: (ε, α); ε is `+infinity` when no order gives a finite bound.
    public func epsilon(rdp: [Double], delta: Double) throws -> (epsilon: Double, order: Double) {
        guard delta >= 0, delta <= 1 else { throw FedRecError(.usage, "delta must be in [0, 1], got \(delta)") }
        guard rdp.count == orders.count else {
            throw FedRecError(.usage, "RDP curve has \(rdp.count) values for \(orders.count) orders")
        }
        if delta == 0 {
            return rdp.allSatisfy { $0 == 0 } ? (0, 0) : (.infinity, 0)
        }
        var best = Double.infinity, bestOrder = orders[0], found = false
        for (a, r) in zip(orders, rdp) {
            let eps: Double
            if r.isNaN {
                eps = .infinity  // never let a NaN win the minimum
            } else if r < 0 {
                eps = 0
            } else if delta * delta + expm1(-r) > 0 {
                eps = 0
            } else if a > 1.01 {
                eps = r + log1p(-1 / a) - log(delta * a) / (a - 1)
            } else {
                eps = .infinity
            }
            // First minimum wins, as numpy's argmin.
            if !found || eps < best {
                best = eps
                bestOrder = a
                found = true
            }
        }
        return (max(0, best), bestOrder)
    }

    /// ε after `steps` identical steps.
    public func epsilon(
        sampleRate q: Double, noiseMultiplier z: Double, steps: Int, delta: Double
    ) throws -> (epsilon: Double, order: Double) {
        try epsilon(rdp: rdp(sampleRate: q, noiseMultiplier: z, steps: steps), delta: delta)
    }

    // MARK: Calibration and budgets

    /// The smallest noise multiplier z whose `steps`-fold composition at sampling rate q is
    /// (targetEpsilon, δ)-DP, found by bracketing and bisection on z (ε is decreasing in z).
    /// The returned z always satisfies the target; it exceeds the exact threshold by at most
    /// a relative `tolerance`.
    /// - Throws: `FedRecError(.usage)` for invalid inputs or a target no z ≤ 10⁶ reaches.
    /// - Complexity: about log₂(1/tolerance) + 20 curve evaluations.
    public func calibrateNoiseMultiplier(
        targetEpsilon: Double, delta: Double, sampleRate q: Double, steps: Int,
        tolerance: Double = 1e-6
    ) throws -> Double {
        guard targetEpsilon > 0, targetEpsilon.isFinite else {
            throw FedRecError(.usage, "target epsilon must be positive and finite, got \(targetEpsilon)")
        }
        func eps(_ z: Double) throws -> Double {
            try epsilon(sampleRate: q, noiseMultiplier: z, steps: steps, delta: delta).epsilon
        }
        if try eps(0) <= targetEpsilon { return 0 }  // q = 0 or steps = 0: nothing is released
        var hi = 1.0
        while try eps(hi) > targetEpsilon {
            hi *= 2
            if hi > 1e6 {
                throw FedRecError(.usage, "no noise multiplier up to 1e6 reaches epsilon \(targetEpsilon) at delta \(delta)")
            }
        }
        var lo = hi / 2
        while lo > 1e-6, try eps(lo) <= targetEpsilon {
            hi = lo
            lo /= 2
        }
        // Invariant: eps(lo) > target (or lo tiny), eps(hi) <= target.
        while hi - lo > tolerance * hi {
            let mid = (lo + hi) / 2
            if try eps(mid) <= targetEpsilon { hi = mid } else { lo = mid }
        }
        return hi
    }

    /// How many more steps of (q, z) fit after `spent` without ε exceeding `targetEpsilon`.
    ///
    /// RDP adds per order, so the curve after k more steps is spent + k · step, and ε is
    /// non-decreasing in k; the largest k is found by doubling and bisection.
    /// - Returns: the number of steps, 0 if not even one fits, `Int.max` if steps are free
    ///   (q = 0).
    public func remainingSteps(
        spent: [Double], sampleRate q: Double, noiseMultiplier z: Double,
        targetEpsilon: Double, delta: Double
    ) throws -> Int {
        let step = try rdp(sampleRate: q, noiseMultiplier: z, steps: 1)
        func fits(_ k: Int) throws -> Bool {
            let total = zip(spent, step).map { $0 + Double(k) * $1 }
            return try epsilon(rdp: total, delta: delta).epsilon <= targetEpsilon
        }
        if step.allSatisfy({ $0 == 0 }) { return try fits(0) ? Int.max : 0 }
        guard try fits(1) else { return 0 }
        var lo = 1, hi = 2
        while try fits(hi) {
            lo = hi
            if hi >= 1 << 52 { return hi }
            hi *= 2
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if try fits(mid) { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// Whether one more step of (q, z) after `spent` would push ε past `targetEpsilon`.
    public func wouldExceed(
        spent: [Double], sampleRate q: Double, noiseMultiplier z: Double,
        targetEpsilon: Double, delta: Double
    ) throws -> Bool {
        let step = try rdp(sampleRate: q, noiseMultiplier: z, steps: 1)
        let total = zip(spent, step).map { $0 + $1 }
        return try epsilon(rdp: total, delta: delta).epsilon > targetEpsilon
    }
}

// MARK: Log-space helpers (dp_accounting's `_log_add`, `_log_comb`, `_log_erfc`)

/// log(eˣ + eʸ) without overflow.
@inline(__always)
func logAdd(_ x: Double, _ y: Double) -> Double {
    let a = min(x, y), b = max(x, y)
    if a == -.infinity { return b }
    return log1p(exp(a - b)) + b
}

/// log(eˣ - eʸ) for x ≥ y (−∞ when equal).
func logSub(_ x: Double, _ y: Double) -> Double {
    precondition(x >= y, "logSub needs x >= y")
    if y == -.infinity { return x }
    if x == y { return -.infinity }
    return x + log1p(-exp(y - x))
}

/// log |Γ(x)| without the global `signgam` that `lgamma` writes (thread safe).
@inline(__always)
func logGamma(_ x: Double) -> Double {
    var sign: Int32 = 0
    return lgamma_r(x, &sign)
}

/// log of the generalised binomial coefficient, log|Γ(n+1) / (Γ(k+1) Γ(n-k+1))|, as
/// scipy's `gammaln` (log of the absolute value for the negative arguments that fractional
/// orders produce).
@inline(__always)
func logBinomial(_ n: Double, _ k: Double) -> Double {
    logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1)
}

/// log(erfc(x)), accurate where erfc underflows.
///
/// glibc's `erfc` is accurate to a few ulp in relative terms while its result is a normal
/// double (x < 26.5); beyond that the asymptotic expansion (Abramowitz & Stegun 7.1.23)
/// erfc(x) = e^{-x²}/(x√π) · Σ (-1)ⁿ (2n-1)!! / (2x²)ⁿ is used, whose terms at x ≥ 26
/// fall below 1e-17 after five. dp_accounting computes the same quantity through scipy's
/// `log_ndtr`.
func logErfc(_ x: Double) -> Double {
    if x < 26 { return log(erfc(x)) }
    let x2 = x * x
    let inv = 1 / (2 * x2)
    var term = 1.0, sum = 1.0
    for n in 1...8 {
        term *= -Double(2 * n - 1) * inv
        sum += term
    }
    return -x2 - log(x) - 0.5 * log(Double.pi) + log(sum)
}
