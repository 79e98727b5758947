import FedRecSupport
import FedRecWire

/// The training settings that decide a user's private parameters: what `fl-eval` and
/// `fl-recommend` need to rebuild users exactly as the clients did (the ridge λ and α of
/// the least-squares solves, the SGD settings of BPR/BCE reconstruction, and whether users
/// live in state files or are reconstructed).
///
/// `fl-train-local` records them in every update (`client_settings`), the sum keeps them
/// when all updates agree, and `fl-aggregate` copies them into the next model; the
/// evaluating commands take them as their defaults and warn when a flag differs.
public struct UserSideSettings: Sendable, Equatable {
    /// One recorded setting, with the flag that sets it.
    public enum Field: String, Sendable, CaseIterable, Comparable {
        case userParameters = "user_parameters"
        case l2
        case l2Bias = "l2_bias"
        case alpha
        case reconstructionEpochs = "reconstruction_epochs"
        case learningRate = "lr"
        case optimizer
        case batchSize = "batch_size"
        case negatives
        case initScale = "init_scale"
        case seed

        /// The command-line flag of the setting.
        public var flag: String {
            switch self {
            case .userParameters: "--reconstruct"
            case .l2: "--l2"
            case .l2Bias: "--l2-bias"
            case .alpha: "--alpha"
            case .reconstructionEpochs: "--reconstruction-epochs"
            case .learningRate: "--lr"
            case .optimizer: "--optimizer"
            case .batchSize: "--batch-size"
            case .negatives: "--negatives"
            case .initScale: "--init-scale"
            case .seed: "--seed"
            }
        }

        public static func < (a: Field, b: Field) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    /// Each setting as text (Float values in their shortest form); `l2_bias` is absent
    /// when it follows `l2`.
    public private(set) var values: [Field: String]

    /// The settings `options` trains with.
    public init(_ options: TrainingOptions) {
        var values: [Field: String] = [
            .userParameters: options.userParameters.rawValue, .l2: "\(options.l2)", .alpha: "\(options.alpha)",
            .reconstructionEpochs: String(options.reconstructionEpochs), .learningRate: "\(options.learningRate)",
            .optimizer: options.optimizer.rawValue, .batchSize: String(options.batchSize), .negatives: String(options.negatives),
            .initScale: "\(options.initScale)", .seed: String(options.seed),
        ]
        if let l2Bias = options.l2Bias { values[.l2Bias] = "\(l2Bias)" }
        self.values = values
    }

    /// The settings recorded in a file's `client_settings` metadata.
    /// - Throws: `.corrupt` for a value that is not a JSON object of valid settings.
    public init(metadata text: String, file: String) throws {
        guard case .object(let members) = try? JSONValue.parse(text) else {
            throw FedRecError(.corrupt, file: file, "\(UserSettingsMetadata.key) is not a JSON object")
        }
        var values: [Field: String] = [:]
        for (key, value) in members {
            guard let field = Field(rawValue: key) else { continue }
            guard case .string(let text) = value else {
                throw FedRecError(.corrupt, file: file, "\(UserSettingsMetadata.key).\(key) is not a string")
            }
            values[field] = text
        }
        self.values = values
        var check = TrainingOptions()
        try apply(to: &check, file: file)
    }

    /// The canonical JSON text recorded as `client_settings`.
    public var metadataValue: String {
        JSONValue.object(Dictionary(uniqueKeysWithValues: values.map { ($0.key.rawValue, JSONValue.string($0.value)) })).canonicalText
    }

    /// Sets every recorded setting in `options`.
    func apply(to options: inout TrainingOptions, only fields: Set<Field> = Set(Field.allCases), file: String) throws {
        func bad(_ field: Field) -> FedRecError {
            FedRecError(.corrupt, file: file, "\(UserSettingsMetadata.key).\(field.rawValue) = \(values[field] ?? "") is not a valid value")
        }
        func number<T: LosslessStringConvertible>(_ field: Field, _ type: T.Type) throws -> T? {
            guard let text = values[field] else { return nil }
            guard let value = T(text) else { throw bad(field) }
            return value
        }
        func finite(_ field: Field) throws -> Float? {
            guard let value = try number(field, Float.self) else { return nil }
            guard value.isFinite, value >= 0 else { throw bad(field) }
            return value
        }
        func count(_ field: Field, atLeast low: Int) throws -> Int? {
            guard let value = try number(field, Int.self) else { return nil }
            guard value >= low, value <= 1 << 30 else { throw bad(field) }
            return value
        }
        for field in fields.sorted() {
            switch field {
            case .userParameters:
                if let text = values[field] {
                    guard let mode = TrainingOptions.UserParameters(rawValue: text) else { throw bad(field) }
                    options.userParameters = mode
                }
            case .l2: if let v = try finite(field) { options.l2 = v }
            case .l2Bias: options.l2Bias = try finite(field)
            case .alpha: if let v = try finite(field) { options.alpha = v }
            case .reconstructionEpochs: if let v = try count(field, atLeast: 0) { options.reconstructionEpochs = v }
            case .learningRate:
                if let v = try finite(field) {
                    guard v > 0 else { throw bad(field) }
                    options.learningRate = v
                }
            case .optimizer:
                if let text = values[field] {
                    guard let optimizer = TrainingOptions.Optimizer(rawValue: text) else { throw bad(field) }
                    options.optimizer = optimizer
                }
            case .batchSize: if let v = try count(field, atLeast: 1) { options.batchSize = v }
            case .negatives: if let v = try count(field, atLeast: 1) { options.negatives = v }
            case .initScale: if let v = try finite(field) { options.initScale = v }
            case .seed: if let v = try number(field, UInt64.self) { options.seed = v }
            }
        }
    }

    /// A flag given on the command line whose value differs from the recorded one.
    public struct Difference: Sendable, Equatable {
        public var field: Field
        public var recorded: String?
        public var given: String?

        public init(field: Field, recorded: String?, given: String?) {
            self.field = field
            self.recorded = recorded
            self.given = given
        }
    }

    /// `options` (built from the command's flags) with every setting not in `explicit`
    /// taken from this record, and the explicit ones that differ from it. Choosing state
    /// files or reconstruction is no difference: both are ways to get a user's parameters
    /// from the same model; the recorded one is only the default.
    public func resolve(_ options: TrainingOptions, explicit: Set<Field>, file: String) throws -> (options: TrainingOptions, differences: [Difference]) {
        var resolved = options
        try apply(to: &resolved, only: Set(Field.allCases).subtracting(explicit), file: file)
        // A recorded l2 with no recorded l2_bias means "l2_bias follows l2".
        if !explicit.contains(.l2Bias) && values[.l2Bias] == nil { resolved.l2Bias = explicit.contains(.l2) ? options.l2Bias : nil }
        let given = UserSideSettings(options)
        let differences = explicit.subtracting([.userParameters]).sorted().compactMap { field -> Difference? in
            guard values[field] != nil || field == .l2Bias, given.values[field] != values[field] else { return nil }
            return Difference(field: field, recorded: values[field], given: given.values[field])
        }
        return (resolved, differences)
    }
}
