import FedRecMechanisms
import FedRecSupport

/// What `fl-dp-noise account` reports: ε at δ of a ledger's releases, or of T rounds of one
/// (q, z) schedule, with the RDP order that gives it.
public struct PrivacyAccount: Sendable {
    public var epsilon: Double
    public var order: Double
    /// The report as one JSON object (`epsilon` is the string `inf` when unbounded).
    public var json: JSONValue

    /// The account of a verified ledger: its releases, whether all were private, its head.
    public init(ledger contents: LedgerContents, delta: Double) throws {
        let result = try RDPAccountant().epsilon(ledger: contents.entries, delta: delta)
        self.init(result, delta: delta, details: [
            "releases": .number(Double(contents.entries.count)),
            "private": .bool(contents.entries.allSatisfy(\.isPrivate)), "head": .string(contents.head),
        ])
    }

    /// The account of `rounds` releases at sampling rate q and noise multiplier z.
    public init(sampleRate q: Double, noiseMultiplier z: Double, rounds: Int, delta: Double) throws {
        let result = try RDPAccountant().epsilon(sampleRate: q, noiseMultiplier: z, steps: rounds, delta: delta)
        self.init(result, delta: delta, details: [
            "sample_rate": .number(q), "noise_multiplier": .number(z), "rounds": .number(Double(rounds)),
        ])
    }

    private init(_ result: (epsilon: Double, order: Double), delta: Double, details: [String: JSONValue]) {
        epsilon = result.epsilon
        order = result.order
        var object = details
        object["delta"] = .number(delta)
        object["epsilon"] = result.epsilon.isFinite ? .number(result.epsilon) : .string("inf")
        object["order"] = .number(result.order)
        json = .object(object)
    }
}
