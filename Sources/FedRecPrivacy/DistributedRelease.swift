#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecAggregation
import FedRecMechanisms
import FedRecSupport
import FedRecWire

/// What one distributed-DP unmask released.
public struct DistributedReleaseReport: Sendable {
    public var round: Int
    /// Parties whose noise shares are in the sum (s) and the fewest the noise was promised for (t).
    public var parties: Int
    public var minimumParties: Int
    public var clients: Int
    public var mechanism: DistributedGaussian
    public var modulusBits: Int
    public var isPrivate: Bool
    /// ε of the ledger after this release, when a δ was given.
    public var epsilon: Double?

    /// The one line a person reads on stderr.
    public var summaryLine: String {
        let eps = epsilon.map { ", epsilon \(sixDecimals($0))" } ?? ""
        return "round \(round) released under distributed DP (\(parties) noise shares of at least \(minimumParties), \(clients) clients, \(modulusBits) bits a coordinate, sum noise std \(sixDecimals(mechanism.centralStddev(parties: parties)))\(eps))"
    }

    /// What `fl-secagg unmask --json` reports.
    public func json(output path: String) -> JSONValue {
        var object: [String: JSONValue] = [
            "output": .string(path), "round": .number(Double(round)), "mechanism": .string(DPMetadata.distributedGaussianMechanism),
            "parties": .number(Double(parties)), "minimum_parties": .number(Double(minimumParties)),
            "clients": .number(Double(clients)), "modulus_bits": .number(Double(modulusBits)),
            "granularity": .number(mechanism.granularity), "local_sigma": .number(mechanism.localSigma),
            "dimension": .number(Double(mechanism.dimension)), "noise_stddev": .number(mechanism.centralStddev(parties: parties)),
            "private": .bool(isPrivate),
        ]
        if let epsilon { object["epsilon"] = .number(epsilon) }
        return .object(object)
    }
}

/// Distributed DP at the server (`DistributedGaussian`): the server never adds noise; the
/// parties did. What it must do is account: the unmasked sum is charged to the privacy
/// ledger (mechanism `distributed_discrete_gaussian`, the recorded parameters, the actual
/// shares s ≥ t) before it is written, and a budget, when given, refuses an unmask that
/// would exceed it (nothing is written, the ledger is untouched).
public enum DistributedRelease {
    /// Unmasks step 8's sum, charges the ledger (fsync), then renames the output into place.
    public static func unmask(
        session: SecAggSession, roster: String, request: String, sum: String, reveals: [String], output: String,
        ledger ledgerPath: String, budget: PrivacyBudget?, delta: Double?
    ) throws -> DistributedReleaseReport {
        guard output != "-" else {
            throw FedRecError(.usage, "the unmasked sum must go to a file (it is released only after the ledger line)")
        }
        let (decoded, distributed) = try SecureServer.unmaskedSum(
            session: session, roster: roster, request: request, sum: sum, reveals: reveals)
        guard let distributed else {
            throw FedRecError(.usage, file: sum, "holds no distributed-DP noise: unmask it without --ledger (or noise it with fl-dp-noise)")
        }
        let encoding = distributed.encoding, isPrivate = distributed.isPrivate
        let entry = LedgerEntry(
            round: decoded.header.round, distributed: encoding.mechanism, parties: distributed.parties, clients: decoded.header.clients,
            isPrivate: isPrivate)
        let ledger = access(ledgerPath, F_OK) == 0
            ? try PrivacyLedger.read(path: ledgerPath) : LedgerContents(entries: [], head: PrivacyLedger.genesis)
        let accountant = budget?.accountant ?? RDPAccountant()
        // ε of the ledger with this release, at the budget's δ (or the one to report at).
        let reportDelta = budget?.delta ?? delta
        let after = try reportDelta.map { try accountant.epsilon(ledger: ledger.entries + [entry], delta: $0).epsilon }
        if let budget, let after, after > budget.epsilon {
            throw FedRecError(
                .budgetExhausted, file: ledgerPath,
                "privacy budget exhausted: round \(decoded.header.round) would bring epsilon to \(after), past \(budget.epsilon) at delta \(budget.delta); nothing was written")
        }
        var update = decoded
        var report = DistributedReleaseReport(
            round: decoded.header.round, parties: distributed.parties, minimumParties: encoding.minimumParties,
            clients: decoded.header.clients, mechanism: encoding.mechanism, modulusBits: distributed.modulusBits, isPrivate: isPrivate)
        if let delta = reportDelta, let eps = after {
            report.epsilon = eps
            update.header.extra[DPMetadata.epsilon] = "\(eps)"
            update.header.extra[DPMetadata.delta] = "\(delta)"
        }
        update.header.extra[DPMetadata.isPrivate] = isPrivate ? "true" : "false"
        update.header.extra[DPMetadata.ledgerHead] = sha256Hex(Array(entry.line(prev: ledger.head).utf8))
        let file = try AtomicOutput(path: output, durable: true)
        do {
            try update.writer(kind: .sum).write(into: file)
            try PrivacyLedger.append(entry, to: ledgerPath, expectedHead: ledger.head)
        } catch {
            file.abandon()
            throw error
        }
        try file.commit()
        return report
    }
}
