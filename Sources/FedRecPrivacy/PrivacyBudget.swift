import FedRecMechanisms
import FedRecSupport

/// Accounting over a privacy ledger, and the budget check a release must pass.
extension RDPAccountant {
    /// The RDP curve of every release in a ledger: each line contributes `steps` times the
    /// curve of its (q, z), and curves add per order (heterogeneous composition).
    /// - Complexity: one curve evaluation per distinct (q, z) in the ledger.
    public func rdp(ledger entries: [LedgerEntry]) throws -> [Double] {
        var total = [Double](repeating: 0, count: orders.count)
        var steps: [Pair: Int] = [:]
        for entry in entries {
            try entry.validate()
            if let distributed = entry.distributed, let parties = entry.parties {
                // Distributed DP: the mechanism's own curve (KLS21 Prop. 14), never sampled.
                let curve = distributed.rdp(parties: parties, orders: orders)
                for i in total.indices { total[i] += curve[i] * Double(entry.steps) }
                continue
            }
            steps[Pair(q: entry.sampleRate, z: entry.noiseMultiplier), default: 0] += entry.steps
        }
        for (pair, count) in steps.sorted(by: { ($0.key.q, $0.key.z) < ($1.key.q, $1.key.z) }) {
            let curve = try rdp(sampleRate: pair.q, noiseMultiplier: pair.z, steps: count)
            for i in total.indices { total[i] += curve[i] }
        }
        return total
    }

    /// (ε, order) of everything a ledger records, for the given δ.
    public func epsilon(ledger entries: [LedgerEntry], delta: Double) throws -> (epsilon: Double, order: Double) {
        try epsilon(rdp: rdp(ledger: entries), delta: delta)
    }

    private struct Pair: Hashable { let q: Double, z: Double }
}

/// A privacy budget (ε, δ) and the checks against it that gate a release.
public struct PrivacyBudget: Sendable, Equatable {
    public let epsilon: Double
    public let delta: Double
    public let accountant: RDPAccountant

    public init(epsilon: Double, delta: Double, accountant: RDPAccountant = RDPAccountant()) throws {
        guard epsilon > 0, epsilon.isFinite, delta > 0, delta < 1 else {
            throw FedRecError(.usage, "a privacy budget needs epsilon > 0 and 0 < delta < 1, got (\(epsilon), \(delta))")
        }
        self.epsilon = epsilon
        self.delta = delta
        self.accountant = accountant
    }

    /// ε spent so far by the ledger's releases.
    public func spent(_ entries: [LedgerEntry]) throws -> Double {
        try accountant.epsilon(ledger: entries, delta: delta).epsilon
    }

    /// Throws `FedRecError(.budgetExhausted)` if one more release of (q, z) after the
    /// ledger's would bring ε above the budget; returns the ε after that release.
    @discardableResult
    public func checkRelease(
        after entries: [LedgerEntry], sampleRate q: Double, noiseMultiplier z: Double
    ) throws -> Double {
        let spent = try accountant.rdp(ledger: entries)
        let next = try accountant.rdp(sampleRate: q, noiseMultiplier: z, steps: 1)
        let after = try accountant.epsilon(rdp: zip(spent, next).map { $0 + $1 }, delta: delta).epsilon
        guard after <= epsilon else {
            throw FedRecError(.budgetExhausted,
                "one more release (q=\(q), z=\(z)) would bring epsilon to \(after) > budget \(epsilon) at delta \(delta)")
        }
        return after
    }

    /// How many more releases of (q, z) fit in the budget after the ledger's.
    public func remainingRounds(
        after entries: [LedgerEntry], sampleRate q: Double, noiseMultiplier z: Double
    ) throws -> Int {
        try accountant.remainingSteps(
            spent: accountant.rdp(ledger: entries), sampleRate: q, noiseMultiplier: z,
            targetEpsilon: epsilon, delta: delta)
    }
}

