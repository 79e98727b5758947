import FedRecCore
import FedRecSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sampled softmax loss of query → item retrieval (two towers sharing one encoder):
/// for queries q₁…qₙ, their positive items p₁…pₙ and extra negatives p_{n+1}…p_{n+m}
/// (items drawn from the catalogue, or none: in-batch negatives only),
///
///     L = (1/n) Σᵢ [ log Σⱼ exp(sᵢⱼ) − sᵢᵢ ],   sᵢⱼ = qᵢ·pⱼ / τ,
///
/// the InfoNCE / multiple-negatives ranking loss; with normalised embeddings qᵢ·pⱼ is the
/// cosine similarity.
public enum SampledSoftmaxLoss {
    /// The loss and its gradient with respect to `embeddings`.
    /// - Parameters:
    ///   - embeddings: the n queries' vectors, then the n positives', then the negatives',
    ///     `dimension` floats each.
    ///   - queries: n.
    ///   - temperature: τ.
    /// - Returns: L and ∂L/∂embeddings (same layout):
    ///   ∂L/∂sᵢⱼ = (softmaxⱼ(sᵢ) − [i = j])/n, ∂qᵢ = Σⱼ ∂sᵢⱼ·pⱼ/τ, ∂pⱼ = Σᵢ ∂sᵢⱼ·qᵢ/τ.
    public static func evaluate(embeddings: [Float], queries n: Int, dimension d: Int, temperature: Float) -> (loss: Float, gradient: [Float]) {
        let m = embeddings.count / d - n
        precondition(n > 0 && m >= n && embeddings.count % d == 0, "SampledSoftmaxLoss: need n queries, n positives and any negatives")
        let tau = Double(temperature)
        var gradient = [Float](repeating: 0, count: embeddings.count)
        var loss = 0.0
        var row = [Double](repeating: 0, count: m)
        for i in 0..<n {
            var peak = -Double.infinity
            for j in 0..<m {
                var dot = 0.0
                for k in 0..<d { dot += Double(embeddings[i * d + k]) * Double(embeddings[(n + j) * d + k]) }
                row[j] = dot / tau
                peak = max(peak, row[j])
            }
            var sum = 0.0
            for j in 0..<m { sum += exp(row[j] - peak) }
            loss += peak + log(sum) - row[i]
            for j in 0..<m {
                let ds = (exp(row[j] - peak) / sum - (i == j ? 1 : 0)) / Double(n) / tau
                for k in 0..<d {
                    gradient[i * d + k] += Float(ds * Double(embeddings[(n + j) * d + k]))
                    gradient[(n + j) * d + k] += Float(ds * Double(embeddings[i * d + k]))
                }
            }
        }
        return (Float(loss / Double(n)), gradient)
    }
}

/// Binary cross-entropy on labelled (query, item) pairs, the case study's objective (a
/// click or a match is label 1): each query's own item is a positive, each of the m
/// extra negatives (items drawn from the catalogue, shared by the batch) a negative, and
///
///     L = 1/(n(1+m)) Σᵢ [ softplus(−sᵢᵢ) + Σₖ softplus(sᵢₖ) ],   sᵢⱼ = qᵢ·pⱼ / τ,
///
/// the mean log loss of σ(s) over the n(1+m) labelled pairs. The other queries' positives
/// are not used as negatives, so a query's loss does not depend on what else is in its
/// client's batch (the concern of Ning et al. 2021 for federated retrieval).
public enum PairwiseBCELoss {
    /// The loss and its gradient with respect to `embeddings` (the layout of
    /// `SampledSoftmaxLoss.evaluate`: n queries, n positives, then m ≥ 1 negatives):
    /// ∂L/∂sᵢᵢ = −σ(−sᵢᵢ)/N, ∂L/∂sᵢₖ = σ(sᵢₖ)/N, N = n(1+m), each times 1/τ onto the vectors.
    public static func evaluate(embeddings: [Float], queries n: Int, dimension d: Int, temperature: Float) -> (loss: Float, gradient: [Float]) {
        let m = embeddings.count / d - 2 * n
        precondition(n > 0 && m >= 1 && embeddings.count % d == 0, "PairwiseBCELoss: need n queries, n positives and at least one negative")
        let tau = Double(temperature), pairs = Double(n * (1 + m))
        var gradient = [Float](repeating: 0, count: embeddings.count)
        var loss = 0.0
        // softplus(x) = log(1 + eˣ), computed without overflow.
        func softplus(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }
        func sigmoid(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }
        func pair(_ i: Int, _ j: Int, label: Bool) {
            var dot = 0.0
            for k in 0..<d { dot += Double(embeddings[i * d + k]) * Double(embeddings[j * d + k]) }
            let s = dot / tau
            loss += label ? softplus(-s) : softplus(s)
            let ds = (label ? -sigmoid(-s) : sigmoid(s)) / pairs / tau
            for k in 0..<d {
                gradient[i * d + k] += Float(ds * Double(embeddings[j * d + k]))
                gradient[j * d + k] += Float(ds * Double(embeddings[i * d + k]))
            }
        }
        for i in 0..<n {
            pair(i, n + i, label: true)
            for k in 0..<m { pair(i, 2 * n + k, label: false) }
        }
        return (Float(loss / pairs), gradient)
    }
}

/// The loss a text-lora client trains with (`fl-train-local --loss`).
public enum TextLoss: String, Sendable, CaseIterable {
    /// `SampledSoftmaxLoss`: each query against every candidate of its batch.
    case softmax
    /// `PairwiseBCELoss`: labelled pairs, needs sampled negatives.
    case bce

    func evaluate(embeddings: [Float], queries n: Int, dimension d: Int, temperature: Float) -> (loss: Float, gradient: [Float]) {
        switch self {
        case .softmax: SampledSoftmaxLoss.evaluate(embeddings: embeddings, queries: n, dimension: d, temperature: temperature)
        case .bce: PairwiseBCELoss.evaluate(embeddings: embeddings, queries: n, dimension: d, temperature: temperature)
        }
    }
}

/// One client's LoRA training loop on (query, positive item text) pairs: the sampled
/// softmax loss (or `PairwiseBCELoss`) over the shared, adapted encoder, back-propagated to the adapter, and an
/// AdamW step on B (and A unless frozen, FFA-LoRA). `LoRAShardTrainer` drives one per
/// client (`fl-train-local` on a text-lora model).
public final class LoRATrainer {
    public let encoder: TrainableEncoder
    public var optimizer: AdamW
    /// τ of the softmax.
    public var temperature: Float
    public var loss: TextLoss
    public private(set) var gradients: LoRAGradients

    public init(encoder: TrainableEncoder, optimizer: AdamW = AdamW(), temperature: Float = 0.05, loss: TextLoss = .softmax) {
        self.encoder = encoder
        self.optimizer = optimizer
        self.temperature = temperature
        self.loss = loss
        gradients = LoRAGradients(for: encoder.adapter)
    }

    /// The loss of a batch and its gradients (left in `gradients`), without a step.
    /// - Parameters:
    ///   - queries, positives: token ids, the i-th positive belonging to the i-th query.
    ///   - negatives: extra candidate items (sampled from the catalogue), or none.
    public func lossAndGradients(queries: [[Int32]], positives: [[Int32]], negatives: [[Int32]] = []) throws -> Float {
        guard !queries.isEmpty, queries.count == positives.count else {
            throw FedRecError(.usage, "a training batch needs one positive per query (\(queries.count) queries, \(positives.count) positives)")
        }
        guard loss != .bce || !negatives.isEmpty else { throw FedRecError(.usage, "--loss bce needs sampled negatives (--negatives 1 or more)") }
        let embeddings = try encoder.forward(queries + positives + negatives)
        let (loss, gradient) = self.loss.evaluate(
            embeddings: embeddings, queries: queries.count, dimension: encoder.dimension, temperature: temperature)
        gradients.zero()
        encoder.backward(gradient, into: &gradients)
        return loss
    }

    /// One AdamW step on the batch.
    /// - Returns: the batch's loss before the step.
    @discardableResult
    public func step(queries: [[Int32]], positives: [[Int32]], negatives: [[Int32]] = []) throws -> Float {
        let loss = try lossAndGradients(queries: queries, positives: positives, negatives: negatives)
        for p in encoder.adapter.pairs.indices {
            optimizer.step(slot: 2 * p, &encoder.adapter.pairs[p].b, gradient: gradients.b[p])
            if !encoder.adapter.config.frozenA {
                optimizer.step(slot: 2 * p + 1, &encoder.adapter.pairs[p].a, gradient: gradients.a[p])
            }
        }
        return loss
    }
}
