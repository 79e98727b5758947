#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecSupport

/// The distributed discrete Gaussian mechanism (Kairouz, Liu & Steinke ICML 2021, "The
/// Distributed Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation",
/// arXiv:2102.06387; KLS21 below): no one adds the noise of the sum. Each client's vector
/// (L2 norm ≤ c) is rotated (`RandomRotation`), scaled to a grid of spacing γ and rounded to
/// integers with its norm bounded (`ConditionalRounding`); each party adds its own share of
/// discrete Gaussian noise N_Z(0, σ'²) per coordinate before masking; the server unmasks
/// only the sum, which holds the sum of s shares, s the parties that survived.
///
/// Accounting, all in grid units:
/// - Δ₂ = min(c/γ + √d', √(c²/γ² + d'/4 + √(2 ln(1/β))·(c/γ + √d'/2))) bounds a rounded
///   vector's L2 norm (KLS21 Theorem 23 with Proposition 22; β = 0 gives the first, which
///   holds for any rounding); Δ₁ = Δ₂·min(√d', Δ₂) (integer vectors have ‖x‖₁ ≤ ‖x‖₂²).
/// - The sum of s independent N_Z(0, σ'²) is not N_Z(0, sσ'²); KLS21 Theorem 1 bounds the
///   gap by τ = 10·Σ_{k=1}^{s-1} exp(-2π²σ'²·k/(k+1)).
/// - RDP at order α (KLS21 Proposition 14, Eq. 17), with σ² = sσ'²:
///   min(α/2·(Δ₂/σ)² + τd', α/2·((Δ₂/σ)² + 2τΔ₁/σ + τ²d'), α/2·(Δ₂/σ + τ√d')²).
///   Rounds compose by adding curves; ε comes from `RDPAccountant.epsilon(rdp:delta:)`.
///
/// Client sampling is not amplified: under secure aggregation the server knows who took part.
public struct DistributedGaussian: Sendable, Equatable {
    /// c: the L2 norm bound of one client's vector, in the values' units.
    public var sensitivity: Double
    /// γ: the grid spacing (a power of two).
    public var granularity: Double
    /// β of conditional rounding (0: the deterministic bound, no redraws).
    public var beta: Double
    /// d': the rotated (padded) dimension.
    public var dimension: Int
    /// σ': one party's noise standard deviation, in grid units.
    public var localSigma: Double

    /// β = e^{-1/2}, KLS21's choice in its experiments: a draw is kept with probability ≥ 0.39.
    public static let defaultBeta = exp(-0.5)

    /// Checks the values: positive finite c, γ and σ' ≥ 1/2 (the sampler's range), β in [0, 1),
    /// d' a power of two.
    public init(sensitivity: Double, granularity: Double, beta: Double, dimension: Int, localSigma: Double) throws {
        guard sensitivity > 0, sensitivity.isFinite, granularity > 0, granularity.isFinite,
            beta >= 0, beta < 1, dimension >= 1, dimension & (dimension - 1) == 0,
            localSigma >= 0.5, localSigma < 0x1p24
        else {
            throw FedRecError(
                .usage,
                "distributed DP parameters out of range: c \(sensitivity), gamma \(granularity), beta \(beta), dimension \(dimension), local sigma \(localSigma)")
        }
        self.sensitivity = sensitivity
        self.granularity = granularity
        self.beta = beta
        self.dimension = dimension
        self.localSigma = localSigma
    }

    /// Δ₂ in grid units (see the type's comment).
    public var roundedL2Bound: Double {
        Self.roundedL2Bound(scaledNorm: sensitivity / granularity, beta: beta, dimension: dimension)
    }

    /// KLS21 Theorem 23: the norm bound after conditional rounding of a vector of norm ≤ x.
    public static func roundedL2Bound(scaledNorm x: Double, beta: Double, dimension d: Int) -> Double {
        let root = Double(d).squareRoot()
        let deterministic = x + root
        guard beta > 0 else { return deterministic }
        let squared = x * x + 0.25 * Double(d) + (2 * log(1 / beta)).squareRoot() * (x + 0.5 * root)
        return min(deterministic, squared.squareRoot())
    }

    /// Δ₁ in grid units.
    public var roundedL1Bound: Double {
        let l2 = roundedL2Bound
        return l2 * min(Double(dimension).squareRoot(), l2)
    }

    /// τ of KLS21 Theorem 1 for a sum of `parties` shares of σ' each. Terms past k = 1000 are
    /// bounded by the k = 1000 term (they decrease with k), so τ is never under-counted.
    public static func tau(localSigma sigma: Double, parties s: Int) -> Double {
        guard s > 1 else { return 0 }
        let a = 2 * Double.pi * Double.pi * sigma * sigma
        let exact = min(s - 1, 1000)
        var sum = 0.0
        for k in 1...exact { sum += exp(-a * Double(k) / Double(k + 1)) }
        if s - 1 > exact { sum += Double(s - 1 - exact) * exp(-a * 1000 / 1001) }
        return 10 * sum
    }

    /// The RDP curve of one release whose sum holds `parties` noise shares, at `orders`.
    /// - Parameter tauParties: the share count for τ (default `parties`); calibration passes
    ///   the most parties possible, since τ grows with them while the Gaussian term shrinks.
    public func rdp(parties s: Int, tauParties: Int? = nil, orders: [Double]) -> [Double] {
        guard s >= 1 else { return orders.map { _ in .infinity } }
        let sigma = (Double(s)).squareRoot() * localSigma
        let l2 = roundedL2Bound / sigma
        let l1 = roundedL1Bound / sigma
        let tau = Self.tau(localSigma: localSigma, parties: max(s, tauParties ?? s))
        let d = Double(dimension)
        return orders.map { alpha in
            let first = alpha / 2 * l2 * l2 + tau * d
            let second = alpha / 2 * (l2 * l2 + 2 * l1 * tau + tau * tau * d)
            let third = alpha / 2 * (l2 + d.squareRoot() * tau) * (l2 + d.squareRoot() * tau)
            return min(first, second, third)
        }
    }

    /// ε at δ of `rounds` releases, each with `parties` shares.
    public func epsilon(parties s: Int, tauParties: Int? = nil, rounds: Int, delta: Double, accountant: RDPAccountant = RDPAccountant()) throws -> Double {
        let curve = rdp(parties: s, tauParties: tauParties, orders: accountant.orders).map { $0 * Double(rounds) }
        return try accountant.epsilon(rdp: curve, delta: delta).epsilon
    }

    /// z = √s·σ'/Δ₂: the sum's noise over the rounded sensitivity (what a ledger line shows).
    public func noiseMultiplier(parties s: Int) -> Double { Double(s).squareRoot() * localSigma / roundedL2Bound }

    /// The standard deviation of the sum's noise in the values' units: √s·σ'·γ.
    public func centralStddev(parties s: Int) -> Double { Double(s).squareRoot() * localSigma * granularity }
}

/// What distributed DP must achieve, from which `DistributedGaussian.calibrate` picks γ and σ'.
public struct DistributedGaussianTarget: Sendable, Equatable {
    /// The promised (ε, δ) over `rounds` releases.
    public var epsilon: Double
    public var delta: Double
    public var rounds: Int
    /// c: one client's L2 norm bound.
    public var sensitivity: Double
    /// d: the length of a client's vector (rotated at the next power of two).
    public var dimension: Int
    /// n: the most parties whose shares can be in a sum (the roster).
    public var maximumParties: Int
    /// t: the fewest parties whose shares are in a sum that is unmasked. The noise is
    /// calibrated for t, so dropouts down to t keep the promise.
    public var minimumParties: Int
    /// N: the most clients whose vectors are in a sum (n when each client is a party).
    public var clients: Int
    /// b: the modulus 2^b of the secure sum.
    public var modulusBits: Int
    public var beta: Double = DistributedGaussian.defaultBeta
    /// k: the sum's coordinates should lie within ±k standard deviations of the modulus'
    /// range (KLS21 §4.4: k = 4 in their experiments); beyond it they wrap (modular clipping).
    public var stddevsInRange: Double = 4

    public init(
        epsilon: Double, delta: Double, rounds: Int, sensitivity: Double, dimension: Int, maximumParties: Int,
        minimumParties: Int, clients: Int, modulusBits: Int
    ) {
        self.epsilon = epsilon
        self.delta = delta
        self.rounds = rounds
        self.sensitivity = sensitivity
        self.dimension = dimension
        self.maximumParties = maximumParties
        self.minimumParties = minimumParties
        self.clients = clients
        self.modulusBits = modulusBits
    }
}

extension DistributedGaussian {
    /// The least local noise σ' ≥ 2 (with σ' ≥ 2 the τ term is below 10^-30 per share) at
    /// which `rounds` releases with only t shares are (ε, δ)-DP, τ counted for n shares.
    static func localSigma(
        for target: DistributedGaussianTarget, granularity: Double, dimension: Int, accountant: RDPAccountant
    ) throws -> Double? {
        func meets(_ sigma: Double) throws -> Bool {
            let mechanism = try DistributedGaussian(
                sensitivity: target.sensitivity, granularity: granularity, beta: target.beta, dimension: dimension, localSigma: sigma)
            return try mechanism.epsilon(
                parties: target.minimumParties, tauParties: target.maximumParties, rounds: target.rounds,
                delta: target.delta, accountant: accountant) <= target.epsilon
        }
        var low = 2.0, high = 2.0
        if try meets(low) { return low }
        while try !meets(high) {
            low = high
            high *= 2
            if high >= 0x1p23 { return nil }
        }
        for _ in 0..<60 where high - low > 1e-9 * high {
            let mid = (low + high) / 2
            if try meets(mid) { high = mid } else { low = mid }
        }
        return high
    }

    /// The range in grid units that k standard deviations of the sum's coordinates need:
    /// 2k·√(c²N²/d' + N/4 + nσ'²) (KLS21 §4.4, Eq. 61, with the worst-case growth N·c of
    /// the sum's norm and flatness ρ = 1 of the rotation).
    static func range(_ target: DistributedGaussianTarget, granularity g: Double, dimension: Int, localSigma: Double) -> Double {
        let n = Double(target.clients)
        let signal = target.sensitivity * n / g
        let variance = signal * signal / Double(dimension) + n / 4 + Double(target.maximumParties) * localSigma * localSigma
        return 2 * target.stddevsInRange * variance.squareRoot()
    }

    /// The finest power-of-two grid γ whose sum fits 2^b within k standard deviations, and
    /// the local σ' that keeps the promise on it.
    /// - Throws: `.usage` when no grid fits the bits (more bits are needed) or the target is
    ///   out of range.
    public static func calibrate(_ target: DistributedGaussianTarget, accountant: RDPAccountant = RDPAccountant()) throws -> DistributedGaussian {
        guard target.epsilon > 0, target.epsilon.isFinite, target.delta > 0, target.delta < 1, target.rounds >= 1,
            target.sensitivity > 0, target.sensitivity.isFinite, target.dimension >= 1,
            target.minimumParties >= 1, target.minimumParties <= target.maximumParties,
            target.clients >= target.maximumParties, (2...32).contains(target.modulusBits)
        else {
            throw FedRecError(.usage, "distributed DP target out of range: \(target)")
        }
        let dimension = RandomRotation.paddedDimension(target.dimension)
        let capacity = Double(sign: .plus, exponent: target.modulusBits, significand: 1)
        // Coarser grids need fewer bits; walk from fine to coarse and keep the first that fits.
        let start = Int((target.sensitivity / Double(dimension).squareRoot()).exponent) - 40
        for exponent in start...(start + 120) {
            let g = Double(sign: .plus, exponent: exponent, significand: 1)
            guard let sigma = try localSigma(for: target, granularity: g, dimension: dimension, accountant: accountant) else { continue }
            if range(target, granularity: g, dimension: dimension, localSigma: sigma) <= capacity {
                return try DistributedGaussian(
                    sensitivity: target.sensitivity, granularity: g, beta: target.beta, dimension: dimension, localSigma: sigma)
            }
        }
        throw FedRecError(
            .usage,
            "distributed DP at epsilon \(target.epsilon) over \(target.rounds) rounds does not fit \(target.modulusBits) modulus bits for \(target.clients) clients in \(target.maximumParties) parties: use more --secagg-bits")
    }
}
