import FedRecMechanisms
import FedRecSupport

/// What `fl-dp-noise account` reports: ε at δ of a ledger's releases, or of T rounds of one
/// (q, z) schedule, with the RDP order that gives it.
public struct PrivacyAccount: Sendable {
    public var epsilon: Double
    public var order: Double
    /// The report as one JSON object (`epsilon` is the string `inf` when unbounded).
    public var json: JSONValue

    /// The account of a verified ledger: its releases, whether all were private, its head,
    /// and per mechanism its releases and the ε its releases alone would cost.
    public init(ledger contents: LedgerContents, delta: Double) throws {
        let accountant = RDPAccountant()
        let result = try accountant.epsilon(ledger: contents.entries, delta: delta)
        var mechanisms = [String: JSONValue]()
        for name in Set(contents.entries.map(\.mechanism)).sorted() {
            let entries = contents.entries.filter { $0.mechanism == name }
            let alone = try accountant.epsilon(ledger: entries, delta: delta).epsilon
            mechanisms[name] = .object([
                "releases": .number(Double(entries.count)), "epsilon": alone.isFinite ? .number(alone) : .string("inf"),
            ])
        }
        self.init(result, delta: delta, details: [
            "releases": .number(Double(contents.entries.count)),
            "private": .bool(contents.entries.allSatisfy(\.isPrivate)), "head": .string(contents.head),
            "mechanisms": .object(mechanisms),
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
