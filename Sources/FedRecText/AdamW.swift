#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// AdamW (Loshchilov & Hutter, ICLR 2019, Algorithm 2): Adam's moment estimates with the
/// weight decay decoupled from the gradient, in PyTorch's `torch.optim.AdamW` form:
///
///     θ ← θ·(1 − η·λ)
///     m ← β₁·m + (1 − β₁)·g,   v ← β₂·v + (1 − β₂)·g²
///     θ ← θ − η·m̂ / (√v̂ + ε),  m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ)
///
/// Each parameter tensor is a slot with its own moments and step count.
public struct AdamW: Sendable {
    /// η.
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    /// λ, applied as θ·(1 − η·λ), not added to the gradient.
    public var weightDecay: Float
    private var first: [[Float]] = []
    private var second: [[Float]] = []
    private var steps: [Int] = []

    public init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    /// One step on the tensor of `slot` (slots are numbered by the caller, 0, 1, …).
    /// - Precondition: `gradient.count == parameters.count`, the same every step of a slot.
    public mutating func step(slot: Int, _ parameters: inout [Float], gradient: [Float]) {
        precondition(gradient.count == parameters.count, "AdamW: gradient and parameters differ in size")
        while first.count <= slot {
            first.append([])
            second.append([])
            steps.append(0)
        }
        if first[slot].isEmpty {
            first[slot] = [Float](repeating: 0, count: parameters.count)
            second[slot] = [Float](repeating: 0, count: parameters.count)
        }
        steps[slot] += 1
        let t = Float(steps[slot])
        let correction1 = 1 - powf(beta1, t)
        let correction2 = 1 - powf(beta2, t)
        let decay = 1 - learningRate * weightDecay
        let (b1, b2, eta, eps) = (beta1, beta2, learningRate, epsilon)
        first[slot].withUnsafeMutableBufferPointer { m in
            second[slot].withUnsafeMutableBufferPointer { v in
                for i in 0..<parameters.count {
                    let g = gradient[i]
                    m[i] = b1 * m[i] + (1 - b1) * g
                    v[i] = b2 * v[i] + (1 - b2) * g * g
                    let mHat = m[i] / correction1
                    let vHat = v[i] / correction2
                    parameters[i] = parameters[i] * decay - eta * mHat / (vHat.squareRoot() + eps)
                }
            }
        }
    }
}
