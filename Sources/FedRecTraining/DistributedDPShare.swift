import FedRecMechanisms
import FedRecSecureAggregation
import FedRecSupport
import FedRecWire

/// What a party is told for distributed DP (`fl-train-local --ddp-epsilon …`): the promise
/// and, where the roster does not give them, the guaranteed survivors and the clients bound.
/// Every party of a round derives the same encoding from these and the roster alone
/// (`encoding(header:roster:)`), so nobody has to send one.
public struct DistributedDPSettings: Sendable, Equatable {
    public var epsilon: Double
    public var delta: Double
    /// The rounds the promise covers: each round's noise is calibrated for 1/rounds of it.
    public var rounds: Int
    /// t; default `DistributedDPEncoding.minimumSurvivors` of the roster's n and dropout rate.
    public var minimumParties: Int?
    /// N, the most clients in a sum; default the roster's parties (each client a party).
    public var clients: Int?
    public var beta: Double = DistributedGaussian.defaultBeta

    public init(epsilon: Double, delta: Double, rounds: Int, minimumParties: Int? = nil, clients: Int? = nil) {
        self.epsilon = epsilon
        self.delta = delta
        self.rounds = rounds
        self.minimumParties = minimumParties
        self.clients = clients
    }

    /// The round's encoding for updates with `header` (its release length and sensitivity).
    /// - Throws: `.usage` for updates distributed DP does not apply to (unclipped SGD,
    ///   unbounded ALS, example weighting) or parameters that do not fit the roster.
    public func encoding(header: UpdateHeader, roster: SecAggRoster) throws -> DistributedDPEncoding {
        guard header.weighting == .uniform else {
            throw FedRecError(.usage, "distributed DP needs --weighting uniform (example weights are unbounded), got \(header.weighting)")
        }
        let values = try ReleaseVector.length(header)
        let c = try ReleaseVector.sensitivity(header)
        let n = roster.parties.count
        let t = minimumParties ?? DistributedDPEncoding.minimumSurvivors(parties: n, dropoutRate: roster.parameters.dropoutRate)
        guard t >= 1, t <= n else {
            throw FedRecError(.usage, "distributed DP needs 1 <= minimum parties <= the roster's \(n), got \(t)")
        }
        let clients = clients ?? n
        guard clients >= n else {
            throw FedRecError(.usage, "distributed DP: --ddp-clients \(clients) is below the roster's \(n) parties")
        }
        var target = DistributedGaussianTarget(
            epsilon: epsilon, delta: delta, rounds: rounds, sensitivity: c, dimension: values, maximumParties: n,
            minimumParties: t, clients: clients, modulusBits: roster.modulusBits)
        target.beta = beta
        let mechanism = try DistributedGaussian.calibrate(target)
        let digits = try DistributedDPEncoding.countDigits(modulusBits: roster.modulusBits, parties: n, clients: clients)
        return DistributedDPEncoding(
            mechanism: mechanism, rotationSeed: DistributedDPEncoding.rotationSeed(sessionID: roster.sessionID, round: roster.round),
            values: values, minimumParties: t, epsilon: epsilon, delta: delta, rounds: rounds, countDigitBits: digits.bits,
            countWords: digits.words)
    }
}

/// One party's distributed-DP vector in the making: each of its clients' release vectors
/// clipped to c, rotated, scaled to the grid and conditionally rounded (`add`), summed
/// exactly in 64-bit integers; then one discrete Gaussian share of σ' per coordinate and the
/// reduction mod 2^b (`words`). The workspace is reused across clients.
struct DistributedDPShare {
    let encoding: DistributedDPEncoding
    let rotation: RandomRotation
    private(set) var sum: [Int64]
    private(set) var clients = 0
    /// Clients whose release vector was above c (scaled down to it).
    private(set) var clipped = 0
    private var rotated: [Double]
    private var rounded: [Int64]

    init(encoding: DistributedDPEncoding) throws {
        self.encoding = encoding
        rotation = try encoding.rotation()
        sum = [Int64](repeating: 0, count: encoding.mechanism.dimension)
        rotated = [Double](repeating: 0, count: encoding.mechanism.dimension)
        rounded = [Int64](repeating: 0, count: encoding.mechanism.dimension)
    }

    /// Empties the share for the next party, keeping the workspace and the rotation.
    mutating func reset() {
        for i in sum.indices { sum[i] = 0 }
        clients = 0
        clipped = 0
    }

    /// Adds one client's update (its own, `clients` = 1).
    mutating func add(_ update: ModelUpdate, source: any NoiseSource) throws {
        let values = try ReleaseVector.pack(update)
        guard values.count == encoding.values else {
            throw FedRecError(.shape, "a release vector of \(values.count) values where the round's encoding has \(encoding.values)")
        }
        var squares = 0.0
        for v in values {
            guard v.isFinite else { throw FedRecError(.badData, "a client's update holds \(v)") }
            squares += Double(v) * Double(v)
        }
        let c = encoding.mechanism.sensitivity
        let norm = squares.squareRoot()
        var scale = 1 / encoding.mechanism.granularity
        if norm > c {
            scale *= c / norm
            clipped += 1
        }
        let bound = encoding.mechanism.roundedL2Bound
        values.withUnsafeBufferPointer { input in
            rotated.withUnsafeMutableBufferPointer { rotation.rotate(input, scale: scale, into: $0) }
        }
        try rotated.withUnsafeBufferPointer { input in
            try rounded.withUnsafeMutableBufferPointer { output in
                _ = try ConditionalRounding.round(input, bound: bound, into: output, source: source)
            }
        }
        for i in sum.indices { sum[i] += rounded[i] }
        clients += update.header.clients
    }

    /// The party's vector mod 2^b: the clients' sum plus N_Z(0, σ'²) per coordinate, then the
    /// client count, exact, in the encoding's digits.
    /// - Throws: `.usage` when the count exceeds what the digits hold.
    func words(quantizer: Quantizer, source: any NoiseSource) throws -> [UInt32] {
        let count = try encoding.countWords(clients)
        let sampler = try DiscreteGaussian(sigma: encoding.mechanism.localSigma)
        var noise = [Int64](repeating: 0, count: sum.count)
        sampler.sample(into: &noise, from: source)
        let mask = quantizer.modulusMask
        var words = [UInt32](repeating: 0, count: encoding.length)
        for i in sum.indices { words[i] = UInt32(truncatingIfNeeded: sum[i] &+ noise[i]) & mask }
        for (j, digit) in count.enumerated() { words[sum.count + j] = digit }
        return words
    }
}
