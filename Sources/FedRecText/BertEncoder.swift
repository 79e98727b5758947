internal import COpenBLAS
import Dispatch
import FedRecCore
import FedRecSupport
import FedRecFormats

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A BERT encoder on the CPU, float32, matrix products through OpenBLAS.
///
/// Sequences of a batch are packed one after another (no padding rows), so every dense
/// layer is one `sgemm` over all the batch's tokens, and attention runs per sequence and
/// head over that sequence's own tokens. That is the same computation as padding to the
/// longest sequence with an attention mask (masked keys get weight exactly 0 there),
/// without computing the padding. Buffers live as long as the encoder and grow to the
/// largest batch seen, so encoding allocates nothing per token.
///
/// Matrix products use OpenBLAS's threads; attention, softmax, GELU and LayerNorm are
/// split over `threads` workers (sequences or rows), so every core is busy between them.
///
/// Not thread-safe: one encoder per thread (weights are read-only and could be shared if
/// that is ever needed).
public final class BertEncoder {
    public let config: BertConfig
    /// Workers for the work outside matrix products; the machine's cores by default.
    public var threads: Int = Processors.online
    let weights: BertWeights
    /// The weights file, whose digest names the base model an adapter belongs to.
    private let weightsPath: String
    private var identity: String?
    private var workspace = Workspace()

    /// - Parameters:
    ///   - weights: tensors named as Hugging Face's `BertModel` names them, with or without a
    ///     `bert.` prefix; F32, F16 or BF16.
    /// - Throws: `FedRecError(.shape, file:)` naming the file and tensor that is missing or
    ///   of the wrong shape.
    public init(config: BertConfig, weights: SafeTensorsFile) throws {
        self.config = config
        self.weights = try BertWeights(config: config, file: weights)
        self.weightsPath = weights.path
    }

    init(config: BertConfig, weights: BertWeights, weightsPath: String, identity: String?) {
        self.config = config
        self.weights = weights
        self.weightsPath = weightsPath
        self.identity = identity
    }

    /// `sha256:` and the hex SHA-256 of the base weights file (`model.safetensors`): what
    /// an adapter records as its base model. Computed once, when first asked for.
    public func baseIdentity() throws -> String {
        if let identity { return identity }
        let file = try MappedFile(path: weightsPath)
        let digest = "sha256:" + sha256Hex(file.bytes)
        identity = digest
        return digest
    }

    /// This encoder with `adapter` merged into its weights, `W + (α/r)·B·A` (Hu et al.
    /// 2021, §4.1), so the adapted encoder costs no more per token than the base one. Where
    /// B is zero the weights are left bit for bit as they are.
    /// - Throws: `FedRecError(.mismatch, file:)` naming `file` when the adapter was made for
    ///   another base model or shape.
    public func adapted(by adapter: LoRAAdapter, file: String) throws -> BertEncoder {
        try adapter.check(against: self, file: file)
        let encoder = BertEncoder(config: config, weights: weights.merging(adapter), weightsPath: weightsPath, identity: identity)
        encoder.threads = threads
        return encoder
    }

    /// The encoder of a model directory (`config.json`, `model.safetensors`).
    public convenience init(directory: ModelDirectory) throws {
        let configPath = directory.file("config.json")
        let config = try BertConfig(json: try directory.json("config.json"), file: configPath)
        try self.init(config: config, weights: try SafeTensorsFile(path: directory.file("model.safetensors")))
    }

    /// The last hidden state of every token of every sequence, packed: the rows of the
    /// first sequence, then of the second, and so on.
    /// - Returns: (total tokens) × `hiddenSize` floats, row-major.
    /// - Throws: `FedRecError(.badData)` for an id outside the vocabulary or a sequence
    ///   longer than `maxPositionEmbeddings`.
    /// - Complexity: O(layers · (tokens · hidden · intermediate + Σ length² · hidden)).
    public func hiddenStates(_ sequences: [[Int32]]) throws -> [Float] {
        let rows = try run(sequences)
        return Array(UnsafeBufferPointer(start: workspace.x, count: rows * config.hiddenSize))
    }

    /// Sentence embeddings: the encoder's last hidden state pooled per sequence.
    /// - Returns: `sequences.count` × `pooling.dimension(hiddenSize:)` floats, row-major.
    /// - Complexity: as `hiddenStates`.
    public func embed(_ sequences: [[Int32]], pooling: Pooling) throws -> [Float] {
        let h = config.hiddenSize
        let width = pooling.dimension(hiddenSize: h)
        var out = [Float](repeating: 0, count: sequences.count * width)
        guard !sequences.isEmpty else { return out }
        _ = try run(sequences)
        out.withUnsafeMutableBufferPointer { out in
            var offset = 0
            for (s, sequence) in sequences.enumerated() {
                pooling.pool(
                    UnsafePointer(workspace.x + offset * h), rows: sequence.count, width: h,
                    into: out.baseAddress! + s * width)
                offset += sequence.count
            }
        }
        return out
    }

    // MARK: Forward pass

    /// Runs the encoder; the last hidden state is left in `workspace.x`.
    /// - Returns: the number of rows (tokens).
    private func run(_ sequences: [[Int32]]) throws -> Int {
        let c = config
        let (rows, longest) = try measure(sequences)
        let h = c.hiddenSize
        let workers = max(1, min(threads, sequences.count))
        workspace.reserve(rows: rows, longest: longest, workers: workers, hidden: h, intermediate: c.intermediateSize)
        let ws = workspace

        embeddings(sequences, into: ws.x)
        for layer in weights.layers {
            // Self-attention: Q, K and V in one product, [rows, 3h].
            linear(ws.x, rows: rows, layer.qkv, into: ws.qkv)
            attention(sequences, qkv: ws.qkv, into: ws.context, workers: workers)
            linear(ws.context, rows: rows, layer.attentionOutput, into: ws.projected)
            addLayerNorm(ws.projected, residual: ws.x, rows: rows, layer.attentionNorm, workers: workers)
            // Feed-forward.
            linear(ws.x, rows: rows, layer.intermediate, into: ws.intermediate)
            let width = c.intermediateSize
            let intermediate = SharedPointers(qkv: ws.intermediate, context: ws.intermediate, scores: ws.intermediate)
            parallelRanges(rows, workers: workers) { range in
                Self.gelu(intermediate.context + range.lowerBound * width, count: range.count * width)
            }
            linear(ws.intermediate, rows: rows, layer.output, into: ws.projected)
            addLayerNorm(ws.projected, residual: ws.x, rows: rows, layer.outputNorm, workers: workers)
        }
        return rows
    }

    /// Checks every id and length of a batch.
    /// - Returns: the batch's tokens and its longest sequence.
    func measure(_ sequences: [[Int32]]) throws -> (rows: Int, longest: Int) {
        let c = config
        var rows = 0
        var longest = 0
        for sequence in sequences {
            guard sequence.count <= c.maxPositionEmbeddings else {
                throw FedRecError(.badData, "a sequence of \(sequence.count) tokens is longer than the model's \(c.maxPositionEmbeddings) positions")
            }
            for id in sequence where id < 0 || Int(id) >= c.vocabSize {
                throw FedRecError(.badData, "token id \(id) is outside the vocabulary of \(c.vocabSize)")
            }
            rows += sequence.count
            longest = max(longest, sequence.count)
        }
        return (rows, longest)
    }

    /// Word + position + token-type (type 0) embeddings, then LayerNorm.
    func embeddings(_ sequences: [[Int32]], into x: UnsafeMutablePointer<Float>) {
        let h = config.hiddenSize
        let w = weights
        var row = 0
        w.wordEmbeddings.withUnsafeBufferPointer { words in
            w.positionEmbeddings.withUnsafeBufferPointer { positions in
                w.tokenTypeEmbeddings.withUnsafeBufferPointer { types in
                    for sequence in sequences {
                        for (p, id) in sequence.enumerated() {
                            let out = x + row * h
                            let word = words.baseAddress! + Int(id) * h
                            let position = positions.baseAddress! + p * h
                            for j in 0..<h { out[j] = word[j] + position[j] + types[j] }
                            row += 1
                        }
                    }
                }
            }
        }
        Self.layerNorm(x, rows: row, width: h, eps: config.layerNormEps, w.embeddingNorm)
    }

    /// `out = input · weightᵀ + bias` over `rows` rows.
    func linear(_ input: UnsafePointer<Float>, rows: Int, _ layer: Linear, into out: UnsafeMutablePointer<Float>) {
        let n = layer.outputs
        layer.bias.withUnsafeBufferPointer { bias in
            for r in 0..<rows { (out + r * n).update(from: bias.baseAddress!, count: n) }
        }
        layer.weight.withUnsafeBufferPointer { weight in
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(layer.inputs),
                1, input, Int32(layer.inputs), weight.baseAddress, Int32(layer.inputs), 1, out, Int32(n))
        }
    }

    /// Scaled dot-product attention per sequence and head; `qkv` rows hold Q, K, V side by
    /// side. Worker `w` takes sequences `w`, `w + workers`, … with its own scores buffer.
    private func attention(
        _ sequences: [[Int32]], qkv: UnsafePointer<Float>, into context: UnsafeMutablePointer<Float>, workers: Int
    ) {
        let h = config.hiddenSize
        let d = config.headSize
        let heads = config.numAttentionHeads
        let stride = 3 * h
        let scale = 1 / Float(d).squareRoot()
        var starts = [Int]()
        starts.reserveCapacity(sequences.count)
        var total = 0
        for sequence in sequences {
            starts.append(total)
            total += sequence.count
        }
        let offsets = starts
        let lengths = sequences.map(\.count)
        let scoresBase = workspace.scores
        let scoresSize = workspace.scoresPerWorker
        let shared = SharedPointers(qkv: qkv, context: context, scores: scoresBase)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let scores = shared.scores + worker * scoresSize
            for s in Swift.stride(from: worker, to: lengths.count, by: workers) {
                Self.attendOne(
                    qkv: shared.qkv, context: shared.context, scores: scores, offset: offsets[s], n: lengths[s],
                    heads: heads, d: d, h: h, stride: stride, scale: scale)
            }
        }
    }

    private static func attendOne(
        qkv: UnsafePointer<Float>, context: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
        offset: Int, n: Int, heads: Int, d: Int, h: Int, stride: Int, scale: Float
    ) {
        do {
            for head in 0..<heads {
                let q = qkv + offset * stride + head * d
                let k = q + h
                let v = q + 2 * h
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(d),
                    scale, q, Int32(stride), k, Int32(stride), 0, scores, Int32(n))
                Self.softmaxRows(scores, rows: n, width: n)
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(d), Int32(n),
                    1, scores, Int32(n), v, Int32(stride), 0, context + offset * h + head * d, Int32(h))
            }
        }
    }

    static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        for r in 0..<rows {
            let row = x + r * width
            var peak = -Float.infinity
            for j in 0..<width { peak = max(peak, row[j]) }
            var sum: Float = 0
            for j in 0..<width {
                let e = expf(row[j] - peak)
                row[j] = e
                sum += e
            }
            let inverse = 1 / sum
            for j in 0..<width { row[j] *= inverse }
        }
    }

    /// `x = LayerNorm(x + residual-input)`: adds `sum` into `x`, then normalises `x` in place.
    private func addLayerNorm(
        _ sum: UnsafePointer<Float>, residual x: UnsafeMutablePointer<Float>, rows: Int, _ norm: Norm, workers: Int
    ) {
        let h = config.hiddenSize
        let eps = config.layerNormEps
        let shared = SharedPointers(qkv: sum, context: x, scores: x)
        parallelRanges(rows, workers: workers) { range in
            let x = shared.context + range.lowerBound * h
            let sum = shared.qkv + range.lowerBound * h
            for i in 0..<(range.count * h) { x[i] += sum[i] }
            Self.layerNorm(x, rows: range.count, width: h, eps: eps, norm)
        }
    }

    static func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, width h: Int, eps: Float, _ norm: Norm) {
        norm.gamma.withUnsafeBufferPointer { gamma in
            norm.beta.withUnsafeBufferPointer { beta in
                for r in 0..<rows {
                    let row = x + r * h
                    let (mean, inverse) = moments(row, width: h, eps: eps)
                    for j in 0..<h { row[j] = (row[j] - mean) * inverse * gamma[j] + beta[j] }
                }
            }
        }
    }

    /// A row's mean and 1/√(variance + ε), the variance over the row (biased, as LayerNorm).
    @inline(__always)
    static func moments(_ row: UnsafePointer<Float>, width h: Int, eps: Float) -> (mean: Float, inverse: Float) {
        var mean: Float = 0
        for j in 0..<h { mean += row[j] }
        mean /= Float(h)
        var variance: Float = 0
        for j in 0..<h {
            let centred = row[j] - mean
            variance += centred * centred
        }
        variance /= Float(h)
        return (mean, 1 / (variance + eps).squareRoot())
    }

    /// Exact GELU, `x · Φ(x) = x/2 · (1 + erf(x/√2))`, as `hidden_act: "gelu"` means (not
    /// the tanh approximation). `erf` is a branch-free rational approximation that the
    /// compiler vectorises; libm's `erff` took a sixth of the encoder's time.
    static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let inverseRoot2: Float = 0.70710678118654752
        for i in 0..<count {
            let v = x[i]
            x[i] = 0.5 * v * (1 + fastErf(v * inverseRoot2))
        }
    }
}

/// Runs `body` on `workers` contiguous slices of `0..<count` at once.
private func parallelRanges(_ count: Int, workers: Int, _ body: @Sendable (Range<Int>) -> Void) {
    let workers = max(1, min(workers, count))
    if workers == 1 {
        body(0..<count)
        return
    }
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        body((count * w / workers)..<(count * (w + 1) / workers))
    }
}

/// Buffer addresses handed to workers that write disjoint parts of them.
private struct SharedPointers: @unchecked Sendable {
    let qkv: UnsafePointer<Float>
    let context: UnsafeMutablePointer<Float>
    let scores: UnsafeMutablePointer<Float>
}

/// Buffers of one forward pass, kept between batches and grown as needed.
private final class Workspace {
    private(set) var x = UnsafeMutablePointer<Float>.allocate(capacity: 0)
    private(set) var qkv = UnsafeMutablePointer<Float>.allocate(capacity: 0)
    private(set) var context = UnsafeMutablePointer<Float>.allocate(capacity: 0)
    private(set) var projected = UnsafeMutablePointer<Float>.allocate(capacity: 0)
    private(set) var intermediate = UnsafeMutablePointer<Float>.allocate(capacity: 0)
    private(set) var scores = UnsafeMutablePointer<Float>.allocate(capacity: 0)
    private var rows = 0
    /// Floats of `scores` each attention worker owns.
    private(set) var scoresPerWorker = 0
    private var scoresCapacity = 0

    func reserve(rows: Int, longest: Int, workers: Int, hidden: Int, intermediate width: Int) {
        if rows > self.rows {
            for buffer in [x, qkv, context, projected, intermediate] { buffer.deallocate() }
            // Grow by half again so a slightly larger batch does not reallocate.
            let capacity = max(rows, self.rows + self.rows / 2)
            x = .allocate(capacity: capacity * hidden)
            qkv = .allocate(capacity: capacity * 3 * hidden)
            context = .allocate(capacity: capacity * hidden)
            projected = .allocate(capacity: capacity * hidden)
            intermediate = .allocate(capacity: capacity * width)
            self.rows = capacity
        }
        if longest * longest > scoresPerWorker || workers * longest * longest > scoresCapacity {
            scores.deallocate()
            scoresPerWorker = max(longest * longest, scoresPerWorker)
            scoresCapacity = workers * scoresPerWorker
            scores = .allocate(capacity: scoresCapacity)
        }
    }

    deinit {
        for buffer in [x, qkv, context, projected, intermediate, scores] { buffer.deallocate() }
    }
}

/// `erf(x)` within a few float ulps (absolute error below 5e-7): an odd degree-13 over an
/// even degree-8 polynomial on [-4, 4], where float erf saturates to ±1 outside. The
/// coefficients are the minimax fit that Eigen and XLA use for float `erf`.
@inline(__always)
func fastErf(_ a: Float) -> Float {
    let x = min(max(a, -4), 4)
    let x2 = x * x
    var p: Float = -2.72614225801306e-10
    p = p * x2 + 2.77068142495902e-08
    p = p * x2 - 2.10102402082508e-06
    p = p * x2 - 5.69250639462346e-05
    p = p * x2 - 7.34990630326855e-04
    p = p * x2 - 2.95459980854025e-03
    p = p * x2 - 1.60960333262415e-02
    p *= x
    var q: Float = -1.45660718464996e-05
    q = q * x2 - 2.13374055278905e-04
    q = q * x2 - 1.68282697438203e-03
    q = q * x2 - 7.37332916720468e-03
    q = q * x2 - 1.42647390514189e-02
    return p / q
}

/// `exp(x)` for x ≤ 0 within about 2 float ulps, branch-free so that the compiler
/// vectorises the loops that call it (libm's `expf` is a call per value: 11 % of a LoRA
/// step in the GELU backward). Cody–Waite reduction x = n·ln 2 + r, |r| ≤ ln 2 / 2, and
/// the degree-7 polynomial of e^r from Moshier's Cephes `expf` (Moshier 1989, "Methods and
/// Programs for Mathematical Functions"); 2^n built in the exponent bits. Below −87 the
/// result is flushed toward 0 (e^−87 ≈ 1.6e−38, the smallest normal floats).
@inline(__always)
func fastExpNonPositive(_ a: Float) -> Float {
    // maximum/minimum return the number of a NaN pair: a NaN input gives e^−87, not a trap
    // (the caller's other factors carry the NaN on).
    let x = Float.minimum(Float.maximum(a, -87), 0)
    // n = round(x / ln 2) by the 1.5·2^23 trick: in t the unit is the last mantissa bit, so
    // t's low bits hold n in two's complement (no float-to-integer conversion).
    let t = x * 1.44269504088896341 + 12_582_912
    let fn = t - 12_582_912
    let n = Int32(bitPattern: t.bitPattern) &- 0x4B40_0000
    let r = (x - fn * 0.693359375) - fn * -2.12194440e-4
    var p: Float = 1.9875691500e-4
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let e = p * r * r + r + 1
    return e * Float(bitPattern: UInt32(bitPattern: (n &+ 127) &<< 23))
}
