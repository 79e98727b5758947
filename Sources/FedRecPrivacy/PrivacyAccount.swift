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

/// What a run had spent after each of its releases: the ledger's prefixes, accounted.
public struct PrivacySpending: Sendable, Equatable {
    /// The round of each release, in ledger order.
    public var rounds: [Int]
    /// ε at δ of the ledger's first i+1 releases (`inf` for a test-seeded release's run).
    public var epsilons: [Double]
    public var delta: Double

    /// Accounts every prefix of the ledger: a release's RDP curve is computed once per
    /// distinct release (the curves of a run's rounds are usually all the same) and the
    /// curves add up release by release, so this costs one curve per distinct release and
    /// one conversion to ε per release.
    public init(ledger entries: [LedgerEntry], delta: Double, accountant: RDPAccountant = RDPAccountant()) throws {
        var distinct: [(entry: LedgerEntry, curve: [Double])] = []
        var total = [Double](repeating: 0, count: accountant.orders.count)
        var unprotected = false
        rounds = []
        epsilons = []
        self.delta = delta
        for entry in entries {
            // The accountant depends on neither the round nor the number of clients.
            var key = entry
            key.round = 0
            key.clients = 0
            let curve: [Double]
            if let known = distinct.first(where: { $0.entry == key }) {
                curve = known.curve
            } else {
                curve = try accountant.rdp(ledger: [key])
                distinct.append((key, curve))
            }
            for i in total.indices { total[i] += curve[i] }
            // A test-seeded release protects nothing, and nothing after it can undo that.
            unprotected = unprotected || !entry.isPrivate
            rounds.append(entry.round)
            epsilons.append(unprotected ? .infinity : try accountant.epsilon(rdp: total, delta: delta).epsilon)
        }
    }
}
