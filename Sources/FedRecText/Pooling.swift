import FedRecCore
import FedRecSupport

/// How token states become one sentence vector, as sentence-transformers'
/// `1_Pooling/config.json` and `modules.json` say. Several modes concatenate, in
/// sentence-transformers' order: CLS, max, mean, mean/√length.
public struct Pooling: Sendable, Equatable {
    public var clsToken: Bool
    public var maxTokens: Bool
    public var meanTokens: Bool
    public var meanSqrtLengthTokens: Bool
    /// L2-normalise the pooled vector (a `Normalize` module in `modules.json`).
    public var normalize: Bool

    public init(clsToken: Bool = false, maxTokens: Bool = false, meanTokens: Bool = true, meanSqrtLengthTokens: Bool = false, normalize: Bool = true) {
        self.clsToken = clsToken
        self.maxTokens = maxTokens
        self.meanTokens = meanTokens
        self.meanSqrtLengthTokens = meanSqrtLengthTokens
        self.normalize = normalize
    }

    /// Reads a model directory's pooling: `modules.json` names the modules (a `Pooling`
    /// module's folder holds its `config.json`; `Normalize` turns on normalisation).
    /// Without `modules.json`, mean pooling without normalisation, as sentence-transformers
    /// does for a plain Hugging Face model.
    /// - Throws: `FedRecError(.badData, file:)` for a pooling mode this encoder lacks or
    ///   no mode at all.
    public init(directory: ModelDirectory) throws {
        self.init(meanTokens: true, normalize: false)
        guard let modules = try directory.jsonIfPresent("modules.json") else { return }
        let modulesPath = directory.file("modules.json")
        guard let list = modules.arrayValue else { throw FedRecError(.badData, file: modulesPath, "expected a JSON array of modules") }
        for module in list {
            let type = module["type"]?.stringValue ?? ""
            if type.hasSuffix(".Normalize") || type == "Normalize" {
                normalize = true
            } else if type.hasSuffix(".Pooling") || type == "Pooling" {
                let folder = module["path"]?.stringValue ?? ""
                let name = folder.isEmpty ? "config.json" : folder + "/config.json"
                let config = try directory.json(name)
                let path = directory.file(name)
                func flag(_ key: String) -> Bool { config[key]?.boolValue ?? false }
                clsToken = flag("pooling_mode_cls_token")
                maxTokens = flag("pooling_mode_max_tokens")
                meanTokens = flag("pooling_mode_mean_tokens")
                meanSqrtLengthTokens = flag("pooling_mode_mean_sqrt_len_tokens")
                for key in ["pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"] where flag(key) {
                    throw FedRecError(.badData, file: path, "\(key) is not supported")
                }
                if let mode = config["pooling_mode"]?.stringValue {  // newer single-mode form
                    clsToken = mode == "cls"
                    maxTokens = mode == "max"
                    meanTokens = mode == "mean"
                    meanSqrtLengthTokens = mode == "mean_sqrt_len_tokens"
                }
                guard clsToken || maxTokens || meanTokens || meanSqrtLengthTokens else {
                    throw FedRecError(.badData, file: path, "no supported pooling mode is on")
                }
            }
        }
    }

    /// Width of the pooled vector for a hidden size.
    public func dimension(hiddenSize: Int) -> Int {
        hiddenSize * [clsToken, maxTokens, meanTokens, meanSqrtLengthTokens].filter { $0 }.count
    }

    /// Pools `rows` token states of `width` floats into `out` (`dimension` floats).
    func pool(_ states: UnsafePointer<Float>, rows: Int, width: Int, into out: UnsafeMutablePointer<Float>) {
        var o = out
        if clsToken {
            o.update(from: states, count: width)
            o += width
        }
        if maxTokens {
            for j in 0..<width {
                var m = -Float.infinity
                for r in 0..<rows { m = max(m, states[r * width + j]) }
                o[j] = rows > 0 ? m : 0
            }
            o += width
        }
        if meanTokens || meanSqrtLengthTokens {
            // sentence-transformers clamps the token count to at least 1e-9.
            let count = max(Float(rows), 1e-9)
            o.initialize(repeating: 0, count: width)
            for r in 0..<rows {
                let row = states + r * width
                for j in 0..<width { o[j] += row[j] }
            }
            if meanTokens && meanSqrtLengthTokens {
                (o + width).update(from: o, count: width)
                for j in 0..<width { o[j] /= count }
                o += width
                let root = count.squareRoot()
                for j in 0..<width { o[j] /= root }
            } else {
                let divisor = meanTokens ? count : count.squareRoot()
                for j in 0..<width { o[j] /= divisor }
            }
        }
        if normalize {
            let n = dimension(hiddenSize: width)
            var sum: Float = 0
            for j in 0..<n { sum += out[j] * out[j] }
            // torch.nn.functional.normalize: divide by max(norm, 1e-12).
            let scale = 1 / max(sum.squareRoot(), 1e-12)
            for j in 0..<n { out[j] *= scale }
        }
    }
}
